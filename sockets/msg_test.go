package sockets

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

// openFdCount counts this process's open descriptors.
func openFdCount(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// tempFile returns an open temporary file holding content.
func tempFile(t testing.TB, content string) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "payload")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// readFd reads the whole file behind fd from its start without closing fd.
func readFd(t testing.TB, fd int) string {
	t.Helper()
	buf := make([]byte, 256)
	n, err := unix.Pread(fd, buf, 0)
	if err != nil {
		t.Fatalf("pread fd %d: %v", fd, err)
	}
	return string(buf[:n])
}

func TestSendmsgConformance(t *testing.T) {
	t.Run("SOCK-03", func(t *testing.T) {
		a, b := streamPair(t)
		// Bad fd: a descriptor number that is not open (kernel), and -1 (wrapper).
		if _, err := a.WriteMsg(bg, []byte("x"), []int{1 << 20}); !errors.Is(err, unix.EBADF) {
			t.Errorf("closed fd: %v, want EBADF", err)
		}
		if _, err := a.WriteMsg(bg, []byte("x"), []int{-1}); !errors.Is(err, unix.EBADF) {
			t.Errorf("fd -1: %v, want EBADF", err)
		}
		// Non-socket.
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer pr.Close()
		defer pw.Close()
		if _, err := FileStreamConn(pw); !errors.Is(err, unix.ENOTSOCK) {
			t.Errorf("pipe as socket: %v, want ENOTSOCK", err)
		}
		// Pointers cannot be bad in Go; the wrapper rejects what it can check: more
		// descriptors than the cap, control data without data on a connection, an
		// empty seqpacket message.
		many := make([]int, DefaultMaxFds+1)
		if _, err := a.WriteMsg(bg, []byte("x"), many); !errors.Is(err, ipc.ErrInvalid) {
			t.Errorf("too many fds: %v, want ErrInvalid", err)
		}
		if _, err := a.WriteMsg(bg, nil, []int{int(pr.Fd())}); !errors.Is(err, ipc.ErrInvalid) {
			t.Errorf("fds without data: %v, want ErrInvalid", err)
		}
		sa, _ := seqPair(t)
		if err := sa.Send(bg, nil); !errors.Is(err, ipc.ErrInvalid) {
			t.Errorf("empty seqpacket: %v, want ErrInvalid", err)
		}
		// Unconnected TCP: EPIPE, as ErrPeerGone, no SIGPIPE.
		tfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		tf := os.NewFile(uintptr(tfd), "tcp")
		tc, err := FileStreamConn(tf)
		tf.Close()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tc.Write([]byte("x")); !errors.Is(err, unix.EPIPE) || !errors.Is(err, ipc.ErrPeerGone) {
			t.Errorf("unconnected TCP: %v, want EPIPE/ErrPeerGone", err)
		}
		tc.Close()
		// Send after local shutdown.
		if err := b.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Write([]byte("x")); !errors.Is(err, unix.EPIPE) || !errors.Is(err, ipc.ErrPeerGone) {
			t.Errorf("after shutdown: %v, want EPIPE", err)
		}
		// Bad destination address (too long for sockaddr_un).
		u, err := ListenUDP("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		ud, err := ListenDgram(sockPath(t, "d"))
		if err != nil {
			t.Fatal(err)
		}
		defer ud.Close()
		bad := &unixAddr{Name: "/" + strings.Repeat("x", 200), Net: "unixgram"}
		if err := ud.SendTo(bg, []byte("x"), bad); !errors.Is(err, unix.EINVAL) {
			t.Errorf("bad to length: %v, want EINVAL", err)
		}
		// UDP datagram too big.
		if err := u.SendTo(bg, make([]byte, 70000), u.LocalAddr()); !errors.Is(err, unix.EMSGSIZE) {
			t.Errorf("UDP too big: %v, want EMSGSIZE", err)
		}
		// SCM_RIGHTS passing works.
		if _, err := a.WriteMsg(bg, []byte("f"), []int{int(pr.Fd())}); err != nil {
			t.Errorf("SCM_RIGHTS: %v", err)
		}
		// MSG_OOB on UDP (the library never sends it; observed at the raw layer).
		if _, err := sys.Sendmsg(u.Fd(), []byte("x"), nil, nil, unix.MSG_OOB|unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT); err != unix.EOPNOTSUPP {
			t.Errorf("MSG_OOB on UDP: %v, want EOPNOTSUPP", err)
		}
		// cmsg_len 0 in a control buffer shorter than a header (LTP's case): the
		// kernel sees no control message and accepts the send. A full header that says
		// cmsg_len 0 is refused with EINVAL (observed).
		if _, err := sys.Sendmsg(a.Fd(), []byte("y"), make([]byte, unix.SizeofCmsghdr-1), nil, unix.MSG_NOSIGNAL); err != nil {
			t.Errorf("cmsg_len 0, short control buffer: %v, want accepted", err)
		}
		if _, err := sys.Sendmsg(a.Fd(), []byte("y"), make([]byte, unix.CmsgSpace(0)), nil, unix.MSG_NOSIGNAL); err != unix.EINVAL {
			t.Errorf("cmsg_len 0 in a full header: %v, want EINVAL", err)
		}
	})
}

type unixAddr = net.UnixAddr

func TestRecvmsgConformance(t *testing.T) {
	t.Run("SOCK-04", func(t *testing.T) {
		a, b := streamPair(t)
		buf := make([]byte, 16)
		if _, _, _, err := sys.Recvmsg(1<<20, buf, nil, nil, 0); err != unix.EBADF {
			t.Errorf("bad fd: %v, want EBADF", err)
		}
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer pr.Close()
		defer pw.Close()
		if _, _, _, err := sys.Recvmsg(int(pr.Fd()), buf, nil, nil, unix.MSG_DONTWAIT); err != unix.ENOTSOCK {
			t.Errorf("non-socket: %v, want ENOTSOCK", err)
		}
		if _, err := b.Write([]byte("q")); err != nil {
			t.Fatal(err)
		}
		iov := []unix.Iovec{{Base: &buf[0]}}
		iov[0].SetLen(len(buf))
		if _, err := sys.RecvmsgRaw(a.Fd(), iov, -1, unix.MSG_DONTWAIT|unix.MSG_PEEK); err != unix.EINVAL {
			t.Errorf("bad socklen: %v, want EINVAL", err)
		}
		// Wrapper: an fd buffer beyond the cap; an empty read buffer returns at once.
		if _, _, err := a.ReadMsg(bg, buf, make([]int, DefaultMaxFds+1)); !errors.Is(err, ipc.ErrInvalid) {
			t.Errorf("fd buffer over cap: %v, want ErrInvalid", err)
		}
		if n, err := a.Read(nil); n != 0 || err != nil {
			t.Errorf("empty read: %d, %v", n, err)
		}
		big := make([]unix.Iovec, 1025)
		for i := range big {
			big[i] = iov[0]
		}
		if _, err := sys.RecvmsgRaw(a.Fd(), big, 0, unix.MSG_DONTWAIT); err != unix.EMSGSIZE {
			t.Errorf("iovcnt > IOV_MAX: %v, want EMSGSIZE", err)
		}
		if _, err := a.Read(buf); err != nil { // drain "q"
			t.Fatal(err)
		}
		// SCM_RIGHTS reception: the fd is usable.
		f := tempFile(t, "hello")
		if _, err := b.WriteMsg(bg, []byte("m"), []int{int(f.Fd())}); err != nil {
			t.Fatal(err)
		}
		fds := make([]int, 1)
		n, nfds, err := a.ReadMsg(bg, buf, fds)
		if err != nil || n != 1 || nfds != 1 {
			t.Fatalf("ReadMsg = %d, %d, %v", n, nfds, err)
		}
		if got := readFd(t, fds[0]); got != "hello" {
			t.Errorf("received fd reads %q", got)
		}
		unix.Close(fds[0])
		// MSG_OOB on AF_UNIX with nothing out of band; MSG_ERRQUEUE.
		if _, _, _, err := sys.Recvmsg(a.Fd(), buf, nil, nil, unix.MSG_OOB|unix.MSG_DONTWAIT); err != unix.EINVAL {
			t.Errorf("MSG_OOB: %v, want EINVAL", err)
		}
		if _, _, _, err := sys.Recvmsg(a.Fd(), buf, nil, nil, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT); err != unix.EAGAIN {
			t.Errorf("MSG_ERRQUEUE: %v, want EAGAIN", err)
		}
		// A large control buffer (the kernel's maximum of descriptors).
		x, y := seqPair(t, WithMaxFds(253))
		if err := y.Send(bg, []byte("z")); err != nil {
			t.Fatal(err)
		}
		if n, nfds, err := x.ReadMsg(bg, buf, make([]int, 253)); err != nil || n != 1 || nfds != 0 {
			t.Errorf("large control buffer: %d, %d, %v", n, nfds, err)
		}
	})

	t.Run("SOCK-05", func(t *testing.T) {
		fds, err := Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0) // blocking
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fds[0])
		defer unix.Close(fds[1])
		if _, err := sys.Sendmsg(fds[1], []byte("0123456789"), nil, nil, unix.MSG_NOSIGNAL); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			one := make([]byte, 1)
			for i := 0; i < 3; i++ {
				if _, _, _, err := sys.Recvmsg(fds[0], one, nil, nil, unix.MSG_PEEK); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			unix.Shutdown(fds[0], unix.SHUT_RDWR)
			t.Fatal("MSG_PEEK with a short buffer hung")
		}
	})
}

// TestFdTruncation covers SOCK-09's descriptor rows and the S10 attack: a peer sends
// more descriptors than the receiver asked for.
func TestFdTruncation(t *testing.T) {
	f := tempFile(t, "x")
	three := []int{int(f.Fd()), int(f.Fd()), int(f.Fd())}

	t.Run("SOCK-09", func(t *testing.T) {
		// Kernel behaviour: 3 fds into a CmsgSpace(4) (24-byte) buffer.
		a, b := seqPair(t)
		if _, err := b.WriteMsg(bg, []byte("3"), three); err != nil {
			t.Fatal(err)
		}
		oob := make([]byte, unix.CmsgSpace(4))
		buf := make([]byte, 8)
		_, oobn, flags, err := sys.Recvmsg(a.Fd(), buf, oob, nil, unix.MSG_CMSG_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		if len(oob) != 24 {
			t.Fatalf("CmsgSpace(4) = %d", len(oob))
		}
		if flags&unix.MSG_CTRUNC == 0 {
			t.Error("MSG_CTRUNC not set")
		}
		got := make([]int, 4)
		nfds, extra, _, _ := parseControl(oob[:oobn], got)
		if nfds != 2 || extra {
			t.Errorf("installed %d fds (extra %v), want 2 (alignment padding)", nfds, extra)
		}
		for _, fd := range got[:nfds] {
			checkFlags(t, "received with MSG_CMSG_CLOEXEC", fd, false)
			unix.Close(fd)
		}
		// SEQPACKET short read: MSG_TRUNC, the rest dropped.
		if err := b.Send(bg, []byte("0123456789")); err != nil {
			t.Fatal(err)
		}
		if err := b.Send(bg, []byte("next")); err != nil {
			t.Fatal(err)
		}
		short := make([]byte, 4)
		if n, err := a.Recv(bg, short); !errors.Is(err, ipc.ErrTruncated) || n != 4 || string(short) != "0123" {
			t.Errorf("short read: %d %q %v, want ErrTruncated", n, short, err)
		}
		if n, err := a.Recv(bg, buf); err != nil || string(buf[:n]) != "next" {
			t.Errorf("after truncation: %q, %v (rest must be dropped)", buf[:n], err)
		}
	})

	t.Run("S10", func(t *testing.T) {
		before := openFdCount(t)
		a, b := seqPair(t)
		// More descriptors than the buffer (and MSG_CTRUNC): every one closed, error,
		// connection shut down.
		if _, err := b.WriteMsg(bg, []byte("3"), three); err != nil {
			t.Fatal(err)
		}
		fds := make([]int, 1)
		_, nfds, err := a.ReadMsg(bg, make([]byte, 8), fds)
		if !errors.Is(err, ErrControlTruncated) || !errors.Is(err, ipc.ErrTruncated) || nfds != 0 {
			t.Fatalf("ReadMsg = %d fds, %v; want ErrControlTruncated", nfds, err)
		}
		if _, err := a.Recv(bg, make([]byte, 8)); err != io.EOF {
			t.Errorf("after MSG_CTRUNC the connection should be shut down; Recv: %v", err)
		}
		a.Close()
		b.Close()
		// Descriptors where the protocol expects none: the kernel drops them with
		// MSG_CTRUNC, nothing is installed.
		c, d := streamPair(t)
		if _, err := d.WriteMsg(bg, []byte("x"), three[:1]); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(make([]byte, 8)); !errors.Is(err, ErrControlTruncated) {
			t.Errorf("unexpected fd on plain Read: %v, want ErrControlTruncated", err)
		}
		c.Close()
		d.Close()
		// Exactly as many as fit the padded buffer but more than asked for: closed.
		e, g := seqPair(t)
		if _, err := g.WriteMsg(bg, []byte("2"), three[:2]); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.ReadMsg(bg, make([]byte, 8), make([]int, 1)); !errors.Is(err, ErrUnexpectedFds) {
			t.Errorf("2 fds into a 1-fd buffer: %v, want ErrUnexpectedFds", err)
		}
		e.Close()
		g.Close()
		if after := openFdCount(t); after != before {
			t.Errorf("descriptors: %d before, %d after: received fds leaked", before, after)
		}
		// SO_PASSRIGHTS=0 (Linux 6.16): the kernel refuses descriptors sent to us.
		h, k := seqPair(t, RefuseFds())
		if _, err := unix.GetsockoptInt(h.Fd(), unix.SOL_SOCKET, sys.SO_PASSRIGHTS); err != nil {
			t.Logf("SO_PASSRIGHTS unsupported by this kernel (%v); unexpected fds are closed on receipt instead", err)
			return
		}
		if _, err := k.WriteMsg(bg, []byte("x"), three[:1]); !errors.Is(err, unix.EPERM) {
			t.Errorf("send of a descriptor to a RefuseFds socket: %v, want EPERM", err)
		}
	})
}

// TestMultipleCmsgs ports TestUnixRightsRoundtrip: every control message is walked.
func TestMultipleCmsgs(t *testing.T) {
	a, b := seqPair(t)
	f1, f2 := tempFile(t, "one"), tempFile(t, "two")
	oob := make([]byte, 2*unix.CmsgSpace(4))
	d := sys.PutCmsg(oob, unix.SOL_SOCKET, unix.SCM_RIGHTS, 4)
	putFd(d, int(f1.Fd()))
	d = sys.PutCmsg(oob[unix.CmsgSpace(4):], unix.SOL_SOCKET, unix.SCM_RIGHTS, 4)
	putFd(d, int(f2.Fd()))
	if _, err := sys.Sendmsg(b.Fd(), []byte("2"), oob, nil, unix.MSG_NOSIGNAL); err != nil {
		t.Fatal(err)
	}
	fds := make([]int, 4)
	_, nfds, err := a.ReadMsg(bg, make([]byte, 4), fds)
	if err != nil || nfds != 2 {
		t.Fatalf("ReadMsg: %d fds, %v; want 2", nfds, err)
	}
	if readFd(t, fds[0]) != "one" || readFd(t, fds[1]) != "two" {
		t.Error("descriptors out of order")
	}
	closeFds(fds[:nfds])
}

func putFd(b []byte, fd int) { binary.NativeEndian.PutUint32(b, uint32(fd)) }

// seq-halfclose, on the seqpacket end File(0): sends "one", shuts its sending side,
// then expects "reply", end of file, and a send refused as ErrPeerGone.
var _ = ipctest.Helper("seq-halfclose", func([]string) int {
	c, err := FileSeqpacketConn(ipctest.File(0))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer c.Close()
	if err := c.Send(bg, []byte("one")); err != nil {
		fmt.Println("send:", err)
		return 1
	}
	if err := c.CloseWrite(); err != nil {
		fmt.Println("CloseWrite:", err)
		return 1
	}
	buf := make([]byte, 16)
	if n, err := c.Recv(bg, buf); err != nil || string(buf[:n]) != "reply" {
		fmt.Printf("recv: %q %v, want reply\n", buf[:n], err)
		return 1
	}
	if _, err := c.Recv(bg, buf); !errors.Is(err, io.EOF) {
		fmt.Println("recv after the peer's CloseWrite:", err, "want io.EOF")
		return 1
	}
	if err := c.Send(bg, []byte("late")); !errors.Is(err, ipc.ErrPeerGone) {
		fmt.Println("send after CloseWrite:", err, "want ErrPeerGone")
		return 1
	}
	return 0
})

// TestSeqpacketHalfClose: CloseWrite on a seqpacket connection reaches the peer in
// another process as end of file after the messages sent before it, both ways;
// CloseRead makes receives return end of file at once.
func TestSeqpacketHalfClose(t *testing.T) {
	ours, theirs := seqPair(t)
	tf, err := theirs.File()
	if err != nil {
		t.Fatal(err)
	}
	p := startHelper(t, "seq-halfclose", ipctest.WithFiles(tf))
	tf.Close()
	theirs.Close()
	buf := make([]byte, 16)
	if n, err := ours.Recv(bg, buf); err != nil || string(buf[:n]) != "one" {
		t.Fatalf("recv: %q %v, want one", buf[:n], err)
	}
	if _, err := ours.Recv(bg, buf); !errors.Is(err, io.EOF) {
		t.Fatalf("recv after the peer's CloseWrite: %v, want io.EOF", err)
	}
	if err := ours.Send(bg, []byte("reply")); err != nil {
		t.Fatal(err)
	}
	if err := ours.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	p.MustSucceed()

	a, _ := seqPair(t)
	if err := a.CloseRead(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Recv(bg, buf); !errors.Is(err, io.EOF) {
		t.Fatalf("recv after CloseRead: %v, want io.EOF", err)
	}
}
