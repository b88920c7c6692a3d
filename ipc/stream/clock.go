package stream

import (
	"context"
	"runtime"
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

// spinBelow is how close to a deadline sleepUntil stops sleeping and spins: Go's
// timers overshoot by tens of microseconds on a loaded machine.
const spinBelow = 150 * time.Microsecond

// sleepUntil waits until Now() ≥ at or ctx ends; it sleeps while the deadline is far
// and yields the CPU in a loop for the last spinBelow. It returns ctx's error if ctx
// ended first.
func sleepUntil(ctx context.Context, at int64) error {
	for {
		left := time.Duration(at - Now())
		if left <= 0 {
			return nil
		}
		if left > spinBelow {
			t := time.NewTimer(left - spinBelow)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		runtime.Gosched()
	}
}
