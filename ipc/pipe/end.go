package pipe

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/fdio"
	"github.com/ipclab/ipclab/internal/option"
	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

// end is what the read and write ends share: the descriptor under the engine
// (internal/fdio: wait modes, deadlines, Close), and packet mode.
type end struct {
	fd   fdio.FD
	name string

	// spill is set on the read end of a packet pipe: a read with a buffer shorter
	// than the longest packet reads the rest of the packet into it (see readErrno).
	spill []byte
	// packet is set on both ends of a packet pipe: a packet Writer refuses the calls
	// that would put bytes in the pipe without making packets of them.
	packet bool

	// read and write are readErrno and writeErrno as fdio.Attempts, made once.
	read, write fdio.Attempt

	// nb is a second, non-blocking open file description of this end, made on first
	// need, for the attempts that must not wait where the kernel refuses RWF_NOWAIT
	// (a FIFO; a pipe holding pages spliced in by vmsplice). -1: none yet.
	nb       *nbDesc
	noNowait atomic.Bool // RWF_NOWAIT was refused: go to nb at once

	// leak closes the descriptors of an end dropped without Close, once the
	// garbage collector finds it (kernel and auto modes: in poller mode the
	// *os.File does that itself).
	leak runtime.Cleanup
}

// nbDesc holds an end's second, non-blocking description. It is allocated apart
// from the end, so that the cleanup of a dropped end can reach it.
type nbDesc struct {
	mu sync.Mutex
	fd int // -1: none yet
}

// closeAll closes the descriptors of an end that was dropped without Close.
func closeAll(d leaked) {
	unix.Close(d.fd)
	d.nb.mu.Lock()
	if d.nb.fd >= 0 {
		unix.Close(d.nb.fd)
	}
	d.nb.mu.Unlock()
}

// leaked is what closeAll needs, free of any reference to the end itself.
type leaked struct {
	fd int
	nb *nbDesc
}

// config is what the options set.
type config struct {
	strategy ipc.WaitStrategy
	packet   bool
	capacity int
	name     string
}

// Option configures New, ReaderFromFd and WriterFromFd.
type Option func(*config)

// WithWait sets how blocking calls wait: ipc.WaitAuto (the default), ipc.WaitPoller
// or ipc.WaitKernel. ipc.WaitSpin is not offered by pipes.
func WithWait(w ipc.WaitStrategy) Option { return func(c *config) { c.strategy = w } }

// Packet makes the pipe a packet pipe (O_DIRECT): each write of up to a page is a
// packet that a read returns whole, never merged with the next. A read into a buffer
// shorter than the packet returns the first len(buf) bytes with an error matching
// ipc.ErrTruncated: the kernel discards the rest of the packet, and ipclab does not
// let that pass unseen. A Reader adopted from a descriptor that has O_DIRECT set is
// a packet reader without this option.
//
// Every writer of a packet pipe must write packets: a packet Writer does (and its
// File, which keeps O_DIRECT), and refuses SpliceFrom and Vmsplice, which would not.
// A packet reader cannot tell a plain writer's bytes from a packet: read into a buffer
// shorter than what is queued, they are reported as a truncated packet and the rest
// is lost.
func Packet() Option { return func(c *config) { c.packet = true } }

// WithCapacity asks for a capacity of at least n bytes (F_SETPIPE_SZ). The kernel
// rounds it up to a power-of-two number of pages; Capacity reports what was granted.
// Unprivileged callers are limited to /proc/sys/fs/pipe-max-size. n must lie in
// [0, 1<<31] (0 keeps the default), as for SetCapacity; New and the FromFd calls
// refuse anything else with ipc.ErrInvalid before any system call.
func WithCapacity(n int) Option { return func(c *config) { c.capacity = n } }

// WithName sets the name used in errors (default "pipe:[inode]").
func WithName(name string) Option { return func(c *config) { c.name = name } }

func buildConfig(opts []Option) (config, error) {
	var c config
	if err := option.Apply(&c, opts); err != nil {
		return c, err
	}
	if c.strategy != ipc.WaitAuto && c.strategy != ipc.WaitPoller && c.strategy != ipc.WaitKernel {
		return c, fmt.Errorf("wait strategy %v not supported (want auto, poller or kernel): %w", c.strategy, ipc.ErrInvalid)
	}
	if err := checkCapacity(c.capacity); err != nil {
		return c, err
	}
	return c, nil
}

// maxCapacity is the largest capacity F_SETPIPE_SZ takes: the kernel truncates its
// argument to 32 bits (so 1<<32 + 4096 would quietly ask for 4096) and rejects
// anything above 1<<31.
const maxCapacity = 1 << 31

// checkCapacity is the range check of every capacity request (WithCapacity,
// SetCapacity), made before the system call.
func checkCapacity(n int) error {
	if n < 0 || n > maxCapacity {
		return fmt.Errorf("capacity %d out of range [0, %d]: %w", n, maxCapacity, ipc.ErrInvalid)
	}
	return nil
}

// spillArea is what packet readers read the rest of an over-long packet into. Its
// contents are never looked at, so every reader shares one, whatever runs at once.
// A packet is at most a page (the kernel splits longer writes into page-sized
// packets), which a buffer of a page plus the spill area always holds.
var spillArea = sync.OnceValue(func() []byte { return make([]byte, os.Getpagesize()) })

// readErrno reads into p from fd, and in packet mode catches the part of a packet
// that does not fit in p: the count it returns is then the packet's length, more
// than len(p) (see truncated). nowait makes the read not wait (RWF_NOWAIT). It is
// the read ends' fdio.Attempt.
func (e *end) readErrno(fd int, p []byte, nowait bool) (int, unix.Errno) {
	var spill []byte
	if e.spill != nil && len(p) < len(e.spill) {
		spill = e.spill[len(p):]
	}
	if nowait {
		if !e.noNowait.Load() {
			n, errno := sys.ReadSpill(fd, p, spill, true)
			if errno != unix.EOPNOTSUPP {
				return n, errno
			}
			e.noNowait.Store(true)
		}
		nb, errno := e.nonblocking(fd, unix.O_RDONLY)
		if errno != 0 {
			return 0, errno
		}
		fd = nb
	}
	if spill != nil {
		return sys.ReadSpill(fd, p, spill, false)
	}
	return sys.ReadErrno(fd, p)
}

// writeErrno writes p to fd; nowait makes the write not wait (RWF_NOWAIT). It is the
// write ends' fdio.Attempt.
func (e *end) writeErrno(fd int, p []byte, nowait bool) (int, unix.Errno) {
	if nowait {
		if !e.noNowait.Load() {
			n, err := sys.WriteNowait(fd, p)
			if err == nil {
				return n, 0
			}
			if errno := err.(unix.Errno); errno != unix.EOPNOTSUPP { // sys.WriteNowait fails only with an errno
				return 0, errno
			}
			e.noNowait.Store(true)
		}
		nb, errno := e.nonblocking(fd, unix.O_WRONLY)
		if errno != 0 {
			return 0, errno
		}
		fd = nb
	}
	return sys.WriteErrno(fd, p)
}

// nonblocking returns e.nb, opening it (a non-blocking description of fd, with
// fd's O_DIRECT) on first use. It runs inside an attempt, under the engine's guard
// against Close; close releases it. A write end with no reader left cannot be
// reopened (ENXIO): a write to it fails with EPIPE, which is what it reports.
func (e *end) nonblocking(fd, access int) (int, unix.Errno) {
	e.nb.mu.Lock()
	defer e.nb.mu.Unlock()
	if e.nb.fd >= 0 {
		return e.nb.fd, 0
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return -1, err.(unix.Errno)
	}
	nb, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), access|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err == unix.ENXIO {
		return -1, unix.EPIPE
	}
	if err != nil {
		return -1, err.(unix.Errno)
	}
	if fl&unix.O_DIRECT != 0 {
		if err := setFlag(nb, unix.O_DIRECT); err != nil {
			unix.Close(nb)
			return -1, err.(unix.Errno)
		}
	}
	e.nb.fd = nb
	return nb, 0
}

// notPacket is the error of a call that would write into a packet pipe without
// making packets (splice, vmsplice, tee from a plain pipe).
func (e *end) notPacket(op string) error {
	return &ipc.OpError{Op: op, Object: e.name, Err: fmt.Errorf(
		"%s does not write packets, and this is a packet pipe: %w", op, ipc.ErrInvalid)}
}

// truncated is the error for a packet of n bytes read into a buffer of size bytes.
func (e *end) truncated(n, size int) error {
	return &ipc.OpError{Op: "read", Object: e.name, Err: fmt.Errorf(
		"packet of %d bytes, buffer of %d: the rest of the packet was discarded: %w", n, size, ipc.ErrTruncated)}
}

// The system calls a thread blocked on a pipe end may be in, with the end as first
// argument (splice's and tee's when the end is their source).
var (
	readCalls  = []uintptr{unix.SYS_READ, unix.SYS_READV, unix.SYS_SPLICE, unix.SYS_TEE}
	writeCalls = []uintptr{unix.SYS_WRITE, unix.SYS_VMSPLICE, unix.SYS_SPLICE}
)

// initEnd takes ownership of fd, an end of a pipe or FIFO, and sets e up in place to use
// it as c says. On error fd is closed.
func initEnd(e *end, fd int, c config) error {
	e.name, e.packet = c.name, c.packet
	if e.name == "" {
		e.name = describe(fd)
	}
	e.read, e.write, e.nb = e.readErrno, e.writeErrno, &nbDesc{fd: -1}
	return e.fd.Init(fd, fdio.Config{Name: e.name, Wait: c.strategy, ReadCalls: readCalls, WriteCalls: writeCalls})
}

// closeWhenDropped arranges for the descriptors of an end in kernel or auto mode to
// be closed if owner (the Reader or Writer holding e) is dropped without Close, as an
// *os.File's are.
func closeWhenDropped[T any](owner *T, e *end) {
	if e.fd.File() == nil {
		e.leak = runtime.AddCleanup(owner, closeAll, leaked{fd: e.fd.Fd(), nb: e.nb})
	}
}

// describe names a descriptor the way /proc/self/fd does ("pipe:[1234]").
func describe(fd int) string {
	if target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd)); err == nil {
		return target
	}
	return fmt.Sprintf("fd %d", fd)
}

// checkPipe verifies that fd is a pipe or FIFO open for access (unix.O_RDONLY or
// unix.O_WRONLY; O_RDWR qualifies for both) and returns its file status flags.
func checkPipe(fd, access int) (int, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return 0, fmt.Errorf("descriptor %d is not a pipe or FIFO (mode %#o): %w", fd, st.Mode, ipc.ErrInvalid)
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return 0, err
	}
	if mode := fl & unix.O_ACCMODE; mode != access && mode != unix.O_RDWR {
		return 0, fmt.Errorf("descriptor %d is not open for %s: %w", fd, map[int]string{unix.O_RDONLY: "reading", unix.O_WRONLY: "writing"}[access], unix.EBADF)
	}
	return fl, nil
}

// Fd returns the descriptor number. It stays valid until Close; do not close it or
// change its flags.
func (e *end) Fd() int { return e.fd.Fd() }

// Wait returns the end's wait strategy.
func (e *end) Wait() ipc.WaitStrategy { return e.fd.Mode() }

// String returns the end's name.
func (e *end) String() string { return e.name }

// close is Close for both ends: idempotent, it unblocks every call in flight (which
// then return an error matching os.ErrClosed) before releasing the descriptor.
func (e *end) close() error {
	e.leak.Stop()
	err := e.fd.Close()
	e.nb.mu.Lock()
	if e.nb.fd >= 0 {
		unix.Close(e.nb.fd)
		e.nb.fd = -1
	}
	e.nb.mu.Unlock()
	return e.wrap("close", err)
}

// Buffered returns the number of bytes queued in the pipe (FIONREAD).
func (e *end) Buffered() (int, error) {
	var n int
	err := e.fd.Control(func(fd int) (err error) {
		n, err = unix.IoctlGetInt(fd, unix.TIOCINQ)
		return err
	})
	return n, e.wrap("ioctl FIONREAD", err)
}

// Capacity returns the pipe's capacity in bytes (F_GETPIPE_SZ).
func (e *end) Capacity() (int, error) {
	var n int
	err := e.fd.Control(func(fd int) (err error) {
		n, err = unix.FcntlInt(uintptr(fd), unix.F_GETPIPE_SZ, 0)
		return err
	})
	return n, e.wrap("fcntl F_GETPIPE_SZ", err)
}

// SetCapacity asks for a capacity of at least n bytes (F_SETPIPE_SZ) and returns what
// the kernel granted (n rounded up to a power-of-two number of pages; 0 gives one
// page). The kernel refuses with EBUSY to shrink below the bytes queued, and with EPERM
// to exceed /proc/sys/fs/pipe-max-size without CAP_SYS_RESOURCE.
func (e *end) SetCapacity(n int) (int, error) {
	if err := checkCapacity(n); err != nil {
		return 0, e.wrap("fcntl F_SETPIPE_SZ", err)
	}
	var got int
	err := e.fd.Control(func(fd int) (err error) {
		got, err = unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, n)
		return err
	})
	return got, e.wrap("fcntl F_SETPIPE_SZ", err)
}

// reopen returns a new open file description of this end (reopened through
// /proc/self/fd), blocking and close-on-exec, in packet mode if this end is, for
// handing to another process.
func (e *end) reopen(access int) (*os.File, error) {
	var f *os.File
	err := e.fd.Control(func(fd int) error {
		// Packet mode (O_DIRECT) is a property of the open file description: carry
		// it over, or a child's writes would not be packets.
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err != nil {
			return err
		}
		nfd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), access|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		// open(2) refuses O_DIRECT here; F_SETFL takes it.
		if _, err := unix.FcntlInt(uintptr(nfd), unix.F_SETFL, fl&unix.O_DIRECT); err != nil {
			unix.Close(nfd)
			return err
		}
		f = os.NewFile(uintptr(nfd), e.name)
		return nil
	})
	return f, e.wrap("reopen", err)
}

// wrap turns an error from any layer into the package's *ipc.OpError.
func (e *end) wrap(op string, err error) error { return e.fd.Wrap(op, err) }

// setDeadline sets the read and/or write deadline, for pending calls too.
func (e *end) setDeadline(t time.Time, read, write bool) error {
	return e.wrap("set deadline", e.fd.SetDeadline(t, read, write))
}
