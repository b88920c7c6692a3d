package mailbox_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/mailbox"
)

// drain receives everything queued without waiting.
func drain(t *testing.T, mb *mailbox.Mailbox) []string {
	t.Helper()
	var got []string
	buf := make([]byte, 4096)
	for {
		m, err := mb.TryRecv(buf)
		if errors.Is(err, ipc.ErrWouldBlock) {
			return got
		}
		must(t, err)
		got = append(got, string(buf[:m.N]))
	}
}

// smallBox creates a mailbox holding few messages: 2 on POSIX queues; on System V
// (capacity in bytes) as many 4 KiB frames as msg_qbytes takes.
func smallBox(t *testing.T, ns *mailbox.Namespace, b mailbox.Backend) *mailbox.Mailbox {
	mb, err := ns.CreateMailbox("small", mailbox.WithBackend(b), mailbox.WithCapacity(2, 4096))
	must(t, err)
	t.Cleanup(func() { mb.Close() })
	return mb
}

// fill sends 4 KiB messages with TrySend until the mailbox is full and returns how
// many it took.
func fill(t *testing.T, mb *mailbox.Mailbox) int {
	t.Helper()
	big := make([]byte, 4000)
	for n := 0; n < 1000; n++ {
		err := mb.TrySend(big)
		if errors.Is(err, ipc.ErrWouldBlock) {
			return n
		}
		must(t, err)
	}
	t.Fatal("mailbox never filled")
	return 0
}

func TestDisciplines(t *testing.T) {
	backends(t, func(t *testing.T, b mailbox.Backend) {
		// NonBlocking: never waits; a full mailbox is ErrWouldBlock, and everything
		// accepted is there for another process.
		t.Run("NonBlocking", func(t *testing.T) {
			ns := newNS(t)
			mb := smallBox(t, ns, b)
			n := fill(t, mb)
			if n == 0 {
				t.Fatal("nothing fitted")
			}
			r := start(t, "recv", ipctest.WithArgs(ns.Dir(), "small", fmt.Sprint(n)))
			r.Await()
			r.Signal()
			r.Await()
			r.MustSucceed()
			if got := len(lines(r.Output())); got != n {
				t.Errorf("receiver got %d messages, want %d", got, n)
			}
		})

		// Buffered: Bsend returns once the message is in the sender's buffer, even
		// with the mailbox full and nobody receiving, so a sender that dies loses
		// what it has not flushed.
		t.Run("Buffered", func(t *testing.T) {
			ns := newNS(t)
			mb := smallBox(t, ns, b)
			const sent = 40
			h := start(t, "bsend-and-hang", ipctest.WithArgs(ns.Dir(), "small", fmt.Sprint(sent)))
			h.Await() // every Bsend returned
			h.Kill()
			_ = h.Wait()
			got := drain(t, mb)
			for i := range got {
				got[i] = strings.TrimRight(got[i], " ")
			}
			if len(got) >= sent {
				t.Fatalf("after the sender died %d of %d buffered messages reached the mailbox; the mailbox cannot hold them all", len(got), sent)
			}
			if !slices.Equal(got, expect("b", len(got))) {
				t.Errorf("out of order: %v", got)
			}
			// Flush waits for the buffer to drain into the mailbox.
			s := start(t, "send", ipctest.WithArgs(ns.Dir(), "small", "buffered", "30", "f"))
			var all []string
			buf := make([]byte, 64)
			for len(all) < 30 {
				m, err := mb.Recv(ctxT(t), buf)
				must(t, err)
				all = append(all, string(buf[:m.N]))
			}
			s.Await()
			s.MustSucceed()
			if !slices.Equal(all, expect("f", 30)) {
				t.Errorf("flushed %v", all)
			}
		})

		// Receipt: Send returns once the kernel has stored the message, which
		// therefore survives the sender.
		t.Run("Receipt", func(t *testing.T) {
			ns := newNS(t)
			mb, err := ns.CreateMailbox("r", mailbox.WithBackend(b))
			must(t, err)
			defer mb.Close()
			h := start(t, "send", ipctest.WithArgs(ns.Dir(), "r", "receipt", "3", "r"))
			h.Await()
			h.Kill()
			_ = h.Wait()
			if got := drain(t, mb); !slices.Equal(got, expect("r", 3)) {
				t.Errorf("after the sender died: %v", got)
			}
		})

		// Delivery: Ssend does not return before the receiver has the message, even
		// though the mailbox stored it long before.
		t.Run("Delivery", func(t *testing.T) {
			ns, ctx := newNS(t), ctxT(t)
			mb, err := ns.CreateMailbox("d", mailbox.WithBackend(b))
			must(t, err)
			defer mb.Close()
			r := start(t, "recv", ipctest.WithArgs(ns.Dir(), "d", "1"))
			r.Await() // the receiver has the mailbox open but does not receive yet
			done := make(chan error, 1)
			go func() { done <- mb.Ssend(ctx, []byte("sync")) }()
			for {
				n, err := mb.Len()
				must(t, err)
				if n == 1 {
					break
				}
				select {
				case err := <-done:
					t.Fatalf("Ssend returned (%v) before the message was even stored", err)
				default:
				}
			}
			// Stored: a receipt-based send would have returned by now.
			select {
			case err := <-done:
				t.Fatalf("Ssend returned (%v) with the message still queued", err)
			default:
			}
			r.Signal() // let the receiver take it
			must(t, <-done)
			r.Await()
			r.MustSucceed()
			if got := lines(r.Output()); !slices.Equal(got, []string{"sync"}) {
				t.Errorf("receiver got %v", got)
			}
			if n, _ := mb.Len(); n != 0 {
				t.Errorf("%d messages left", n)
			}
		})

		// Response: Sendrecv returns the receiver's reply to exactly this message.
		t.Run("Response", func(t *testing.T) {
			ns := newNS(t)
			mb, err := ns.CreateMailbox("q", mailbox.WithBackend(b))
			must(t, err)
			defer mb.Close()
			r := start(t, "recv", ipctest.WithArgs(ns.Dir(), "q", "5"))
			r.Await()
			r.Signal()
			s := start(t, "send", ipctest.WithArgs(ns.Dir(), "q", "response", "5", "call"))
			s.Await()
			s.MustSucceed()
			r.Await()
			r.MustSucceed()
		})
	})
}
