package bench

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/threads"
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

// pinProcess pins the whole process to cpu, not the calling thread: a goroutine that
// is not locked to its thread (poller-mode and std cases run unlocked, see
// lockThread) moves between the runtime's threads, and each must be on cpu.
func pinProcess(cpu int) (restore func(), err error) { return threads.Pin(cpu) }
