package sysv

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/ipclab/ipclab/ipc"
)

type result struct {
	err error
	at  time.Time
}

// cancelLatency blocks call (which must block until ctx ends) for hold, cancels, and
// returns how long the call took to return after the cancellation.
func cancelLatency(t *testing.T, hold time.Duration, call func(ctx context.Context) error) time.Duration {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan result, 1)
	go func() {
		err := call(ctx)
		done <- result{err, time.Now()}
	}()
	errc := make(chan error, 1)
	go func() { r := <-done; done <- r; errc <- nil }()
	time.Sleep(hold)
	select {
	case r := <-done:
		t.Fatalf("call returned before cancellation: %v", r.err)
	default:
	}
	start := time.Now()
	cancel()
	<-errc
	r := <-done
	wantErr(t, r.err, context.Canceled)
	return r.at.Sub(start)
}

// checkLatencies requires every cancellation to be fast compared with how long the call
// had been blocked: the median under a tenth of it, the worst under half of it.
func checkLatencies(t *testing.T, hold time.Duration, lats []time.Duration) {
	t.Helper()
	slices.Sort(lats)
	med, worst := lats[len(lats)/2], lats[len(lats)-1]
	t.Logf("cancellation latency: median %v, worst %v (blocked %v)", med, worst, hold)
	if med > hold/10 || worst > hold/2 {
		t.Fatalf("cancellation too slow: median %v, worst %v, for a call blocked %v", med, worst, hold)
	}
}

func TestQueueCancel(t *testing.T) {
	q := tmpQueue(t)
	const hold = 100 * time.Millisecond
	t.Run("recv", func(t *testing.T) {
		var lats []time.Duration
		for range 7 {
			lats = append(lats, cancelLatency(t, hold, func(ctx context.Context) error {
				_, _, err := q.Recv(ctx, make([]byte, 8), Any())
				return err
			}))
		}
		checkLatencies(t, hold, lats)
	})
	t.Run("send", func(t *testing.T) {
		full := tmpQueue(t)
		a, err := full.Attr()
		must(t, err)
		a.MaxBytes = 1
		must(t, full.SetAttr(a))
		must(t, full.TrySend(1, []byte{1}))
		var lats []time.Duration
		for range 7 {
			lats = append(lats, cancelLatency(t, hold, func(ctx context.Context) error {
				return full.Send(ctx, 1, []byte{2})
			}))
		}
		checkLatencies(t, hold, lats)
	})
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, _, err := q.Recv(ctx, make([]byte, 8), Any())
		wantErr(t, err, os.ErrDeadlineExceeded, context.DeadlineExceeded)
		var ne interface{ Timeout() bool }
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("%v is not a timeout", err)
		}
	})
	t.Run("close", func(t *testing.T) {
		h, err := OpenQueueID(q.ID())
		must(t, err)
		done := make(chan error, 1)
		go func() {
			_, _, err := h.Recv(context.Background(), make([]byte, 8), Any())
			done <- err
		}()
		waitBlocked(t, done)
		must(t, h.Close())
		must(t, h.Close())
		wantErr(t, <-done, os.ErrClosed)
		_, _, err = h.TryRecv(make([]byte, 8), Any())
		wantErr(t, err, os.ErrClosed)
	})
	t.Run("already-cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		must(t, q.TrySend(1, []byte("x")))
		_, _, err := q.Recv(ctx, make([]byte, 8), Any())
		wantErr(t, err, context.Canceled)
		_, _, err = q.TryRecv(make([]byte, 8), Any())
		must(t, err)
	})
}

// TestQueueSignalStorm sends thousands of SIGURG and wait.Signal to every thread while
// a sender and a receiver keep blocking in msgsnd and msgrcv: no error surfaces, no
// message is lost, duplicated or reordered.
func TestQueueSignalStorm(t *testing.T) {
	for _, cancellable := range []bool{false, true} {
		t.Run(fmt.Sprintf("cancellable=%v", cancellable), func(t *testing.T) { queueStorm(t, cancellable) })
	}
}

func queueStorm(t *testing.T, cancellable bool) {
	q := tmpQueue(t)
	a, err := q.Attr()
	must(t, err)
	a.MaxBytes = 64 // room for 4 messages: the sender blocks often
	must(t, q.SetAttr(a))
	const n = 3000
	ctx := context.Background()
	if cancellable {
		c, cancel := context.WithCancel(ctx)
		defer cancel()
		ctx = c
	}
	// The sender goes on until both n messages and minSignals are reached (a busy
	// machine may schedule the storm late), then sends an end marker (type 2).
	const minSignals = 2000
	sendErr := make(chan error, 1)
	st := storm(t, minSignals)
	go func() {
		var b [16]byte
		start := time.Now()
		for i := 0; ; i++ {
			binary.LittleEndian.PutUint64(b[:], uint64(i))
			if err := q.Send(ctx, 1, b[:]); err != nil {
				sendErr <- err
				return
			}
			if (i >= n-1 && st.Sent() >= minSignals) || time.Since(start) > 20*time.Second {
				sendErr <- q.Send(ctx, 2, nil)
				return
			}
		}
	}()
	var b [16]byte
	received := 0
	for i := 0; ; i++ {
		if i%500 == 0 {
			time.Sleep(time.Millisecond) // let the sender fill the queue and block
		}
		m, typ, err := q.Recv(ctx, b[:], Any())
		if err != nil {
			t.Fatalf("recv %d: %v", i, err)
		}
		if typ == 2 {
			break
		}
		if got := binary.LittleEndian.Uint64(b[:]); m != 16 || got != uint64(i) {
			t.Fatalf("message %d: got #%d (%d bytes)", i, got, m)
		}
		received++
	}
	must(t, <-sendErr)
	sent := st.Stop()
	t.Logf("%d signals sent during %d messages", sent, received)
	if received < n || sent < minSignals {
		t.Fatalf("%d messages, %d signals", received, sent)
	}
	if _, _, err := q.TryRecv(b[:], Any()); !errors.Is(err, ipc.ErrWouldBlock) {
		t.Fatalf("queue not empty after the exchange: %v", err)
	}
}
