package sys

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// errnoErr turns a raw errno into an error without allocating.
func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// ReadNowait reads into p from fd without waiting, whatever the descriptor's
// O_NONBLOCK flag: preadv2(fd, iov, 1, -1, RWF_NOWAIT). It returns unix.EAGAIN when
// nothing can be read at once. Supported for pipes, FIFOs and sockets on Linux ≥ 5.x.
func ReadNowait(fd int, p []byte) (int, error) {
	return rwNowait(unix.SYS_PREADV2, fd, p)
}

// WriteNowait writes p to fd without waiting: pwritev2(fd, iov, 1, -1, RWF_NOWAIT).
// It returns unix.EAGAIN when nothing can be written at once, or a short count.
func WriteNowait(fd int, p []byte) (int, error) {
	return rwNowait(unix.SYS_PWRITEV2, fd, p)
}

func rwNowait(trap uintptr, fd int, p []byte) (int, error) {
	var iov unix.Iovec
	if len(p) > 0 {
		iov.Base = &p[0]
	} else {
		var zero byte
		iov.Base = &zero
	}
	iov.SetLen(len(p))
	// offset -1 (pos_l = -1, pos_h = -1): use and advance the file position, which
	// for pipes means "just read/write".
	off := int64(-1)
	n, _, e := unix.Syscall6(trap, uintptr(fd), uintptr(unsafe.Pointer(&iov)), 1,
		uintptr(off), uintptr(off), unix.RWF_NOWAIT)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// Vmsplice maps or copies the bytes of p into the pipe fd (vmsplice(2)) with flags
// (unix.SPLICE_F_NONBLOCK, unix.SPLICE_F_GIFT). It returns the number of bytes
// spliced.
func Vmsplice(fd int, p []byte, flags int) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	iov := unix.Iovec{Base: &p[0]}
	iov.SetLen(len(p))
	n, _, e := unix.Syscall6(unix.SYS_VMSPLICE, uintptr(fd), uintptr(unsafe.Pointer(&iov)), 1,
		uintptr(flags), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// Read is read(2) with the errno as the error (a unix.Errno); it does not allocate.
func Read(fd int, p []byte) (int, error) {
	n, e := ReadErrno(fd, p)
	if e != 0 {
		return 0, e
	}
	return n, nil
}

// Write is write(2) with the errno as the error (a unix.Errno); it does not allocate.
func Write(fd int, p []byte) (int, error) {
	n, e := WriteErrno(fd, p)
	if e != 0 {
		return 0, e
	}
	return n, nil
}

// ReadErrno is read(2) returning the count and the raw errno (0 for success). Unlike
// Read it is small enough to be inlined into a caller's hot path.
func ReadErrno(fd int, p []byte) (int, unix.Errno) {
	n, _, e := unix.Syscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	return int(n), e
}

// WriteErrno is write(2) returning the count and the raw errno (0 for success).
func WriteErrno(fd int, p []byte) (int, unix.Errno) {
	n, _, e := unix.Syscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	return int(n), e
}
