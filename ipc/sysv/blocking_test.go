package sysv

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
)

type result struct {
	err error
	at  time.Time
}

// latency is one round of a cancellation test: how long a blocked call took to return
// once its context was cancelled, and how long, measured just before under the same
// load, a thread asleep in the kernel took to return once woken by what it waited for
// when a context was cancelled: a byte written to the pipe it reads by the context's
// AfterFunc, the same path as a cancellation except that a write replaces the signal.
// The second is what this machine can do right now; the first is compared with it,
// never with a fixed time.
type latency struct{ cancel, wake time.Duration }

// wakeLatency runs call in a goroutine, lets it block for hold, runs wake, and returns
// how long after wake another goroutine saw it return, and the call's error. It fails
// the test if the call returns before wake, or does not return while the test has
// time left (a call that wake cannot end).
func wakeLatency(t *testing.T, hold time.Duration, call func() error, wake func()) (time.Duration, error) {
	t.Helper()
	done := make(chan result, 1)
	go func() {
		err := call()
		done <- result{err, time.Now()}
	}()
	seen := make(chan result, 1)
	go func() { seen <- <-done }()
	time.Sleep(hold)
	select {
	case r := <-seen:
		t.Fatalf("call returned before it was woken: %v", r.err)
	default:
	}
	var guard <-chan time.Time
	if dl, ok := t.Deadline(); ok {
		guard = time.After(time.Until(dl) / 2)
	}
	start := time.Now()
	wake()
	select {
	case r := <-seen:
		return r.at.Sub(start), r.err
	case <-guard:
		t.Fatalf("call still blocked %v after it was woken", time.Since(start))
		return 0, nil
	}
}

// cancelLatency measures one round (see latency): the wake-up of a read blocked on a
// pipe, then call, which must block until ctx ends, cancelled after hold.
func cancelLatency(t *testing.T, hold time.Duration, call func(ctx context.Context) error) latency {
	t.Helper()
	var p [2]int
	must(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	context.AfterFunc(wctx, func() { _, _ = unix.Write(p[1], []byte{1}) })
	wake, err := wakeLatency(t, hold, func() error {
		runtime.LockOSThread() // as a cancellable System V call does
		defer runtime.UnlockOSThread()
		_, err := unix.Read(p[0], make([]byte, 1))
		return err
	}, wcancel)
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lat, err := wakeLatency(t, hold, func() error { return call(ctx) }, cancel)
	wantErr(t, err, context.Canceled)
	return latency{cancel: lat, wake: wake}
}

// cancelFactor bounds the fastest cancellation latency of a test as a multiple of its
// fastest wake-up latency. A cancellation costs a little more than that wake-up (a
// signal and its handler instead of a write); one that does not interrupt the call but
// waits for something else (a timeout, a periodic retry) is many times slower in every
// round.
const cancelFactor = 20

// checkLatencies requires cancellation to be prompt compared with what the machine
// does meanwhile: the fastest cancellation within cancelFactor times the fastest
// wake-up. The fastest of each, because on a loaded machine any round, of either
// kind, may wait tens of milliseconds for a CPU whatever the code does, while a slow
// cancellation mechanism is slow in every round.
func checkLatencies(t *testing.T, hold time.Duration, lats []latency) {
	t.Helper()
	var cancels, wakes []time.Duration
	for _, l := range lats {
		cancels = append(cancels, l.cancel)
		wakes = append(wakes, l.wake)
	}
	slices.Sort(cancels)
	slices.Sort(wakes)
	t.Logf("%d rounds blocked %v: cancellation latency fastest %v, median %v, worst %v; wake-up latency fastest %v, median %v, worst %v",
		len(lats), hold, cancels[0], cancels[len(cancels)/2], cancels[len(cancels)-1], wakes[0], wakes[len(wakes)/2], wakes[len(wakes)-1])
	if cancels[0] > cancelFactor*wakes[0] {
		t.Fatalf("cancellation too slow: fastest %v, more than %d times the fastest wake-up %v", cancels[0], cancelFactor, wakes[0])
	}
}

func TestQueueCancel(t *testing.T) {
	q := tmpQueue(t)
	const hold = 100 * time.Millisecond
	t.Run("recv", func(t *testing.T) {
		var lats []latency
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
		var lats []latency
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
		// a context's deadline is context.DeadlineExceeded, as in every package;
		// os.ErrDeadlineExceeded is a handle's own deadline, which a queue has not
		wantErr(t, err, context.DeadlineExceeded)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%v matches os.ErrDeadlineExceeded: a context deadline must not", err)
		}
		var oe *ipc.OpError
		if !errors.As(err, &oe) {
			t.Fatalf("%T is not an *ipc.OpError", err)
		}
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
