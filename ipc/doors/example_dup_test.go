package doors_test

import (
	"os"

	"golang.org/x/sys/unix"
)

// dupFd returns a close-on-exec duplicate of f's descriptor.
func dupFd(f *os.File) (int, error) {
	return unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
}
