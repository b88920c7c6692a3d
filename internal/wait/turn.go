package wait

import (
	"context"
	"os"
	"sync"
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
	slot chan struct{} // holds a token while the turn is taken

	closeOnce sync.Once
	closed    chan struct{} // closed by Close
}

// Init makes t ready.
func (t *Turn) Init() {
	t.slot = make(chan struct{}, 1)
	t.closed = make(chan struct{})
}

// Take waits for the turn. It gives up when ctx ends (ctx.Err()), when the deadline
// dl reports passes (os.ErrDeadlineExceeded; dl may be nil, and is asked again
// whenever it reports a change on its Changed channel), or when the turn is closed
// (os.ErrClosed). On success the caller must Give the turn back.
func (t *Turn) Take(ctx context.Context, dl *Deadlines, write bool) error {
	select {
	case <-t.closed:
		return os.ErrClosed
	default:
	}
	select {
	case t.slot <- struct{}{}:
		return nil
	default:
	}
	return t.takeSlow(ctx, dl, write)
}

// takeSlow is Take for a turn someone holds.
func (t *Turn) takeSlow(ctx context.Context, dl *Deadlines, write bool) error {
	var alarm Alarm
	defer alarm.Stop()
	for {
		var expired <-chan time.Time
		var changed <-chan struct{}
		if dl != nil {
			changed = dl.Changed()
			var passed bool
			if expired, passed = alarm.Until(dl.Get(write)); passed {
				return os.ErrDeadlineExceeded
			}
		}
		select {
		case t.slot <- struct{}{}:
			select {
			case <-t.closed: // closed while we waited: hand the turn back to Close
				<-t.slot
				return os.ErrClosed
			default:
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-t.closed:
			return os.ErrClosed
		case <-expired:
			return os.ErrDeadlineExceeded
		case <-changed:
			alarm.Stop()
		}
	}
}

// TryTake takes the turn if it is free and not closed.
func (t *Turn) TryTake() bool {
	select {
	case <-t.closed:
		return false
	default:
	}
	select {
	case t.slot <- struct{}{}:
		return true
	default:
		return false
	}
}

// Held reports whether someone holds the turn now.
func (t *Turn) Held() bool { return len(t.slot) == 1 }

// Give hands the turn back.
func (t *Turn) Give() { <-t.slot }

// Close makes every waiting and later Take fail with os.ErrClosed. It does not wait
// for the holder: see Drain.
func (t *Turn) Close() { t.closeOnce.Do(func() { close(t.closed) }) }

// TryDrain takes the turn for Close if it is free, closed or not, and reports
// whether it did; if not, Drain waits for the holder.
func (t *Turn) TryDrain() bool {
	select {
	case t.slot <- struct{}{}:
		return true
	default:
		return false
	}
}

// Closed returns a channel that is closed when the turn is (Close).
func (t *Turn) Closed() <-chan struct{} { return t.closed }

// Drain waits until the turn's holder, if any, has given it back, and keeps it: no
// call in this direction runs afterwards. Call it after Close, once whatever the
// holder waits on has been woken.
func (t *Turn) Drain() { t.slot <- struct{}{} }
