package bench

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Pin modes: where the two processes of a run may run.
const (
	PinSame  = "same"  // both on one CPU: hand-offs never cross CPUs
	PinCross = "cross" // one CPU each: every hand-off wakes a peer on the other CPU
	PinNone  = "none"  // wherever the scheduler puts them
)

// cpusFor returns the CPUs the parent and the peer are pinned to under mode, or -1
// for no pinning.
func cpusFor(mode string) (parent, peer int, err error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return -1, -1, err
	}
	var cpus []int
	for c := 0; c < len(set)*64 && len(cpus) < 2; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	switch mode {
	case PinNone, "":
		return -1, -1, nil
	case PinSame:
		return cpus[0], cpus[0], nil
	case PinCross:
		if len(cpus) < 2 {
			return -1, -1, fmt.Errorf("--pin cross needs two CPUs; this process may use only %d", len(cpus))
		}
		return cpus[0], cpus[1], nil
	}
	return -1, -1, fmt.Errorf("unknown pin mode %q (want same, cross or none)", mode)
}

// pinProcess pins every thread of this process to cpu and returns a function that
// restores the old mask.
//
// The whole process is pinned, not the calling thread: a goroutine that is not locked
// to its thread (poller-mode and std cases run unlocked, see lockThread) moves between
// the runtime's threads, and each of them must be on cpu. sched_setaffinity is per
// thread, so every tid in /proc/self/task is set; a thread the runtime starts later
// inherits the mask of the thread that creates it, which is then already pinned. A
// thread started while the list is being walked may have copied the old mask from
// its creator, so the walk repeats until a pass finds no thread it has not set.
func pinProcess(cpu int) (restore func(), err error) {
	if cpu < 0 {
		return func() {}, nil
	}
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return nil, err
	}
	var set unix.CPUSet
	set.Set(cpu)
	if err := setAllThreads(&set); err != nil {
		return nil, err
	}
	return func() { _ = setAllThreads(&old) }, nil
}

// setAllThreads sets the affinity of every thread of this process to set, repeating
// the walk of /proc/self/task until it finds no thread it has not set yet.
func setAllThreads(set *unix.CPUSet) error {
	done := map[int]bool{}
	for pass := 0; pass < 100; pass++ {
		entries, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		fresh := false
		for _, e := range entries {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || done[tid] {
				continue
			}
			if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH {
				return fmt.Errorf("pin thread %d: %w", tid, err)
			}
			done[tid], fresh = true, true
		}
		if !fresh {
			return nil
		}
	}
	return errors.New("pin: threads kept appearing while setting their CPU affinity")
}
