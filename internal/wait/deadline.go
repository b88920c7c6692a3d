package wait

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ViaDeadline runs io, one call that waits in the Go runtime poller and honours the
// descriptor's deadline, so that it also ends when ctx does: the earlier of ctx's
// deadline and the handle's own (dl's read or write deadline; dl may be nil for none)
// is set with set, and cancellation moves it into the past. Afterwards the handle's
// deadline is restored — only once a cancellation's own update has landed, so that it
// cannot leave a stale deadline for the next call. A deadline that was ctx's, not the
// handle's, comes back as ctx.Err(). The handle's deadline may change during the call
// (Set*Deadline applies to pending calls): it is read again at the end.
//
// The caller must be the only one waiting on the descriptor in this direction (see
// Turn). With a context that can never end, callers should call io directly: this
// function allocates the cancellation callback.
func ViaDeadline(ctx context.Context, dl *Deadlines, write bool, set func(time.Time) error, io func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	user := func() time.Time {
		if dl == nil {
			return time.Time{}
		}
		return dl.Get(write)
	}
	ctxDl, has := ctx.Deadline()
	first := ctxDl
	if u := user(); !has || (!u.IsZero() && u.Before(ctxDl)) {
		first = u
	}
	if err := set(first); err != nil {
		return err
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = set(time.Unix(1, 0))
		close(fired)
	})
	err := io()
	if !stop() {
		<-fired // its deadline in the past must land before the handle's is restored
	}
	u := user()
	_ = set(u)
	return DeadlineErr(ctx, err, u)
}

// DeadlineErr is the error of a wait in the runtime poller that ended with err under
// ctx and the handle's deadline handle (as it is now; zero: none), with the earlier
// of the two on the file: a deadline that was ctx's, not the handle's, is ctx.Err().
// ctx's timer in the poller can fire just before ctx's own: once ctx's deadline
// has passed it waits for ctx to end (on a busy machine ctx's timer can lag by more
// than any grace period); before that, it waits a while for ctx to say so.
func DeadlineErr(ctx context.Context, err error, handle time.Time) error {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if ctxDl, has := ctx.Deadline(); has && (handle.IsZero() || time.Now().Before(handle)) {
		if !time.Now().Before(ctxDl) {
			// ctx's deadline has passed, so ctx is about to end, though its own
			// timer, on a busy machine, may lag by more than any grace period: wait
			// for it, so that callers who check ctx.Err() after the error see it
			// (the door client decides on that whether to cancel the call).
			<-ctx.Done()
			return ctx.Err()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(ctxDl) + 100*time.Millisecond):
			// ctx's deadline is not what fired either (the handle's deadline was
			// set and cleared meanwhile): report the file's.
		}
	}
	return err
}

// Deadlines are a descriptor's read and write deadlines as Set*Deadline set them,
// in Unix nanoseconds (0: none). Kernel-mode calls are bounded by them (Bound); in
// poller mode they restore the *os.File's own after a context-bound call
// (ViaDeadline). A fast path reads Read or Write directly: zero means no deadline.
type Deadlines struct {
	Read, Write atomic.Int64

	mu      sync.Mutex
	changed chan struct{} // closed by the next Set; made by Changed
}

// Changed returns a channel that is closed the next time a deadline is set, so
// that a caller waiting under the old deadline (Turn.Take) can look again.
func (d *Deadlines) Changed() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.changed == nil {
		d.changed = make(chan struct{})
	}
	return d.changed
}

// Set stores t (zero: none) as the read and/or write deadline.
func (d *Deadlines) Set(t time.Time, read, write bool) {
	var ns int64
	if !t.IsZero() {
		ns = max(t.UnixNano(), 1)
	}
	if read {
		d.Read.Store(ns)
	}
	if write {
		d.Write.Store(ns)
	}
	d.mu.Lock()
	if d.changed != nil {
		close(d.changed)
		d.changed = nil
	}
	d.mu.Unlock()
}

// Expired reports whether the read (or write) deadline is set and has passed.
func (d *Deadlines) Expired(write bool) bool {
	ns := d.Read.Load()
	if write {
		ns = d.Write.Load()
	}
	return ns != 0 && time.Now().UnixNano() >= ns
}

// Get returns the read (or write) deadline, zero for none.
func (d *Deadlines) Get(write bool) time.Time {
	ns := d.Read.Load()
	if write {
		ns = d.Write.Load()
	}
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Bound returns the context a kernel-mode call waits under: ctx, bounded by the read
// (or write) deadline if one is set (bounded reports it; the deadline's cause is
// os.ErrDeadlineExceeded), and the function that releases it.
func (d *Deadlines) Bound(ctx context.Context, write bool) (c context.Context, cancel context.CancelFunc, bounded bool) {
	dl := d.Get(write)
	if dl.IsZero() {
		return ctx, noCancel, false
	}
	c, cancel = context.WithDeadlineCause(ctx, dl, os.ErrDeadlineExceeded)
	return c, cancel, true
}

func noCancel() {}

// BoundErr is the error a call that waited under Bound's context c ends with: a
// deadline that was the descriptor's, not ctx's, is os.ErrDeadlineExceeded.
func BoundErr(c context.Context, err error, bounded bool) error {
	if bounded && errors.Is(err, context.DeadlineExceeded) && context.Cause(c) == os.ErrDeadlineExceeded {
		return os.ErrDeadlineExceeded
	}
	return err
}

// An Alarm is the timer of a wait bounded by a deadline that may change while it
// waits (Turn.Take, fdio's hub): each round arms it again for the deadline as it is
// then. The zero value is ready to use; Stop it when the wait is over.
type Alarm struct{ t *time.Timer }

// Until arms the alarm for d and returns the channel that fires then, nil for a zero
// d (no deadline); passed reports that d has already passed (nothing is armed).
func (a *Alarm) Until(d time.Time) (fires <-chan time.Time, passed bool) {
	if d.IsZero() {
		return nil, false
	}
	wait := time.Until(d)
	if wait <= 0 {
		return nil, true
	}
	if a.t == nil {
		a.t = time.NewTimer(wait)
	} else {
		a.t.Reset(wait)
	}
	return a.t.C, false
}

// Stop disarms the alarm.
func (a *Alarm) Stop() {
	if a.t != nil {
		a.t.Stop()
	}
}
