package sys

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// POSIX message queue constants from <linux/mqueue.h> and <asm-generic/siginfo.h>.
const (
	// MqPrioMax is MQ_PRIO_MAX on Linux: priorities run from 0 to MqPrioMax-1.
	MqPrioMax = 32768
	// MqNameMax is NAME_MAX, the longest queue name (without its leading slash).
	MqNameMax = 255
	// NotifyCookieLen is NOTIFY_COOKIE_LEN: the size of the cookie a SIGEV_THREAD
	// registration hands the kernel, and of the netlink message it sends back.
	NotifyCookieLen = 32
	// NotifyNone, NotifyWokenUp and NotifyRemoved are the values the kernel stores in
	// the last byte of a SIGEV_THREAD cookie: NOTIFY_NONE, NOTIFY_WOKENUP (a message
	// arrived) and NOTIFY_REMOVED (the registration was removed).
	NotifyNone    = 0
	NotifyWokenUp = 1
	NotifyRemoved = 2

	// SigevSignal, SigevNone, SigevThread and SigevThreadID are the sigev_notify values.
	SigevSignal   = 0
	SigevNone     = 1
	SigevThread   = 2
	SigevThreadID = 4

	// SiMesgq is SI_MESGQ, the si_code of a signal sent by a queue notification.
	SiMesgq = -3
)

// MqAttr is the kernel's struct mq_attr.
type MqAttr struct {
	Flags   int64 // mq_flags: 0 or O_NONBLOCK
	Maxmsg  int64 // mq_maxmsg: capacity in messages
	Msgsize int64 // mq_msgsize: largest message in bytes
	Curmsgs int64 // mq_curmsgs: messages queued now
	_       [4]int64
}

// Sigevent is the kernel's struct sigevent (64 bytes on 64-bit Linux), reduced to the
// fields mq_notify reads.
type Sigevent struct {
	value  uintptr  // sigev_value (sival_ptr / sival_int)
	Signo  int32    // sigev_signo (SIGEV_THREAD: the netlink socket)
	Notify int32    // sigev_notify
	_      [48]byte // _sigev_un
}

// SetValueInt sets sigev_value.sival_int, which a SIGEV_SIGNAL notification delivers
// in si_value.
func (s *Sigevent) SetValueInt(v int32) {
	s.value = uintptr(uint32(v)) // little-endian: sival_int is the low half
}

// mqName converts a queue name without its leading slash to a C string.
func mqName(name string) (*byte, error) {
	return unix.BytePtrFromString(name)
}

// MqOpen is mq_open(2): name must not carry the leading slash (the C library strips
// it; the system call wants the bare name). attr may be nil for the kernel's defaults;
// it is read only with O_CREAT.
func MqOpen(name string, flags int, mode uint32, attr *MqAttr) (int, error) {
	p, err := mqName(name)
	if err != nil {
		return -1, err
	}
	fd, _, e := unix.Syscall6(unix.SYS_MQ_OPEN, uintptr(unsafe.Pointer(p)), uintptr(flags),
		uintptr(mode), uintptr(unsafe.Pointer(attr)), 0, 0)
	runtime.KeepAlive(p)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

// MqUnlink is mq_unlink(2); name has no leading slash.
func MqUnlink(name string) error {
	p, err := mqName(name)
	if err != nil {
		return err
	}
	_, _, e := unix.Syscall(unix.SYS_MQ_UNLINK, uintptr(unsafe.Pointer(p)), 0, 0)
	runtime.KeepAlive(p)
	return errnoErr(e)
}

// MqTimedsend is mq_timedsend(2). abs is an absolute CLOCK_REALTIME time, or nil to
// wait without limit; the kernel looks at it only when the call would block. It does
// not allocate.
func MqTimedsend(fd int, p []byte, prio uint, abs *unix.Timespec) error {
	return errnoErr(MqTimedsendErrno(fd, p, prio, abs))
}

// MqTimedreceive is mq_timedreceive(2): it removes the oldest message of the highest
// priority into p and returns its length and priority. The kernel refuses (EMSGSIZE)
// a p shorter than the queue's mq_msgsize, leaving the message queued. abs is as for
// MqTimedsend. It does not allocate.
func MqTimedreceive(fd int, p []byte, abs *unix.Timespec) (int, uint, error) {
	n, prio, e := MqTimedreceiveErrno(fd, p, abs)
	if e != 0 {
		return 0, 0, e
	}
	return n, prio, nil
}

// MqTimedsendErrno is MqTimedsend returning the raw errno (0 for success), small
// enough to be inlined into a caller's hot path.
func MqTimedsendErrno(fd int, p []byte, prio uint, abs *unix.Timespec) unix.Errno {
	_, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDSEND, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))),
		uintptr(len(p)), uintptr(prio), uintptr(unsafe.Pointer(abs)), 0)
	return e
}

// MqTimedreceiveErrno is MqTimedreceive returning the raw errno (0 for success).
func MqTimedreceiveErrno(fd int, p []byte, abs *unix.Timespec) (int, uint, unix.Errno) {
	var prio uint32
	n, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDRECEIVE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))),
		uintptr(len(p)), uintptr(unsafe.Pointer(&prio)), uintptr(unsafe.Pointer(abs)), 0)
	return int(n), uint(prio), e
}

// MqNotify is mq_notify(2). A nil sev removes this process's registration.
func MqNotify(fd int, sev *Sigevent) error {
	_, _, e := unix.Syscall(unix.SYS_MQ_NOTIFY, uintptr(fd), uintptr(unsafe.Pointer(sev)), 0)
	runtime.KeepAlive(sev)
	return errnoErr(e)
}

// MqNotifyThread registers a raw SIGEV_THREAD notification on fd: the kernel sends
// cookie (last byte replaced by NotifyWokenUp or NotifyRemoved) to the netlink socket
// sock. No thread and no signal is involved.
func MqNotifyThread(fd, sock int, cookie [NotifyCookieLen]byte) error {
	var sev Sigevent
	sev.Notify = SigevThread
	sev.Signo = int32(sock)
	// No call between taking the address and the system call: the stack cannot move.
	sev.value = uintptr(unsafe.Pointer(&cookie))
	_, _, e := unix.Syscall(unix.SYS_MQ_NOTIFY, uintptr(fd), uintptr(unsafe.Pointer(&sev)), 0)
	runtime.KeepAlive(&cookie)
	return errnoErr(e)
}

// MqGetsetattr is mq_getsetattr(2): it stores the current attributes in old (if not
// nil), then applies set (if not nil), of which the kernel uses only O_NONBLOCK in
// Flags.
func MqGetsetattr(fd int, set, old *MqAttr) error {
	_, _, e := unix.Syscall(unix.SYS_MQ_GETSETATTR, uintptr(fd), uintptr(unsafe.Pointer(set)),
		uintptr(unsafe.Pointer(old)))
	return errnoErr(e)
}

// MqNotifySocket opens the kind of socket a raw SIGEV_THREAD registration needs: an
// unbound AF_NETLINK datagram socket, close-on-exec and non-blocking (so the Go poller
// can watch it).
func MqNotifySocket() (int, error) {
	return unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
}
