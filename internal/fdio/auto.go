package fdio

import (
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/ipclab/ipclab/internal/wait"
)

// MaxSleepers is how many Auto-mode calls of a process may sleep in the kernel at
// once, each holding an OS thread; the others wait in the poller.
const MaxSleepers = 32

// StuckAfter is the watchdog's tick: an Auto-mode call that has slept in the kernel
// through a whole tick, on a descriptor where no such call returned meanwhile, is
// interrupted and moved to the poller.
const StuckAfter = 5 * time.Millisecond

// sleepers is the process-wide state of the Auto mode.
var sleepers struct {
	n       atomic.Int32 // calls asleep in the kernel (or about to be)
	running atomic.Bool  // the watchdog is running

	mu  sync.Mutex
	fds map[weak.Pointer[FD]]struct{} // open Auto-mode descriptors (weak: a dropped one goes)
}

// takeSleeper claims a place for a call to sleep in the kernel, if one is free.
func takeSleeper() bool {
	if sleepers.n.Add(1) > MaxSleepers {
		sleepers.n.Add(-1)
		return false
	}
	if !sleepers.running.Load() && sleepers.running.CompareAndSwap(false, true) {
		go watchdog()
	}
	return true
}

// giveSleeper returns the place takeSleeper claimed.
func giveSleeper() { sleepers.n.Add(-1) }

// pollerReady makes sure, once, that the runtime poller exists (see register).
var pollerReady sync.Once

// register lists f for the watchdog. It also starts the runtime poller if nothing
// has yet: the watchdog's ticker needs it, and starting it takes descriptors of its
// own (epoll, eventfd), which a process at its descriptor limit when the first call
// sleeps would not have — the runtime would abort.
func register(f *FD) {
	pollerReady.Do(func() { time.AfterFunc(time.Hour, func() {}).Stop() })
	sleepers.mu.Lock()
	if sleepers.fds == nil {
		sleepers.fds = make(map[weak.Pointer[FD]]struct{})
	}
	sleepers.fds[weak.Make(f)] = struct{}{}
	sleepers.mu.Unlock()
}

// unregister forgets f.
func unregister(f *FD) {
	sleepers.mu.Lock()
	delete(sleepers.fds, weak.Make(f))
	sleepers.mu.Unlock()
}

// watchdog runs while calls sleep in the kernel: every StuckAfter it interrupts the
// calls that have slept through the last tick on a descriptor that made no progress,
// and they move to the poller. It stops when no call sleeps.
func watchdog() {
	t := time.NewTicker(StuckAfter)
	defer t.Stop()
	for range t.C {
		if sleepers.n.Load() == 0 {
			sleepers.running.Store(false)
			// A call may have taken a place after the load and seen the watchdog
			// still running: look again before leaving it alone.
			if sleepers.n.Load() == 0 || !sleepers.running.CompareAndSwap(false, true) {
				forget()
				return
			}
		}
		var stuck []*FD
		sleepers.mu.Lock()
		for wf := range sleepers.fds {
			f := wf.Value()
			if f == nil {
				delete(sleepers.fds, wf)
				continue
			}
			busy := f.set.InFlight() > 0
			p := f.progress.Load()
			if busy && f.lastBusy && p == f.lastProgress {
				stuck = append(stuck, f)
			}
			f.lastBusy, f.lastProgress = busy, p
		}
		sleepers.mu.Unlock()
		for _, f := range stuck {
			f.kickSleepers()
		}
	}
}

// forget clears the watchdog's memory of every descriptor, so that the next run
// starts afresh.
func forget() {
	sleepers.mu.Lock()
	for wf := range sleepers.fds {
		if f := wf.Value(); f != nil {
			f.lastBusy = false
		} else {
			delete(sleepers.fds, wf)
		}
	}
	sleepers.mu.Unlock()
}

// kickSleepers interrupts the threads asleep on f in a read or write; each returns
// EINTR and moves to the poller (Do). It holds f's in-flight count meanwhile, so
// that Close cannot release the descriptor number under it.
func (f *FD) kickSleepers() {
	if !f.set.Acquire() {
		return
	}
	defer f.set.Release()
	for i := range f.dirs {
		wait.Kick(uintptr(f.fd), f.dirs[i].calls)
	}
}
