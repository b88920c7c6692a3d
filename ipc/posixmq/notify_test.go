package posixmq_test

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/posixmq"
)

// waitNotified waits for one value on c (see patience).
func waitNotified(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case _, ok := <-c:
		if !ok {
			t.Fatalf("%s: notifier channel closed", what)
		}
	case <-patience(t):
		t.Fatalf("%s: no notification", what)
	}
}

// notNotified checks that c stays quiet for a short while.
func notNotified(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
		t.Fatalf("%s: unexpected notification", what)
	case <-time.After(30 * time.Millisecond):
	}
}

func TestNotify(t *testing.T) {
	for _, w := range strategies {
		t.Run(w.String(), func(t *testing.T) {
			q := newQueue(t, posixmq.WithAttr(4, 16), posixmq.WithWait(w))
			n, err := q.Notify()
			must(t, err)
			defer n.Stop()
			notNotified(t, n.C, "empty queue")
			buf := make([]byte, 16)
			for round := range 5 {
				must(t, q.Send(context.Background(), []byte("m"), 0))
				waitNotified(t, n.C, "arrival")
				// The notifier did not consume the message.
				if _, _, err := q.TryRecv(buf); err != nil {
					t.Fatalf("round %d: TryRecv after notification: %v", round, err)
				}
				notNotified(t, n.C, "drained queue")
			}
			// A message left in the queue does not make the notifier spin: no more
			// notifications without a new event.
			must(t, q.Send(context.Background(), []byte("stay"), 0))
			waitNotified(t, n.C, "arrival")
			notNotified(t, n.C, "no new arrival")
			must(t, q.Send(context.Background(), []byte("more"), 0))
			waitNotified(t, n.C, "second arrival while non-empty")
			n.Stop()
			if _, ok := <-n.C; ok {
				t.Error("C not closed after Stop")
			}
			if err := n.Err(); err != nil {
				t.Errorf("Err after Stop: %v", err)
			}
			n.Stop() // idempotent
		})
	}
}

// TestNotifyRace sends from one goroutine and drains on every notification: no
// message may be left unnoticed, whatever the interleaving with the poller.
func TestNotifyRace(t *testing.T) {
	q := newQueue(t, posixmq.WithAttr(8, 16))
	n, err := q.Notify()
	must(t, err)
	defer n.Stop()
	const total = 2000
	go func() {
		for i := 0; i < total; i++ {
			if err := q.Send(context.Background(), []byte("x"), uint(i%3)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	buf := make([]byte, 16)
	got := 0
	for got < total {
		waitNotified(t, n.C, "burst")
		for {
			_, _, err := q.TryRecv(buf)
			if errors.Is(err, ipc.ErrWouldBlock) {
				break
			}
			must(t, err)
			got++
		}
	}
}

func TestNotifyFunc(t *testing.T) {
	q := newQueue(t, posixmq.WithAttr(4, 16))
	must(t, q.Send(context.Background(), []byte("early"), 1))
	var calls atomic.Int32
	got := make(chan string, 10)
	var n *posixmq.Notifier
	ready := make(chan struct{})
	n, err := q.NotifyFunc(func() {
		<-ready
		calls.Add(1)
		buf := make([]byte, 16)
		for {
			k, _, err := q.TryRecv(buf)
			if err != nil {
				return
			}
			got <- string(buf[:k])
			if string(buf[:k]) == "stop" {
				n.Stop() // Stop from inside the callback must not deadlock.
			}
		}
	})
	must(t, err)
	close(ready)
	if s := <-got; s != "early" {
		t.Fatalf("first call got %q (a non-empty queue notifies at start)", s)
	}
	must(t, q.Send(context.Background(), []byte("stop"), 1))
	if s := <-got; s != "stop" {
		t.Fatalf("got %q", s)
	}
	select {
	case <-n.Done():
	case <-patience(t):
		t.Fatal("notifier did not end after Stop from its callback")
	}
	before := calls.Load()
	must(t, q.Send(context.Background(), []byte("after"), 1))
	time.Sleep(20 * time.Millisecond)
	if calls.Load() != before {
		t.Error("callback called after Stop")
	}
	if _, err := q.NotifyFunc(nil); !errors.Is(err, ipc.ErrInvalid) {
		t.Errorf("NotifyFunc(nil): %v", err)
	}
}

func TestNotifyStoppedByClose(t *testing.T) {
	name := uniqueName(t)
	q, err := posixmq.Create(name)
	must(t, err)
	unlinkAtCleanup(t, name)
	n, err := q.Notify()
	must(t, err)
	must(t, q.Close())
	select {
	case <-n.Done():
	case <-patience(t):
		t.Fatal("Close did not stop the notifier")
	}
	if _, err := q.Notify(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Notify on closed queue: %v", err)
	}
}
