package mailbox_test

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"
	"testing"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/mailbox"
)

// TestMPI: Isend, Issend and Irecv return Requests whose Test and Wait report
// completion as their disciplines say.
func TestMPI(t *testing.T) {
	backends(t, func(t *testing.T, b mailbox.Backend) {
		ns, ctx := newNS(t), ctxT(t)
		mb, err := ns.CreateMailbox("mpi", mailbox.WithBackend(b))
		must(t, err)
		defer mb.Close()
		r := start(t, "recv", ipctest.WithArgs(ns.Dir(), "mpi", "2"))
		r.Await()

		// Isend completes without a receiver: the mailbox stores the message.
		_, err = mb.Isend(ctx, []byte("isend")).Wait(ctx)
		must(t, err)
		// Issend completes only once the receiver has taken its message.
		req := mb.Issend(ctx, []byte("issend"))
		for {
			if n, _ := mb.Len(); n == 2 {
				break
			}
		}
		if done, _, _ := req.Test(); done {
			t.Fatal("Issend completed before anyone received")
		}
		r.Signal()
		_, err = req.Wait(ctx)
		must(t, err)
		r.Await()
		r.MustSucceed()
		if got := lines(r.Output()); !slices.Equal(got, []string{"isend", "issend"}) {
			t.Errorf("receiver got %v", got)
		}

		// Irecv completes when a message arrives.
		buf := make([]byte, 64)
		rr := mb.Irecv(ctx, buf)
		if done, _, _ := rr.Test(); done {
			t.Fatal("Irecv completed on an empty mailbox")
		}
		must(t, mb.Bsend(ctx, []byte("bsend")))
		m, err := rr.Wait(ctx)
		must(t, err)
		if string(buf[:m.N]) != "bsend" || m.Discipline != mailbox.Buffered {
			t.Errorf("Irecv got %q (%v)", buf[:m.N], m.Discipline)
		}
		must(t, mb.Flush(ctx))
	})
}

// TestQueueVocabulary: Put with the handle's discipline, Get, Poll, Notify.
func TestQueueVocabulary(t *testing.T) {
	ns, ctx := newNS(t), ctxT(t)
	mb, err := ns.CreateMailbox("q", mailbox.WithDiscipline(mailbox.NonBlocking), mailbox.WithCapacity(2, 64))
	must(t, err)
	defer mb.Close()
	must(t, mb.Put(ctx, []byte("1")))
	must(t, mb.Put(ctx, []byte("2")))
	wantErr(t, "Put (non-blocking) into a full mailbox", mb.Put(ctx, []byte("3")), ipc.ErrWouldBlock)
	buf := make([]byte, 64)
	m, err := mb.Get(ctx, buf)
	must(t, err)
	if string(buf[:m.N]) != "1" || m.Discipline != mailbox.NonBlocking {
		t.Errorf("Get: %q %v", buf[:m.N], m.Discipline)
	}
	m, err = mb.Poll(buf)
	must(t, err)
	if string(buf[:m.N]) != "2" {
		t.Errorf("Poll: %q", buf[:m.N])
	}
	_, err = mb.Poll(buf)
	wantErr(t, "Poll on empty", err, ipc.ErrWouldBlock)

	var mu sync.Mutex
	var got []string
	all := make(chan struct{})
	n := mb.Notify(func(m mailbox.Message, p []byte) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, string(p))
		if len(got) == 5 {
			close(all)
		}
	})
	s := start(t, "send", ipctest.WithArgs(ns.Dir(), "q", "receipt", "5", "n"))
	s.Await()
	s.MustSucceed()
	<-all
	must(t, n.Stop())
	must(t, n.Stop())
	if !slices.Equal(got, expect("n", 5)) {
		t.Errorf("Notify saw %v", got)
	}
}

// TestSixCombinations: the textbook's persistence × synchronicity combinations, each
// between two processes.
func TestSixCombinations(t *testing.T) {
	for _, c := range []struct {
		name       string
		persistent bool
		d          mailbox.Discipline
	}{
		{"PersistentAsync", true, mailbox.Buffered},
		{"PersistentSync", true, mailbox.Receipt},
		{"TransientAsync", false, mailbox.NonBlocking},
		{"ReceiptSync", false, mailbox.Receipt},
		{"DeliverySync", false, mailbox.Delivery},
		{"ResponseSync", false, mailbox.Response},
	} {
		t.Run(c.name, func(t *testing.T) {
			ns, ctx := newNS(t), ctxT(t)
			var opts []mailbox.Option
			if c.persistent {
				opts = append(opts, mailbox.Persistent())
			}
			mb, err := ns.CreateMailbox("six", opts...)
			must(t, err)
			if c.persistent {
				// Nobody has the mailbox open while the sender runs: the message
				// waits in the kernel.
				must(t, mb.Close())
			}
			s := start(t, "send", ipctest.WithArgs(ns.Dir(), "six", c.d.String(), "3", "x"))
			if c.persistent {
				s.Await()
				s.MustSucceed()
				mb, err = ns.OpenMailbox("six")
				must(t, err)
			}
			buf := make([]byte, 64)
			for i := 0; i < 3; i++ {
				m, err := mb.Recv(ctx, buf)
				must(t, err)
				if want := fmt.Sprintf("x-%d", i); string(buf[:m.N]) != want || m.Discipline != c.d {
					t.Errorf("got %q (%v), want %q (%v)", buf[:m.N], m.Discipline, want, c.d)
				}
				if m.Discipline == mailbox.Response {
					must(t, mb.Reply(ctx, m, []byte(fmt.Sprintf("X-%d", i))))
				}
			}
			if !c.persistent {
				s.Await()
				s.MustSucceed()
				must(t, mb.Close())
			} else {
				must(t, mb.Remove())
			}
			if len(entries(t, ns)) != 0 {
				t.Error("mailbox left behind")
			}
		})
	}
}

// TestRemoveAfterClose: Remove on a closed handle of a persistent mailbox still
// destroys it, and never a mailbox made since under the same name.
func TestRemoveAfterClose(t *testing.T) {
	ns := newNS(t)
	mb, err := ns.CreateMailbox("gone", mailbox.Persistent())
	must(t, err)
	must(t, mb.Close())
	must(t, mb.Remove())
	if _, err := ns.OpenMailbox("gone"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("opening a mailbox removed after Close: %v, want fs.ErrNotExist", err)
	}
	again, err := ns.CreateMailbox("gone", mailbox.Persistent())
	must(t, err)
	defer again.Remove()
	must(t, mb.Remove()) // the old handle's: must leave the new mailbox alone
	other, err := ns.OpenMailbox("gone")
	if err != nil {
		t.Fatalf("a stale handle's Remove destroyed the mailbox made since: %v", err)
	}
	must(t, other.Close())
}
