package ipc

import "fmt"

// WaitStrategy says how a blocking call on an object waits.
type WaitStrategy uint8

const (
	// WaitPoller parks the goroutine in the Go runtime's network poller (epoll) while
	// the descriptor is not ready. No OS thread is held. The default for descriptors.
	WaitPoller WaitStrategy = iota
	// WaitKernel blocks the calling OS thread inside the system call itself (read,
	// write, msgrcv, semop), as a C program would, so the kernel (and an eBPF probe)
	// sees the wait where it happens. Still cancellable: ipclab interrupts the thread
	// with a signal. Costs one OS thread per blocked call.
	WaitKernel
	// WaitSpin polls without sleeping for a short while before falling back to
	// sleeping. Only shared-memory objects offer it.
	WaitSpin
)

// String returns "poller", "kernel" or "spin".
func (w WaitStrategy) String() string {
	switch w {
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
	case "poller":
		return WaitPoller, nil
	case "kernel":
		return WaitKernel, nil
	case "spin":
		return WaitSpin, nil
	}
	return 0, fmt.Errorf("unknown wait strategy %q (want poller, kernel or spin): %w", s, ErrInvalid)
}
