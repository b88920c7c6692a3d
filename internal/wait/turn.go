package wait

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Turn lets one call at a time use a descriptor in one direction, while the calls
// waiting for their turn each honour their own context, the handle's deadline and
// Close. It replaces a mutex held across a blocking wait: with a mutex, a queued
// caller's deadline and cancellation count for nothing until the caller ahead of it
// is done, which may be never.
//
// The caller that holds the turn is the only one waiting in the runtime poller in
// that direction, so it may put its own context on the *os.File as a deadline
// (fdio's bridge) without disturbing anyone.
//
// Taking a free turn allocates nothing. Init must be called before use; a Turn must
// not be copied.
type Turn struct {
	// state: bit 0 (held) is set while someone holds the turn; the rest counts the
	// callers waiting for it, in steps of waiter. A free turn nobody waits for is 0,
	// and taking it is one compare-and-swap.
	state atomic.Int64
	// wake holds a token (buffered, one) when a Give or a leaving waiter asks one
	// waiter to look again.
	wake chan struct{}

	closeOnce sync.Once
	drainOnce sync.Once
	isClosed  atomic.Bool
	closed    chan struct{} // closed by Close
}

const (
	held   = 1
	waiter = 2
)

// Init makes t ready.
func (t *Turn) Init() {
	t.wake = make(chan struct{}, 1)
	t.closed = make(chan struct{})
}

// Take waits for the turn. It gives up when ctx ends (ctx.Err()), when the deadline
// dl reports passes (os.ErrDeadlineExceeded; dl may be nil, and is asked again
// whenever it reports a change on its Changed channel), or when the turn is closed
// (os.ErrClosed). On success the caller must Give the turn back. A free turn that
// nobody waits for costs one compare-and-swap and one load; a caller that finds
// others waiting queues behind them, and the turn a holder gives back goes to the
// waiter it wakes, not to a caller that asks again at once (TryTake may overtake).
func (t *Turn) Take(ctx context.Context, dl *Deadlines, write bool) error {
	if t.state.CompareAndSwap(0, held) {
		if t.isClosed.Load() {
			t.Give()
			return os.ErrClosed
		}
		return nil
	}
	return t.takeSlow(ctx, dl, write)
}

// takeSlow is Take for a turn someone holds or others wait for.
func (t *Turn) takeSlow(ctx context.Context, dl *Deadlines, write bool) error {
	if t.isClosed.Load() {
		return os.ErrClosed
	}
	t.state.Add(waiter)
	var alarm Alarm
	defer alarm.Stop()
	// A waiter takes a free turn only when woken for it (the token goes to the
	// waiters in the order they wait on the channel) or when it waits alone, so
	// that a caller that gives the turn back and asks again at once does not take it
	// from under the waiter it has just woken, time after time.
	woken := false
	for {
		if s := t.state.Load(); s&held == 0 && (woken || s == waiter) {
			if !t.state.CompareAndSwap(s, s-waiter+held) {
				continue
			}
			if t.isClosed.Load() { // closed while we waited: hand the turn back to Close
				t.Give()
				return os.ErrClosed
			}
			return nil
		}
		var expired <-chan time.Time
		var changed <-chan struct{}
		if dl != nil {
			changed = dl.Changed()
			var passed bool
			if expired, passed = alarm.Until(dl.Get(write)); passed {
				t.leave()
				return os.ErrDeadlineExceeded
			}
		}
		woken = false
		select {
		case <-t.wake:
			woken = true
		case <-ctx.Done():
			t.leave()
			return ctx.Err()
		case <-t.closed:
			t.leave()
			return os.ErrClosed
		case <-expired:
			t.leave()
			return os.ErrDeadlineExceeded
		case <-changed:
			alarm.Stop()
		}
	}
}

// leave takes a waiter that gives up out of the count; if the turn is free and
// others wait, one of them looks again (the waiter leaving may have had the token
// meant for it).
func (t *Turn) leave() {
	if s := t.state.Add(-waiter); s&held == 0 && s >= waiter {
		t.signal()
	}
}

// signal asks one waiter to look again.
func (t *Turn) signal() {
	select {
	case t.wake <- struct{}{}:
	default: // a token is already there: whoever takes it looks again
	}
}

// TryTake takes the turn if it is free and not closed.
func (t *Turn) TryTake() bool {
	if t.isClosed.Load() {
		return false
	}
	if !t.grab() {
		return false
	}
	if t.isClosed.Load() {
		t.Give()
		return false
	}
	return true
}

// grab takes the turn if it is free, whether others wait or not.
func (t *Turn) grab() bool {
	for {
		s := t.state.Load()
		if s&held != 0 {
			return false
		}
		if t.state.CompareAndSwap(s, s|held) {
			return true
		}
	}
}

// Held reports whether someone holds the turn now.
func (t *Turn) Held() bool { return t.state.Load()&held != 0 }

// Give hands the turn back.
func (t *Turn) Give() {
	if t.state.Add(-held) >= waiter {
		t.signal()
	}
}

// Close makes every waiting and later Take fail with os.ErrClosed. It does not wait
// for the holder: see Drain.
func (t *Turn) Close() {
	t.closeOnce.Do(func() {
		t.isClosed.Store(true)
		close(t.closed)
	})
}

// TryDrain takes the turn for Close if it is free, closed or not, and reports
// whether it did; if not, Drain waits for the holder.
func (t *Turn) TryDrain() bool { return t.grab() }

// Closed returns a channel that is closed when the turn is (Close).
func (t *Turn) Closed() <-chan struct{} { return t.closed }

// Drain waits until the turn's holder, if any, has given it back, and keeps it: no
// call in this direction runs afterwards. Call it after Close, once whatever the
// holder waits on has been woken. It is idempotent: a later Drain (a second Close)
// returns once the first has the turn.
func (t *Turn) Drain() {
	t.drainOnce.Do(func() {
		t.state.Add(waiter)
		for {
			if s := t.state.Load(); s&held == 0 {
				if t.state.CompareAndSwap(s, s-waiter+held) {
					return
				}
				continue
			}
			<-t.wake
		}
	})
}
