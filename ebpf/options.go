package ebpf

import (
	"errors"
	"os"
	"strings"
)

// Options configures Load.
type Options struct {
	// PIDs restricts tracing to these processes (all their threads). Empty: every
	// process on the machine, unless FilterPIDs.
	PIDs []int
	// FilterPIDs restricts tracing to PIDs even when it is empty, so that processes
	// can be added later with AddPID (after registering their descriptors, say).
	FilterPIDs bool
	// FollowForks adds the children that traced processes create (sched_process_fork)
	// to the traced set, and drops a followed process when it exits.
	FollowForks bool
	// OnlyRegistered attributes only the descriptors and ids registered with
	// RegisterFD and RegisterSysV (and epoll waits); nothing is classified.
	OnlyRegistered bool
	// Attach forces one way of attaching; AttachAuto tries them in order.
	Attach Attach
	// SampleEvery traces 1 call in SampleEvery, chosen at random in the kernel at
	// sys_enter (0 or 1: every call). An unsampled call costs one map lookup and one
	// random number and leaves nothing behind. Counts and histograms are then of the
	// sampled calls, and the readiness wait is not recorded; see "Sampling" in the
	// package doc for the error this brings.
	SampleEvery int
}

// Attach is a way of attaching the probes to their tracepoints.
type Attach int

// The ways of attaching, in the order Load tries them.
const (
	AttachAuto       Attach = iota // try the others in order
	AttachTPBTF                    // BTF-typed raw tracepoints (tp_btf)
	AttachRawTP                    // raw tracepoints
	AttachTracepoint               // classic tracepoints (need tracefs mounted)
)

// String returns "auto", "tp_btf", "raw_tp" or "tracepoint".
func (a Attach) String() string {
	switch a {
	case AttachAuto:
		return "auto"
	case AttachTPBTF:
		return "tp_btf"
	case AttachRawTP:
		return "raw_tp"
	case AttachTracepoint:
		return "tracepoint"
	}
	return "unknown"
}

// PermissionError is returned by Load when the process lacks the capabilities to load
// and attach tracing programs. The kernel's own answer (EPERM from bpf(2), whatever
// was missing) does not say which.
type PermissionError struct {
	// Missing lists the capabilities the process lacks, e.g. "CAP_BPF", "CAP_PERFMON".
	Missing []string
	// Err is the underlying error, if a system call failed.
	Err error
}

// Error names the missing capabilities.
func (e *PermissionError) Error() string {
	s := "ebpf: loading the probes needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN, or root); missing " +
		strings.Join(e.Missing, ", ")
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying error.
func (e *PermissionError) Unwrap() error { return e.Err }

// Is reports whether target is os.ErrPermission.
func (e *PermissionError) Is(target error) bool { return target == os.ErrPermission }

// ErrUnsupported is returned by Load on architectures for which the probes are not
// built.
var ErrUnsupported = errors.New("ebpf: probes are built for linux/amd64 only")
