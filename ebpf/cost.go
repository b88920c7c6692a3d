package ebpf

import "time"

// ProbeCost is what the probes' programs cost while a workload ran, by the kernel's BPF
// run-time statistics (the counters kernel.bpf_stats_enabled turns on). The
// statistics read two clocks around every run, so they overstate a run by those
// reads; the figures are an upper bound of the probes' own time.
type ProbeCost struct {
	// Events is the number of probe runs (every system call entry and exit, context
	// switch and wake-up on the machine runs one), RunTime their total time.
	Events  uint64
	RunTime time.Duration
	// Calls is the number of system calls the probes attributed to a primitive
	// while the workload ran (with sampling, the sampled ones times SampleEvery).
	Calls uint64
}

// PerEventNs returns the mean time of one probe run in nanoseconds (0 without runs).
func (c ProbeCost) PerEventNs() float64 {
	if c.Events == 0 {
		return 0
	}
	return float64(c.RunTime.Nanoseconds()) / float64(c.Events)
}

// PerCallNs returns the probes' time per attributed system call in nanoseconds: all
// the runs, including those of the context switches and wake-ups around the calls
// (and of anything else the machine did meanwhile), over the calls (0 without calls).
func (c ProbeCost) PerCallNs() float64 {
	if c.Calls == 0 {
		return 0
	}
	return float64(c.RunTime.Nanoseconds()) / float64(c.Calls)
}

// EventsPerCall returns the probe runs per attributed system call (0 without calls).
func (c ProbeCost) EventsPerCall() float64 {
	if c.Calls == 0 {
		return 0
	}
	return float64(c.Events) / float64(c.Calls)
}
