// Package threads applies a per-thread kernel setting — CPU affinity, a nice value —
// to every thread of the process. The kernel keeps these per thread, and a Go
// program's goroutines move between the runtime's threads, so setting the calling
// thread alone is not enough; a thread the runtime starts later inherits the
// setting of the thread that creates it.
package threads

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Each calls set with the id of every thread of this process. A thread started
// while the list is walked may have copied the old setting from its creator, so
// the walk of /proc/self/task repeats until a pass finds no thread it has not set.
// A thread that ends meanwhile (ESRCH) is skipped.
func Each(set func(tid int) error) error {
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
			if err := set(tid); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("thread %d: %w", tid, err)
			}
			done[tid], fresh = true, true
		}
		if !fresh {
			return nil
		}
	}
	return errors.New("threads: threads kept appearing while they were being set")
}

// Pin pins every thread of this process to cpu (sched_setaffinity(2)) and returns a
// func that restores the mask the process had. A negative cpu pins nothing.
func Pin(cpu int) (restore func(), err error) {
	if cpu < 0 {
		return func() {}, nil
	}
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return nil, err
	}
	set.Set(cpu)
	if err := Each(func(tid int) error { return unix.SchedSetaffinity(tid, &set) }); err != nil {
		return nil, fmt.Errorf("pin: %w", err)
	}
	return func() { _ = Each(func(tid int) error { return unix.SchedSetaffinity(tid, &old) }) }, nil
}

// Nice sets the nice value of every thread of this process (setpriority(2)) and
// returns a func that sets it back to 0.
func Nice(nice int) (restore func(), err error) {
	set := func(n int) error {
		return Each(func(tid int) error { return unix.Setpriority(unix.PRIO_PROCESS, tid, n) })
	}
	if err := set(nice); err != nil {
		_ = set(0)
		return func() {}, err
	}
	return func() { _ = set(0) }, nil
}
