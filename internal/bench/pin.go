package bench

import (
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

// pinProcess pins every thread of this process to cpu (new threads inherit it from
// the thread that creates them). It returns a function that restores the old mask.
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

func setAllThreads(set *unix.CPUSet) error {
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, e := range entries {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH {
			return fmt.Errorf("pin thread %d: %w", tid, err)
		}
	}
	return nil
}
