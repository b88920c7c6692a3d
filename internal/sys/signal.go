package sys

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// saRestart is SA_RESTART from <signal.h>.
const saRestart = 0x10000000

// sigaction is the kernel's struct sigaction on linux/amd64 and linux/arm64.
type sigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// ClearRestart removes SA_RESTART from the handler already installed for sig (the Go
// runtime's, which it installs for every signal), so that a blocking system call that
// the kernel would otherwise restart transparently (read on a pipe, for example)
// returns EINTR when the signal arrives. It reports false, changing nothing, when sig
// has no handler (default action or ignored).
func ClearRestart(sig unix.Signal) (bool, error) {
	var act sigaction
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), 0,
		uintptr(unsafe.Pointer(&act)), 8, 0, 0); e != 0 {
		return false, e
	}
	if act.handler == 0 || act.handler == 1 { // SIG_DFL, SIG_IGN
		return false, nil
	}
	if act.flags&saRestart == 0 {
		return true, nil
	}
	act.flags &^= saRestart
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig),
		uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0); e != 0 {
		return false, e
	}
	return true, nil
}
