package doors

import (
	"sync"
	"sync/atomic"
)

// takeoverCounts counts, per door, the calls the watchdog handed over to another
// goroutine (testHookTakeover).
var takeoverCounts sync.Map // *Door -> *atomic.Int64

func init() {
	testHookTakeover = func(d *Door) {
		v, _ := takeoverCounts.LoadOrStore(d, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}
}

// takeovers returns how many calls of d the watchdog handed over.
func takeovers(d *Door) int64 {
	if v, ok := takeoverCounts.Load(d); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}
