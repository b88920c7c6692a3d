package sockets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
)

// truncMsg is the 100-byte message trunc-replier answers with.
var truncMsg = []byte(strings.Repeat("0123456789", 10))

// msgConn is what DgramConn and SeqpacketConn share.
type msgConn interface {
	Send(ctx context.Context, p []byte) error
	Recv(ctx context.Context, p []byte) (int, error)
	Close() error
}

// trunc-replier serves File(0), a socket of the kind args[0] ("dgram", "seqpacket"
// or "udp", connected; args[1] "cred": SO_PASSCRED is on): it answers every message
// with truncMsg until a message "quit" arrives.
var _ = ipctest.Helper("trunc-replier", func(args []string) int {
	var opts []Option
	if args[1] == "cred" {
		opts = append(opts, PassCred())
	}
	var c msgConn
	var err error
	if args[0] == "seqpacket" {
		c, err = FileSeqpacketConn(ipctest.File(0), opts...)
	} else {
		c, err = FileDgramConn(ipctest.File(0), opts...)
	}
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer c.Close()
	buf := make([]byte, 64)
	for {
		n, err := c.Recv(bg, buf)
		if err != nil {
			fmt.Println("recv:", err)
			return 1
		}
		if string(buf[:n]) == "quit" {
			return 0
		}
		if err := c.Send(bg, truncMsg); err != nil {
			fmt.Println("send:", err)
			return 1
		}
	}
})

// TestTruncatedLength is issue 14 §3 (SOCK-09's data row, S11): a 100-byte message
// from another process read into a 10-byte buffer, on Unix datagram and seqpacket
// sockets and on UDP, through every receive path (the kernel-wait fast paths,
// Exchange and SendReadMsgCred, the general path under a context that can end, the
// poller, TryRecv, RecvFrom, ReadMsg with a descriptor buffer, ReadMsgCred). Each
// returns the 10 bytes copied, an error matching ipc.ErrTruncated whose text names
// the real length (MSG_TRUNC passed to recvmsg), and the next message is whole.
func TestTruncatedLength(t *testing.T) {
	for _, kind := range []string{"dgram", "seqpacket", "udp"} {
		for _, w := range []ipc.WaitStrategy{ipc.WaitKernel, ipc.WaitPoller} {
			for _, cred := range []bool{false, true} {
				if cred && kind == "udp" {
					continue // SO_PASSCRED is a Unix socket option
				}
				name := kind + "/" + w.String()
				if cred {
					name += "/passcred"
				}
				t.Run("SOCK-09/"+name, func(t *testing.T) { testTruncated(t, kind, w, cred) })
			}
		}
	}
}

func testTruncated(t *testing.T, kind string, w ipc.WaitStrategy, cred bool) {
	opts := []Option{WithWait(w)}
	if cred {
		opts = append(opts, PassCred())
	}
	// ours receives; ask makes the helper send one truncMsg to it; send reaches the
	// helper.
	var ours, theirs msgConn
	var ask, quit func() error
	var dg *DgramConn
	var sq *SeqpacketConn
	switch kind {
	case "dgram":
		a, b := dgramPair(t, opts...)
		ours, theirs, dg = a, b, a
		ask = func() error { return a.Send(bg, []byte("go")) }
		quit = func() error { return a.Send(bg, []byte("quit")) }
	case "seqpacket":
		a, b := seqPair(t, opts...)
		ours, theirs, sq = a, b, a
		ask = func() error { return a.Send(bg, []byte("go")) }
		quit = func() error { return a.Send(bg, []byte("quit")) }
	case "udp":
		srv, err := ListenUDP("127.0.0.1:0", opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		cl, err := DialUDP(bg, srv.LocalAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		to := cl.LocalAddr()
		ours, theirs, dg = srv, cl, srv
		ask = func() error { return srv.SendTo(bg, []byte("go"), to) }
		quit = func() error { return srv.SendTo(bg, []byte("quit"), to) }
	}
	tf, err := theirs.(interface{ File() (*os.File, error) }).File()
	if err != nil {
		t.Fatal(err)
	}
	credArg := "-"
	if cred {
		credArg = "cred" // the helper's socket shares SO_PASSCRED
	}
	p := startHelper(t, "trunc-replier", ipctest.WithFiles(tf), ipctest.WithArgs(kind, credArg))
	tf.Close()
	theirs.Close()
	defer func() {
		if err := quit(); err != nil {
			t.Error(err)
		}
		p.MustSucceed()
	}()

	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	// ready waits until the answer is queued, for the calls that do not wait.
	ready := func() {
		pfd := []unix.PollFd{{Fd: int32(ours.(interface{ Fd() int }).Fd()), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(pfd, 60_000); err != unix.EINTR {
				return
			}
		}
	}
	type path struct {
		name string
		recv func(buf []byte) (int, error) // asks and receives
	}
	asked := func(f func(buf []byte) (int, error)) func([]byte) (int, error) {
		return func(buf []byte) (int, error) {
			if err := ask(); err != nil {
				return 0, err
			}
			return f(buf)
		}
	}
	paths := []path{
		{"Recv", asked(func(b []byte) (int, error) { return ours.Recv(bg, b) })},
		{"Recv/ctx", asked(func(b []byte) (int, error) { return ours.Recv(ctx, b) })},
	}
	type msgReader interface {
		ReadMsg(ctx context.Context, p []byte, fds []int) (int, int, error)
		ReadMsgCred(ctx context.Context, p []byte, fds []int) (int, int, Cred, error)
	}
	mr := ours.(msgReader)
	if kind != "udp" {
		paths = append(paths,
			path{"ReadMsg", asked(func(b []byte) (int, error) { n, _, err := mr.ReadMsg(bg, b, nil); return n, err })},
			path{"ReadMsg/fds", asked(func(b []byte) (int, error) { n, _, err := mr.ReadMsg(bg, b, make([]int, 1)); return n, err })},
		)
		if cred {
			paths = append(paths,
				path{"ReadMsgCred", asked(func(b []byte) (int, error) { n, _, _, err := mr.ReadMsgCred(bg, b, nil); return n, err })})
		}
	}
	if dg != nil {
		paths = append(paths,
			path{"TryRecv", asked(func(b []byte) (int, error) { ready(); return dg.TryRecv(b) })},
			path{"RecvFrom", asked(func(b []byte) (int, error) { n, _, err := dg.RecvFrom(bg, b); return n, err })},
		)
	}
	if sq != nil {
		paths = append(paths,
			path{"TryRecv", asked(func(b []byte) (int, error) { ready(); return sq.TryRecv(b) })},
			path{"Exchange", func(b []byte) (int, error) { return sq.Exchange(bg, []byte("go"), b) }},
		)
		if cred {
			paths = append(paths, path{"SendReadMsgCred", func(b []byte) (int, error) {
				n, _, _, err := sq.SendReadMsgCred(bg, []byte("go"), b, nil)
				return n, err
			}})
		}
	}
	for _, pt := range paths {
		buf := make([]byte, 10)
		n, err := pt.recv(buf)
		if !errors.Is(err, ipc.ErrTruncated) {
			t.Fatalf("%s: 100 bytes into 10: %d, %v; want ErrTruncated", pt.name, n, err)
		}
		if n != len(buf) || string(buf) != string(truncMsg[:10]) {
			t.Errorf("%s: returned %d bytes %q, want the 10 copied", pt.name, n, buf)
		}
		if msg := err.Error(); !strings.Contains(msg, "100-byte message into a 10-byte buffer") || strings.Contains(msg, "\n") {
			t.Errorf("%s: error %q does not name the real length (100)", pt.name, msg)
		}
		// The rest of the message is gone; the next one arrives whole.
		whole := make([]byte, 128)
		if err := ask(); err != nil {
			t.Fatal(err)
		}
		if n, err := ours.Recv(bg, whole); err != nil || string(whole[:n]) != string(truncMsg) {
			t.Fatalf("%s: next message: %d bytes, %v; want the whole 100", pt.name, n, err)
		}
	}
}
