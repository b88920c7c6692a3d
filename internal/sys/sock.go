package sys

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Socket options and control-message types newer than golang.org/x/sys/unix knows.
const (
	// SO_PASSPIDFD asks for an SCM_PIDFD control message with every message (Linux 6.5).
	SO_PASSPIDFD = 76
	// SO_PEERPIDFD returns a pidfd of the peer that connected (Linux 6.5).
	SO_PEERPIDFD = 77
	// SO_PASSRIGHTS=0 makes the kernel refuse SCM_RIGHTS sent to this socket
	// (Linux 6.16).
	SO_PASSRIGHTS = 83
)

// Addr is a socket address in the kernel's own layout, reusable without allocation:
// the raw sockaddr and its length. The zero value is "no address".
type Addr struct {
	raw unix.RawSockaddrAny
	len uint32
}

// Len returns the address length in bytes (0: none; 2 for AF_UNIX: unnamed).
func (a *Addr) Len() int { return int(a.len) }

// Family returns the address family (unix.AF_UNIX, unix.AF_INET), or 0.
func (a *Addr) Family() int {
	if a.len < 2 {
		return 0
	}
	return int(a.raw.Addr.Family)
}

// Reset makes a "no address".
func (a *Addr) Reset() { a.len = 0 }

// SetUnix sets an AF_UNIX address. A name starting with '@' is abstract (the '@'
// becomes the leading NUL and there is no terminating NUL); an empty name is the
// unnamed address (length 2), which bind(2) turns into an autobind. It returns
// unix.EINVAL if the name does not fit.
func (a *Addr) SetUnix(name string) error {
	u := (*unix.RawSockaddrUnix)(unsafe.Pointer(&a.raw))
	if len(name) >= len(u.Path) || (len(name) > 0 && name[0] == 0) {
		return unix.EINVAL
	}
	*u = unix.RawSockaddrUnix{Family: unix.AF_UNIX}
	for i := 0; i < len(name); i++ {
		u.Path[i] = int8(name[i])
	}
	a.len = 2
	if len(name) > 0 {
		a.len += uint32(len(name)) + 1
		if name[0] == '@' {
			u.Path[0] = 0
			a.len-- // abstract: no terminating NUL
		}
	}
	return nil
}

// Unix returns an AF_UNIX address as a name ("" for an unnamed socket, a leading '@'
// for an abstract one). ok is false for another family.
func (a *Addr) Unix() (name string, ok bool) {
	if a.Family() != unix.AF_UNIX {
		return "", false
	}
	u := (*unix.RawSockaddrUnix)(unsafe.Pointer(&a.raw))
	n := int(a.len) - 2
	if n <= 0 {
		return "", true
	}
	n = min(n, len(u.Path))
	b := make([]byte, n)
	for i := 0; i < n; i++ {
		b[i] = byte(u.Path[i])
	}
	if b[0] == 0 {
		b[0] = '@'
		return string(b), true
	}
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), true
		}
	}
	return string(b), true
}

// SetInet4 sets an AF_INET address.
func (a *Addr) SetInet4(ip [4]byte, port int) {
	in := (*unix.RawSockaddrInet4)(unsafe.Pointer(&a.raw))
	*in = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ip}
	p := (*[2]byte)(unsafe.Pointer(&in.Port))
	p[0], p[1] = byte(port>>8), byte(port)
	a.len = unix.SizeofSockaddrInet4
}

// Inet4 returns an AF_INET address. ok is false for another family.
func (a *Addr) Inet4() (ip [4]byte, port int, ok bool) {
	if a.Family() != unix.AF_INET {
		return ip, 0, false
	}
	in := (*unix.RawSockaddrInet4)(unsafe.Pointer(&a.raw))
	p := (*[2]byte)(unsafe.Pointer(&in.Port))
	return in.Addr, int(p[0])<<8 | int(p[1]), true
}

// Bind is bind(2) to a.
func Bind(fd int, a *Addr) error {
	_, _, e := unix.Syscall(unix.SYS_BIND, uintptr(fd), uintptr(unsafe.Pointer(&a.raw)), uintptr(a.len))
	return errnoErr(e)
}

// Connect is connect(2) to a.
func Connect(fd int, a *Addr) error {
	_, _, e := unix.Syscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&a.raw)), uintptr(a.len))
	return errnoErr(e)
}

// Getsockname stores the socket's own address in a.
func Getsockname(fd int, a *Addr) error { return sockaddr(unix.SYS_GETSOCKNAME, fd, a) }

// Getpeername stores the connected peer's address in a.
func Getpeername(fd int, a *Addr) error { return sockaddr(unix.SYS_GETPEERNAME, fd, a) }

// sockaddr is getsockname(2) or getpeername(2) (trap) into a.
func sockaddr(trap uintptr, fd int, a *Addr) error {
	l := uint32(unix.SizeofSockaddrAny)
	_, _, e := unix.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&a.raw)), uintptr(unsafe.Pointer(&l)))
	if e != 0 {
		a.len = 0
		return e
	}
	a.len = l
	return nil
}

// Accept4 is accept4(2) with flags (unix.SOCK_CLOEXEC, unix.SOCK_NONBLOCK); the
// peer's address is stored in from when it is not nil.
func Accept4(fd int, from *Addr, flags int) (int, error) {
	var ptr, lptr uintptr
	l := uint32(unix.SizeofSockaddrAny)
	if from != nil {
		ptr, lptr = uintptr(unsafe.Pointer(&from.raw)), uintptr(unsafe.Pointer(&l))
	}
	nfd, _, e := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(fd), ptr, lptr, uintptr(flags), 0, 0)
	if e != 0 {
		return -1, e
	}
	if from != nil {
		from.len = l
	}
	return int(nfd), nil
}

// iovec describes p for the kernel. An empty p gives a nil base, which the kernel
// never dereferences for a zero length.
func iovec(p []byte) unix.Iovec {
	iov := unix.Iovec{Base: unsafe.SliceData(p)}
	iov.SetLen(len(p))
	return iov
}

// Sendmsg and Recvmsg build their msghdr inline on purpose: a shared helper that
// stores the iovec's address into the msghdr makes both escape to the heap (measured:
// 4 allocations per send/receive pair instead of 0).

// Sendmsg is sendmsg(2) of p with control data oob, to the address to (nil or empty:
// the connected peer). It does not allocate. Callers add unix.MSG_NOSIGNAL.
func Sendmsg(fd int, p, oob []byte, to *Addr, flags int) (int, error) {
	var msg unix.Msghdr
	iov := iovec(p)
	msg.Iov = &iov
	msg.SetIovlen(1)
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}
	if to != nil && to.len > 0 {
		msg.Name = (*byte)(unsafe.Pointer(&to.raw))
		msg.Namelen = to.len
	}
	n, _, e := unix.Syscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), uintptr(flags))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// SendData is sendmsg(2) of p alone (no control data, no address), returning the raw
// errno (0 for success). It does not allocate.
func SendData(fd int, p []byte, flags int) (int, unix.Errno) {
	iov := iovec(p)
	msg := unix.Msghdr{Iov: &iov, Iovlen: 1}
	n, _, e := unix.Syscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), uintptr(flags))
	return int(n), e
}

// RecvData is recvmsg(2) into p with no control buffer and no address, returning the
// data length, the message flags (unix.MSG_TRUNC, unix.MSG_CTRUNC) and the raw errno
// (0 for success). It does not allocate.
func RecvData(fd int, p []byte, flags int) (n, rflags int, errno unix.Errno) {
	iov := iovec(p)
	msg := unix.Msghdr{Iov: &iov, Iovlen: 1}
	r, _, e := unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), uintptr(flags))
	return int(r), int(msg.Flags), e
}

// Recvmsg is recvmsg(2) into p with control buffer oob; the sender's address is
// stored in from when it is not nil. It returns the data length (the full datagram
// length with unix.MSG_TRUNC in flags), the control length and the message flags
// (unix.MSG_TRUNC, unix.MSG_CTRUNC). It does not allocate.
func Recvmsg(fd int, p, oob []byte, from *Addr, flags int) (n, oobn, rflags int, err error) {
	var msg unix.Msghdr
	iov := iovec(p)
	msg.Iov = &iov
	msg.SetIovlen(1)
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}
	if from != nil {
		msg.Name = (*byte)(unsafe.Pointer(&from.raw))
		msg.Namelen = unix.SizeofSockaddrAny
	}
	r, _, e := unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), uintptr(flags))
	if e != 0 {
		if from != nil {
			from.len = 0
		}
		return 0, 0, 0, e
	}
	if from != nil {
		from.len = msg.Namelen
	}
	return int(r), int(msg.Controllen), int(msg.Flags), nil
}

// RecvmsgRaw is recvmsg(2) with caller-chosen iovecs and name length, unvalidated,
// for conformance checks of the kernel's own argument validation (IOV_MAX, a
// negative socklen). namelen 0 passes no name buffer.
func RecvmsgRaw(fd int, iov []unix.Iovec, namelen int32, flags int) (int, error) {
	var msg unix.Msghdr
	var name unix.RawSockaddrAny
	if len(iov) > 0 {
		msg.Iov = &iov[0]
	}
	msg.SetIovlen(len(iov))
	if namelen != 0 {
		msg.Name = (*byte)(unsafe.Pointer(&name))
		msg.Namelen = uint32(namelen)
	}
	r, _, e := unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), uintptr(flags))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// Recvmmsg is recvmmsg(2) of one message into p, for the race test of CVE-2016-7117.
func Recvmmsg(fd int, p []byte, flags int) (int, error) {
	var hdr struct {
		msg unix.Msghdr
		len uint32
		_   uint32
	}
	iov := iovec(p)
	hdr.msg.Iov = &iov
	hdr.msg.SetIovlen(1)
	r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdr)), 1, uintptr(flags), 0, 0)
	if e != 0 {
		return 0, e
	}
	if r == 0 {
		return 0, nil
	}
	return int(hdr.len), nil
}

// PutCmsg writes a control-message header for level and typ with dataLen bytes of data
// at the start of b and returns the data part. b must hold unix.CmsgSpace(dataLen)
// bytes. The kernel's struct cmsghdr layout differs between 32- and 64-bit systems,
// which is why this lives here.
func PutCmsg(b []byte, level, typ, dataLen int) []byte {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = int32(level)
	h.Type = int32(typ)
	h.SetLen(unix.CmsgLen(dataLen))
	return b[unix.CmsgLen(0):unix.CmsgLen(dataLen)]
}

// ParseCmsg reads the control message at the start of b. It returns its level, type
// and data, and the rest of b after the message's padding; ok is false when b holds
// no complete message.
func ParseCmsg(b []byte) (level, typ int, data, rest []byte, ok bool) {
	if len(b) < unix.CmsgLen(0) {
		return 0, 0, nil, nil, false
	}
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	l := int(h.Len)
	if l < unix.CmsgLen(0) || l > len(b) {
		return 0, 0, nil, nil, false
	}
	data = b[unix.CmsgLen(0):l]
	next := min(unix.CmsgSpace(l-unix.CmsgLen(0)), len(b))
	return int(h.Level), int(h.Type), data, b[next:], true
}

// Ucred reads a struct ucred from b (an SCM_CREDENTIALS payload).
func Ucred(b []byte) (unix.Ucred, bool) {
	if len(b) < unix.SizeofUcred {
		return unix.Ucred{}, false
	}
	return *(*unix.Ucred)(unsafe.Pointer(&b[0])), true
}

// PutUcred writes c into b (an SCM_CREDENTIALS payload of unix.SizeofUcred bytes).
func PutUcred(b []byte, c unix.Ucred) {
	*(*unix.Ucred)(unsafe.Pointer(&b[0])) = c
}
