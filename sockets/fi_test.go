package sockets

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
)

// frame is the test's message on a stream: a 4-byte big-endian length, then the body.
func frame(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// readFrame reads one frame; a stream that ends inside a frame is io.ErrUnexpectedEOF,
// so no part of a frame is ever taken for a whole one.
func readFrame(r io.Reader, buf []byte) ([]byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(h[:])
	if int(n) > len(buf) {
		return nil, fmt.Errorf("frame of %d bytes", n)
	}
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// The sender writes whole frames 0, 1, 2, … and, at the fault point, the first 300
// bytes of a 1000-byte frame; FaultAt kills it there.
var _ = ipctest.Helper("fi01-sender", func(args []string) int {
	c, err := FileStreamConn(ipctest.File(0))
	if err != nil {
		return 2
	}
	body := make([]byte, 1000)
	for i := 0; ; i++ {
		binary.BigEndian.PutUint64(body, uint64(i))
		f := frame(body)
		if _, err := c.Write(f[:300]); err != nil {
			return 3
		}
		ipctest.Point("mid-frame")
		if _, err := c.Write(f[300:]); err != nil {
			return 3
		}
	}
})

// TestSenderKilledMidFrame is FI-01 on a Unix stream socket: the receiver of a sender
// SIGKILLed inside a frame gets io.ErrUnexpectedEOF after a gap-free prefix of whole
// frames, never a partial frame, and the next connection is clean.
func TestSenderKilledMidFrame(t *testing.T) {
	t.Run("FI-01", func(t *testing.T) {
		for _, w := range []ipc.WaitStrategy{ipc.WaitAuto, ipc.WaitPoller, ipc.WaitKernel} {
			t.Run(w.String(), func(t *testing.T) {
				seed := ipctest.Seed(t)
				killAt := 1 + int(seed%50)
				a, b, err := StreamPair(WithWait(w))
				if err != nil {
					t.Fatal(err)
				}
				defer a.Close()
				fb, err := b.File()
				b.Close()
				if err != nil {
					t.Fatal(err)
				}
				ipctest.Start(t, "fi01-sender", ipctest.Handover(fb), ipctest.FaultAt("mid-frame", killAt, unix.SIGKILL))
				buf := make([]byte, 1000)
				var got []uint64
				for {
					body, err := readFrame(a, buf)
					if err != nil {
						if !errors.Is(err, io.ErrUnexpectedEOF) {
							t.Fatalf("after %d frames: %v, want io.ErrUnexpectedEOF", len(got), err)
						}
						break
					}
					got = append(got, binary.BigEndian.Uint64(body))
				}
				rep := ipctest.CheckSeq(uint64(killAt), got)
				if !rep.Prefix() || rep.Lost != 1 {
					t.Fatalf("killed in frame %d: %v", killAt-1, rep)
				}
				// The next connection is clean.
				c, d, err := StreamPair(WithWait(w))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				defer d.Close()
				if _, err := d.Write(frame([]byte("fresh"))); err != nil {
					t.Fatal(err)
				}
				if body, err := readFrame(c, buf); err != nil || string(body) != "fresh" {
					t.Fatalf("next connection: %q %v", body, err)
				}
			})
		}
	})
}

// The peer sends the write end of a pipe (its only copy besides the one in flight)
// and waits to be killed.
var _ = ipctest.Helper("fi12-sender", func(args []string) int {
	c, err := FileSeqpacketConn(ipctest.File(0))
	if err != nil {
		return 2
	}
	if _, err := c.WriteMsg(context.Background(), []byte("fd"), []int{ipctest.Fd(1)}); err != nil {
		return 3
	}
	unix.Close(ipctest.Fd(1))
	ipctest.Signal()
	select {}
})

// TestPeerDiesWithFdsInFlight is FI-12: a peer sends a descriptor and is SIGKILLed
// before it is received. The surviving process's descriptor table does not change,
// and when the survivor drops the message unread the kernel closes the descriptor in
// flight (the pipe it was the last write end of reads end of file).
func TestPeerDiesWithFdsInFlight(t *testing.T) {
	t.Run("FI-12", func(t *testing.T) {
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer pr.Close()
		a, b, err := SeqpacketPair()
		if err != nil {
			t.Fatal(err)
		}
		fb, err := b.File()
		b.Close()
		if err != nil {
			t.Fatal(err)
		}
		p := ipctest.Start(t, "fi12-sender", ipctest.Handover(fb, pw))
		p.Await()
		before := fdTable(t)
		p.Kill()
		p.Wait()
		// Reaping the peer closes the harness's own descriptors for it (its pidfd,
		// its output pipe); nothing may have been added, and ours stay open.
		after := fdTable(t)
		for fd, target := range after {
			if before[fd] != target {
				t.Errorf("descriptor %d (%s) appeared when the peer died", fd, target)
			}
		}
		for _, fd := range []int{a.Fd(), int(pr.Fd())} {
			if _, ok := after[fd]; !ok {
				t.Errorf("descriptor %d closed when the peer died", fd)
			}
		}
		// The write end lives only in the unread message now: no end of file yet.
		rfd := int(pr.Fd()) // Fd puts the file in blocking mode: take it once
		if err := unix.SetNonblock(rfd, true); err != nil {
			t.Fatal(err)
		}
		var one [1]byte
		if _, err := unix.Read(rfd, one[:]); !errors.Is(err, unix.EAGAIN) {
			t.Fatalf("read before the message is dropped: %v, want EAGAIN", err)
		}
		a.Close()
		if n, err := unix.Read(rfd, one[:]); n != 0 || err != nil {
			t.Fatalf("read after the unread message was dropped: %d %v, want end of file", n, err)
		}
	})
}

// The receiver has exactly one descriptor slot free when three descriptors arrive.
var _ = ipctest.Helper("fi13-receiver", func(args []string) int {
	c, err := FileSeqpacketConn(ipctest.File(0), WithMaxFds(8))
	if err != nil {
		return 2
	}
	// Warm up whatever the receive path opens once (the poller's epoll descriptor).
	c.TryRecv(make([]byte, 1))
	restore, err := ipctest.LimitFds(1)
	if err != nil {
		fmt.Println(err)
		return 2
	}
	before := countFds()
	ipctest.Signal()
	fds := make([]int, 8)
	buf := make([]byte, 16)
	_, nfds, err := c.ReadMsg(context.Background(), buf, fds)
	after := countFds()
	restore()
	fmt.Printf("nfds=%d before=%d after=%d ctrunc=%v err=%v\n", nfds, before, after, errors.Is(err, ErrControlTruncated), err)
	if err == nil || !errors.Is(err, ErrControlTruncated) || after != before {
		return 1
	}
	// MSG_CTRUNC is a protocol error: the connection is shut down, not left to
	// carry messages whose descriptors went missing.
	if n, err := c.Recv(context.Background(), buf); err != io.EOF {
		fmt.Println("after MSG_CTRUNC:", n, err)
		return 1
	}
	return 0
})

func countFds() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	return len(ents) - 1
}

// TestFdsAtRlimit is FI-13: a receiver at RLIMIT_NOFILE − 1 gets three descriptors.
// The kernel installs the one that fits and sets MSG_CTRUNC; the library closes it,
// returns ErrControlTruncated and shuts the connection down: no descriptor leaks.
func TestFdsAtRlimit(t *testing.T) {
	t.Run("FI-13", func(t *testing.T) {
		a, b, err := SeqpacketPair()
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		fb, err := b.File()
		b.Close()
		if err != nil {
			t.Fatal(err)
		}
		p := ipctest.Start(t, "fi13-receiver", ipctest.Handover(fb))
		p.Await()
		f := tempFile(t, "x")
		three := []int{int(f.Fd()), int(f.Fd()), int(f.Fd())}
		if _, err := a.WriteMsg(bg, []byte("3"), three); err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(); err != nil {
			t.Fatalf("receiver: %v\n%s", err, p.Output())
		}
		t.Log(p.Output())
	})
}

// The peer, in a network namespace of its own, tries the abstract name it is given.
var _ = ipctest.Helper("s15-abstract", func(args []string) int {
	_, err := DialStream(context.Background(), args[0], AllowAbstract(SameUser()))
	fmt.Print(errors.Is(err, unix.ECONNREFUSED), " ", err)
	if errors.Is(err, unix.ECONNREFUSED) {
		return 0
	}
	return 1
})

// TestAbstractPerNetns is S15 for sockets: an abstract name is per network namespace.
// A process in another network namespace does not reach it; one in ours does.
func TestAbstractPerNetns(t *testing.T) {
	t.Run("S15", func(t *testing.T) {
		ipctest.RequireRoot(t)
		name := "@ipclab-s15-" + strconv.Itoa(os.Getpid())
		l, err := ListenStream(name, AllowAbstract(SameUser()))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		c, err := DialStream(bg, name, AllowAbstract(SameUser()))
		if err != nil {
			t.Fatalf("same namespace: %v", err)
		}
		c.Close()
		p := ipctest.Start(t, "s15-abstract", ipctest.WithArgs(name), ipctest.InNewNamespaces(unix.CLONE_NEWNET))
		if err := p.Wait(); err != nil {
			t.Fatalf("another network namespace reached the name: %v (%s)", err, p.Output())
		}
	})
}

// fdTable maps this process's open descriptors to what they refer to.
func fdTable(t *testing.T) map[int]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	m := map[int]string{}
	for _, e := range ents {
		fd, _ := strconv.Atoi(e.Name())
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil {
			m[fd] = l
		}
	}
	return m
}
