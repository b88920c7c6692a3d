package stream

import (
	"context"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Timestamps in units are CLOCK_MONOTONIC nanoseconds, which every process on one
// machine reads alike (and every network namespace: they share the clock), so a
// sink can subtract a source's send time from its own arrival time.
var (
	monoBase  int64     // CLOCK_MONOTONIC at start, in ns
	wallStart time.Time // time.Now() at the same moment (its monotonic reading)
)

func init() {
	var ts unix.Timespec
	// Read the kernel clock between two readings of Go's and take the middle: the
	// error of Now against CLOCK_MONOTONIC is then half the gap (a few hundred ns).
	a := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic("stream: clock_gettime(CLOCK_MONOTONIC): " + err.Error())
	}
	b := time.Now()
	monoBase = ts.Nano()
	wallStart = a.Add(b.Sub(a) / 2)
}

// Now returns the time as CLOCK_MONOTONIC nanoseconds, the clock of every timestamp
// in this package. It costs what time.Now costs.
func Now() int64 { return monoBase + int64(time.Since(wallStart)) }

// kernelBelow is how close to a deadline a sleeper stops using Go's timers, which
// on a loaded machine fire up to a millisecond late (a 200 µs timer measured 0.9 ms
// late at p50 on the project's VM), and sleeps in the kernel's high-resolution timer
// instead.
const kernelBelow = 2 * time.Millisecond

// A sleeper waits until a time; it keeps one Go timer for every wait, so that a
// wait allocates nothing. It is not safe for concurrent use.
type sleeper struct{ t *time.Timer }

// until waits until Now() ≥ at, ctx ends or done is closed. While the deadline is far it waits on
// a Go timer (so ctx can end it); for the last kernelBelow it sleeps in
// clock_nanosleep(2) with an absolute deadline, which blocks the thread (Go hands
// its other goroutines to another thread) for at most kernelBelow and wakes within
// tens of microseconds. It returns ctx's error if ctx ended first, os.ErrClosed if
// done was closed.
func (s *sleeper) until(ctx context.Context, done <-chan struct{}, at int64) error {
	for {
		left := time.Duration(at - Now())
		if left <= 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if left > kernelBelow {
			if s.t == nil {
				s.t = time.NewTimer(left - kernelBelow)
			} else {
				s.t.Reset(left - kernelBelow)
			}
			select {
			case <-ctx.Done():
				s.t.Stop()
				return ctx.Err()
			case <-done:
				s.t.Stop()
				return os.ErrClosed
			case <-s.t.C:
			}
			continue
		}
		ts := unix.NsecToTimespec(at)
		if err := unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &ts, nil); err != nil && err != unix.EINTR {
			// Only a bad argument fails; wait the rest on a Go timer.
			time.Sleep(left)
		}
	}
}
