package sockets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

// seq-replier serves the seqpacket end File(0) with the wait strategy args[0]: after
// the parent's signal it answers every message m with "m from <pid>", the pid
// being the sender's as SCM_CREDENTIALS reported it, each answer sent by
// SendReadMsgCred together with the wait for the next message; messages "fill" get
// no answer. It returns at end of file.
var _ = ipctest.Helper("seq-replier", func(args []string) int {
	w := ipc.WaitKernel
	if args[0] == ipc.WaitPoller.String() {
		w = ipc.WaitPoller
	}
	c, err := FileSeqpacketConn(ipctest.File(0), WithWait(w), PassCred())
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer c.Close()
	ipctest.Await()
	in, out := make([]byte, 64), make([]byte, 0, 96)
	n, _, cred, err := c.ReadMsgCred(bg, in, nil)
	for err == nil {
		if string(in[:n]) == "fill" {
			n, _, cred, err = c.ReadMsgCred(bg, in, nil)
			continue
		}
		out = fmt.Appendf(out[:0], "%s from %d", in[:n], cred.Pid)
		n, _, cred, err = c.SendReadMsgCred(bg, out, in, nil)
	}
	if !errors.Is(err, io.EOF) {
		fmt.Println("receive:", err)
		return 1
	}
	return 0
})

// TestExchange: Exchange (the client's send-then-receive) and SendReadMsgCred (the
// server's reply-then-receive) against each other across a process boundary, on
// the kernel-wait fast paths and on the general paths (poller; a context that can
// end), including an Exchange whose send finds the socket full.
func TestExchange(t *testing.T) {
	for _, w := range []ipc.WaitStrategy{ipc.WaitKernel, ipc.WaitPoller} {
		t.Run(w.String(), func(t *testing.T) {
			ours, theirs := seqPair(t, WithWait(w))
			tf, err := theirs.File()
			if err != nil {
				t.Fatal(err)
			}
			p := startHelper(t, "seq-replier", ipctest.WithFiles(tf), ipctest.WithArgs(w.String()))
			tf.Close()
			theirs.Close()

			// Fill the socket, so that the first Exchange cannot send at once; the
			// helper starts reading only after the signal.
			fills := 0
			for ; ; fills++ {
				err := ours.TrySend([]byte("fill"))
				if errors.Is(err, ipc.ErrWouldBlock) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if fills == 0 {
				t.Fatal("no message fits the socket")
			}
			go func() {
				time.Sleep(50 * time.Millisecond)
				p.Signal()
			}()
			want := func(i int) string { return "q" + strconv.Itoa(i) + " from " + strconv.Itoa(os.Getpid()) }
			resp := make([]byte, 64)
			ctx, cancel := context.WithCancel(bg)
			defer cancel()
			for i := range 200 {
				c := bg
				if i%3 == 2 {
					c = ctx // a context that can end: the general path
				}
				n, err := ours.Exchange(c, []byte("q"+strconv.Itoa(i)), resp)
				if err != nil || string(resp[:n]) != want(i) {
					t.Fatalf("exchange %d: %q, %v; want %q", i, resp[:n], err, want(i))
				}
			}
			if err := ours.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			p.MustSucceed()
			if n, err := ours.Exchange(bg, []byte("late"), resp); !errors.Is(err, ipc.ErrPeerGone) {
				t.Fatalf("exchange after the peer left: %d, %v; want ErrPeerGone", n, err)
			}
		})
	}
}

// TestSendReadMsgCredSendFails: when the reply cannot be sent, SendReadMsgCred
// returns the send's error (Op "sendmsg") without receiving, and the message
// waiting in the socket is still there for the next receive.
func TestSendReadMsgCredSendFails(t *testing.T) {
	for _, w := range []ipc.WaitStrategy{ipc.WaitKernel, ipc.WaitPoller} {
		t.Run(w.String(), func(t *testing.T) {
			a, b := seqPair(t, WithWait(w), PassCred())
			if err := b.Send(bg, []byte("next")); err != nil {
				t.Fatal(err)
			}
			if err := a.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 16)
			_, _, _, err := a.SendReadMsgCred(bg, []byte("reply"), buf, nil)
			var oe *ipc.OpError
			if !errors.Is(err, ipc.ErrPeerGone) || !errors.As(err, &oe) || oe.Op != "sendmsg" {
				t.Fatalf("SendReadMsgCred after CloseWrite: %v; want a sendmsg error matching ErrPeerGone", err)
			}
			n, _, cred, err := a.ReadMsgCred(bg, buf, nil)
			if err != nil || string(buf[:n]) != "next" || cred.Pid != int32(os.Getpid()) {
				t.Fatalf("ReadMsgCred: %q %+v %v; want next from us", buf[:n], cred, err)
			}
		})
	}
}

// TestExchangeClosed: Exchange on a closed connection fails with os.ErrClosed and
// sends nothing.
func TestExchangeClosed(t *testing.T) {
	a, b := seqPair(t)
	a.Close()
	if _, err := a.Exchange(bg, []byte("x"), make([]byte, 4)); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Exchange after Close: %v; want os.ErrClosed", err)
	}
	if _, err := b.TryRecv(make([]byte, 4)); !errors.Is(err, io.EOF) {
		t.Fatalf("peer received %v; want io.EOF", err)
	}
}

// TestFastControl: on the kernel-wait fast path, a receive with room for 16
// descriptors (a door's default) gives what the general path gives: 9 and 16
// descriptors arrive whole, with the sender's credentials; 17 are a truncated
// control message (ErrControlTruncated), and no descriptor stays open.
func TestFastControl(t *testing.T) {
	for _, w := range []ipc.WaitStrategy{ipc.WaitKernel, ipc.WaitPoller} {
		for _, n := range []int{9, 16, 17} {
			t.Run(fmt.Sprintf("%v/%d", w, n), func(t *testing.T) {
				a, b := seqPair(t, WithWait(w), WithMaxFds(16))
				if err := b.SetPassCred(true); err != nil {
					t.Fatal(err)
				}
				f := tempFile(t, "x")
				oob := make([]byte, unix.CmsgSpace(4*n))
				d := sys.PutCmsg(oob, unix.SOL_SOCKET, unix.SCM_RIGHTS, 4*n)
				for i := range n {
					putFd(d[4*i:], int(f.Fd()))
				}
				before := openFdCount(t)
				if _, err := sys.Sendmsg(a.Fd(), []byte("m"), oob, nil, unix.MSG_NOSIGNAL); err != nil {
					t.Fatal(err)
				}
				buf, fds := make([]byte, 4), make([]int, 16)
				m, nfds, cred, err := b.SendReadMsgCred(bg, []byte("reply"), buf, fds)
				if n > 16 {
					if !errors.Is(err, ErrControlTruncated) {
						t.Fatalf("%d descriptors into room for 16: %v, want ErrControlTruncated", n, err)
					}
				} else {
					if err != nil || nfds != n || string(buf[:m]) != "m" || cred.Pid != int32(os.Getpid()) {
						t.Fatalf("got %q, %d descriptors, %+v, %v; want m, %d, our pid", buf[:m], nfds, cred, err, n)
					}
					closeFds(fds[:nfds])
				}
				if after := openFdCount(t); after != before {
					t.Errorf("descriptors: %d before, %d after", before, after)
				}
				reply := make([]byte, 8)
				if m, err := a.Recv(bg, reply); err != nil || string(reply[:m]) != "reply" {
					t.Errorf("the reply: %q, %v", reply[:m], err)
				}
			})
		}
	}
}
