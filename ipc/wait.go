package ipc

import "fmt"

// WaitStrategy says how a blocking call on an object waits.
type WaitStrategy uint8

const (
	// WaitAuto is the default for descriptors: a call sleeps in the kernel, as with
	// WaitKernel, while it is expected to be short (nothing but Close can end it, and
	// few calls of the process sleep at once); a call that stays asleep is moved to
	// the runtime poller after a few milliseconds, and calls with a context that can
	// end or a deadline wait there from the start. A round trip costs what
	// WaitKernel's does; idle descriptors hold no OS thread.
	WaitAuto WaitStrategy = iota
	// WaitPoller parks the goroutine in the Go runtime's network poller (epoll) while
	// the descriptor is not ready. No OS thread is held.
	WaitPoller
	// WaitKernel blocks the calling OS thread inside the system call itself (read,
	// write, msgrcv, semop), as a C program would, so the kernel (and an eBPF probe)
	// sees the wait where it happens. Still cancellable: ipclab interrupts the thread
	// with a signal. Costs one OS thread per blocked call.
	WaitKernel
	// WaitSpin polls without sleeping for a short while before falling back to
	// sleeping. Only shared-memory objects offer it.
	WaitSpin
)

// String returns "auto", "poller", "kernel" or "spin".
func (w WaitStrategy) String() string {
	switch w {
	case WaitAuto:
		return "auto"
	case WaitPoller:
		return "poller"
	case WaitKernel:
		return "kernel"
	case WaitSpin:
		return "spin"
	}
	return fmt.Sprintf("WaitStrategy(%d)", uint8(w))
}

// ParseWaitStrategy parses the names String returns.
func ParseWaitStrategy(s string) (WaitStrategy, error) {
	switch s {
	case "auto":
		return WaitAuto, nil
	case "poller":
		return WaitPoller, nil
	case "kernel":
		return WaitKernel, nil
	case "spin":
		return WaitSpin, nil
	}
	return 0, fmt.Errorf("unknown wait strategy %q (want auto, poller, kernel or spin): %w", s, ErrInvalid)
}
