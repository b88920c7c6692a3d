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

// ReadSpill is readv(2) into p and then spill, returning the count and the raw errno.
// A packet-mode pipe reader uses it to see a packet longer than p: the kernel puts
// the rest of the packet in spill instead of discarding it unseen. It does not
// allocate. With nowait set it is preadv2(RWF_NOWAIT), which does not wait whatever
// the descriptor's O_NONBLOCK flag.
func ReadSpill(fd int, p, spill []byte, nowait bool) (int, unix.Errno) {
	var iov [2]unix.Iovec
	iov[0].Base = unsafe.SliceData(p)
	iov[0].SetLen(len(p))
	iov[1].Base = unsafe.SliceData(spill)
	iov[1].SetLen(len(spill))
	var n uintptr
	var e unix.Errno
	if nowait {
		off := int64(-1)
		n, _, e = unix.Syscall6(unix.SYS_PREADV2, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), 2,
			uintptr(off), uintptr(off), unix.RWF_NOWAIT)
	} else {
		n, _, e = unix.Syscall(unix.SYS_READV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), 2)
	}
	return int(n), e
}

// Readable reports whether a read of fd would not wait now: poll(2) for POLLIN with a
// zero timeout (POLLHUP and POLLERR count, as the read returns at once). It does not
// allocate.
func Readable(fd int) (bool, error) {
	pfd := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	var ts unix.Timespec
	for {
		n, _, e := unix.Syscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd[0])), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return false, e
		}
		return n > 0, nil
	}
}
