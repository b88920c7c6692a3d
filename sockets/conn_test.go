package sockets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/net/nettest"
	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
)

func TestStreamConnNettest(t *testing.T) {
	t.Run("pair", func(t *testing.T) {
		nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
			a, b, err := StreamPair()
			if err != nil {
				return nil, nil, nil, err
			}
			return a, b, func() { a.Close(); b.Close() }, nil
		})
	})
	t.Run("unix-listen-dial", func(t *testing.T) {
		nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
			return listenDialPair(t, func() (*StreamListener, error) {
				return ListenStream(sockPath(t, "s"))
			}, func(l *StreamListener) (*StreamConn, error) {
				return DialStream(bg, l.Addr().String())
			})
		})
	})
	t.Run("tcp", func(t *testing.T) {
		nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
			return listenDialPair(t, func() (*StreamListener, error) {
				return ListenTCP("127.0.0.1:0")
			}, func(l *StreamListener) (*StreamConn, error) {
				return DialTCP(bg, l.Addr().String())
			})
		})
	})
}

func listenDialPair(t *testing.T, listen func() (*StreamListener, error), dial func(*StreamListener) (*StreamConn, error)) (net.Conn, net.Conn, func(), error) {
	l, err := listen()
	if err != nil {
		return nil, nil, nil, err
	}
	defer l.Close()
	type res struct {
		c   *StreamConn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.AcceptStream(bg)
		ch <- res{c, err}
	}()
	d, err := dial(l)
	if err != nil {
		return nil, nil, nil, err
	}
	r := <-ch
	if r.err != nil {
		d.Close()
		return nil, nil, nil, r.err
	}
	return d, r.c, func() { d.Close(); r.c.Close() }, nil
}

// bothWaits runs f for every wait strategy: auto (the default), poller and kernel.
func bothWaits(t *testing.T, f func(t *testing.T, w ipc.WaitStrategy)) {
	for _, w := range []ipc.WaitStrategy{ipc.WaitAuto, ipc.WaitPoller, ipc.WaitKernel} {
		t.Run(w.String(), func(t *testing.T) { f(t, w) })
	}
}

func TestContextAndClose(t *testing.T) {
	bothWaits(t, func(t *testing.T, w ipc.WaitStrategy) {
		a, b := seqPair(t, WithWait(w))
		defer a.Close()
		defer b.Close()
		buf := make([]byte, 64)

		// Cancellation.
		ctx, cancel := context.WithCancel(bg)
		time.AfterFunc(20*time.Millisecond, cancel)
		if _, err := a.Recv(ctx, buf); !errors.Is(err, context.Canceled) {
			t.Fatalf("Recv after cancel: %v, want context.Canceled", err)
		}
		// Context deadline.
		ctx, cancel2 := context.WithTimeout(bg, 20*time.Millisecond)
		defer cancel2()
		if _, err := a.Recv(ctx, buf); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Recv after timeout: %v, want context.DeadlineExceeded", err)
		}
		// Read deadline.
		a.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := a.Recv(bg, buf)
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("Recv past deadline: %v, want os.ErrDeadlineExceeded and a net.Error timeout", err)
		}
		a.SetReadDeadline(time.Time{})
		// Still usable afterwards.
		if err := b.Send(bg, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if n, err := a.Recv(bg, buf); err != nil || n != 1 {
			t.Fatalf("Recv = %d, %v", n, err)
		}
		// TryRecv on an empty socket.
		if _, err := a.TryRecv(buf); !errors.Is(err, ipc.ErrWouldBlock) || !errors.Is(err, unix.EAGAIN) {
			t.Fatalf("TryRecv on empty: %v, want ErrWouldBlock/EAGAIN", err)
		}
	})
}

// TestCloseUnblocks ports os TestClosedPipeRaceRead/Write and TestCloseWithBlockingRead:
// Close during a blocked call makes it return an error matching os.ErrClosed.
func TestCloseUnblocks(t *testing.T) {
	t.Run("SOCK-10/ClosedRace", testCloseUnblocks)
	// x/sys TestSysvSharedMemory is listed under SOCK-10 but exercises System V
	// shared memory, not sockets.
	t.Run("SOCK-10/SysvSharedMemory", func(t *testing.T) {
		t.Skip("System V shared memory is tested by package ipc/sysv, not sockets")
	})
}

func testCloseUnblocks(t *testing.T) {
	bothWaits(t, func(t *testing.T, w ipc.WaitStrategy) {
		for _, write := range []bool{false, true} {
			a, b := streamPair(t, WithWait(w))
			closeWhileBlocked(t, fmt.Sprintf("stream write=%v", write), a.Close, func() error {
				buf := make([]byte, 1<<16)
				for {
					var err error
					if write {
						_, err = a.Write(buf)
					} else {
						_, err = a.Read(buf)
					}
					if err != nil {
						return err
					}
				}
			})
			b.Close()
		}
		// A blocked receive on every other socket type.
		s, _ := seqPair(t, WithWait(w))
		closeWhileBlocked(t, "seqpacket", s.Close, func() error { _, err := s.Recv(bg, make([]byte, 8)); return err })
		d, _ := dgramPair(t, WithWait(w))
		closeWhileBlocked(t, "unix-dgram", d.Close, func() error { _, err := d.Recv(bg, make([]byte, 8)); return err })
		// A receive with a control buffer (descriptors, credentials) takes another
		// path; Close must end it the same way, not as an empty datagram.
		dc, _ := dgramPair(t, WithWait(w), PassCred(), WithMaxFds(2))
		closeWhileBlocked(t, "unix-dgram control", dc.Close, func() error {
			_, _, _, err := dc.ReadMsgCred(bg, make([]byte, 8), make([]int, 2))
			return err
		})
		sc, _ := seqPair(t, WithWait(w), WithMaxFds(2))
		closeWhileBlocked(t, "seqpacket fds", sc.Close, func() error {
			_, _, err := sc.ReadMsg(bg, make([]byte, 8), make([]int, 2))
			return err
		})
		u, err := ListenUDP("127.0.0.1:0", WithWait(w))
		if err != nil {
			t.Fatal(err)
		}
		closeWhileBlocked(t, "udp", u.Close, func() error { _, err := u.Recv(bg, make([]byte, 8)); return err })
		l, err := ListenTCP("127.0.0.1:0", WithWait(w))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		tc, err := DialTCP(bg, l.Addr().String(), WithWait(w))
		if err != nil {
			t.Fatal(err)
		}
		closeWhileBlocked(t, "tcp", tc.Close, func() error { _, err := tc.Read(make([]byte, 8)); return err })
	})
}

// closeWhileBlocked runs op, which blocks, closes the socket under it and expects op
// to return an error matching os.ErrClosed, and a second Close to return nil.
func closeWhileBlocked(t *testing.T, what string, closeFn func() error, op func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- op() }()
	time.Sleep(20 * time.Millisecond)
	if err := closeFn(); err != nil {
		t.Fatalf("%s: Close: %v", what, err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) || !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s: blocked call after Close: %v, want os.ErrClosed", what, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: Close did not unblock the call", what)
	}
	if err := closeFn(); err != nil {
		t.Errorf("%s: second Close: %v", what, err)
	}
}

// TestStreamEOF: a stream reads io.EOF after the peer closes (FI-01's clean case).
func TestStreamEOF(t *testing.T) {
	bothWaits(t, func(t *testing.T, w ipc.WaitStrategy) {
		a, b := streamPair(t, WithWait(w))
		defer a.Close()
		if _, err := b.Write([]byte("bye")); err != nil {
			t.Fatal(err)
		}
		b.Close()
		got, err := io.ReadAll(a)
		if err != nil || string(got) != "bye" {
			t.Fatalf("ReadAll = %q, %v", got, err)
		}
	})
}
