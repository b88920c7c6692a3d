package pipe

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/internal/wait"
	"github.com/ipclab/ipclab/ipc"
)

// end is what the read and write ends share: the descriptor, how it waits, and the
// bookkeeping that makes Close safe while calls are in flight.
type end struct {
	// The fields a kernel-mode read or write touches come first, so that they share
	// cache lines: after the peer has run on this CPU, every extra line is a miss.

	// Kernel mode: the raw descriptor, and the threads blocked on it.
	fd      int
	waiters wait.Set

	// Deadlines set with SetReadDeadline/SetWriteDeadline. Kernel mode enforces them
	// itself; poller mode also hands them to the *os.File.
	dl wait.Deadlines

	// Poller mode: the descriptor lives in an *os.File registered with the poller, and
	// rc reaches it for non-blocking attempts.
	file *os.File
	rc   syscall.RawConn
	// turn lets one poller-mode call at a time wait on the file, so that it alone
	// owns the file's deadline; the others wait for their turn under their own
	// contexts and deadlines.
	turn wait.Turn

	name     string
	strategy ipc.WaitStrategy

	// spill is set on the read end of a packet pipe: a read with a buffer shorter
	// than the longest packet reads the rest of the packet into it (see readErrno).
	spill []byte
	// packet is set on both ends of a packet pipe: a packet Writer refuses the calls
	// that would put bytes in the pipe without making packets of them.
	packet bool

	closeOnce sync.Once
	closeErr  error
	// closed is set by Close (poller mode: before the file is closed), so that the
	// errors the file's RawConn gives for a closed file read as os.ErrClosed.
	closed atomic.Bool

	// Poller-mode Try calls reuse one callback so that they do not allocate.
	tryMu  sync.Mutex
	tryBuf []byte
	tryN   int
	tryErr error
	tryRd  func(uintptr)
	tryWr  func(uintptr)
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

// WithWait sets how blocking calls wait (default ipc.WaitPoller). ipc.WaitSpin is not
// offered by pipes.
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
	for _, o := range opts {
		o(&c)
	}
	if c.strategy != ipc.WaitPoller && c.strategy != ipc.WaitKernel {
		return c, fmt.Errorf("wait strategy %v not supported (want poller or kernel): %w", c.strategy, ipc.ErrInvalid)
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
// than len(p) (see truncated). nowait makes the read not wait (RWF_NOWAIT).
func (e *end) readErrno(fd int, p []byte, nowait bool) (int, unix.Errno) {
	if e.spill != nil && len(p) < len(e.spill) {
		return sys.ReadSpill(fd, p, e.spill[len(p):], nowait)
	}
	if nowait {
		return sys.ReadSpill(fd, p, nil, true)
	}
	return sys.ReadErrno(fd, p)
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

// initEnd takes ownership of fd, an end of a pipe or FIFO, and sets e up in place to use
// it as c says. On error fd is closed.
func initEnd(e *end, fd int, c config) error {
	e.name, e.strategy, e.fd, e.packet = c.name, c.strategy, -1, c.packet
	if e.name == "" {
		e.name = describe(fd)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
		unix.Close(fd)
		return ipc.Wrap("fcntl", e.name, err)
	}
	if err := unix.SetNonblock(fd, c.strategy == ipc.WaitPoller); err != nil {
		unix.Close(fd)
		return ipc.Wrap("fcntl", e.name, err)
	}
	if c.strategy == ipc.WaitKernel {
		e.fd = fd
		e.waiters.Identify(uintptr(fd), unix.SYS_READ, unix.SYS_READV, unix.SYS_WRITE, unix.SYS_SPLICE, unix.SYS_TEE, unix.SYS_VMSPLICE)
		return nil
	}
	e.file = os.NewFile(uintptr(fd), e.name)
	rc, err := e.file.SyscallConn()
	if err != nil {
		e.file.Close()
		return ipc.Wrap("open", e.name, err)
	}
	e.rc = rc
	e.turn.Init()
	e.tryRd = func(fd uintptr) {
		var errno unix.Errno
		e.tryN, errno = e.readErrno(int(fd), e.tryBuf, false)
		e.tryErr = nil
		if errno != 0 {
			e.tryN, e.tryErr = 0, errno
		}
	}
	e.tryWr = func(fd uintptr) {
		e.tryN, e.tryErr = sys.Write(int(fd), e.tryBuf)
	}
	return nil
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

// control runs f with the descriptor, guarding against a concurrent Close.
func (e *end) control(f func(fd int) error) error {
	if e.file != nil {
		var ferr error
		if err := e.rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
			return e.rawErr(err)
		}
		return ferr
	}
	if !e.waiters.Acquire() {
		return os.ErrClosed
	}
	defer e.waiters.Release()
	return f(e.fd)
}

// tryPoller makes one non-blocking read or write on the poller's descriptor,
// reusing the end's prepared callback so nothing is allocated. It goes through
// RawConn.Control, which guards against Close but does not queue behind a call
// waiting in the poller: a Try call never waits.
func (e *end) tryPoller(p []byte, write bool) (int, error) {
	e.tryMu.Lock()
	defer e.tryMu.Unlock()
	e.tryBuf = p
	var err error
	if write {
		err = e.rc.Control(e.tryWr)
	} else {
		err = e.rc.Control(e.tryRd)
	}
	e.tryBuf = nil
	if err != nil {
		return 0, e.rawErr(err)
	}
	return e.tryN, e.tryErr
}

// rawErr turns the error of a poller-mode RawConn call into os.ErrClosed once the end
// is closed (the RawConn reports a closed file with an error of its own).
func (e *end) rawErr(err error) error {
	if err != nil && e.closed.Load() {
		return os.ErrClosed
	}
	return err
}

// fastRead is the kernel-mode hot path for a read only Close can end: one read(2) on
// the blocking descriptor with nothing around it but the in-flight count that Close
// waits for (Close finds a blocked thread itself). An interrupted read goes on in
// blockingIO.
func (e *end) fastRead(p []byte) (int, error) {
	if !e.waiters.Acquire() {
		return 0, os.ErrClosed
	}
	n, errno := e.readErrno(e.fd, p, false)
	e.waiters.Release()
	if errno != 0 {
		return e.blockingIO(p, false, errno)
	}
	return n, nil
}

// fastWrite is fastRead for write(2).
func (e *end) fastWrite(p []byte) (int, error) {
	if !e.waiters.Acquire() {
		return 0, os.ErrClosed
	}
	n, errno := sys.WriteErrno(e.fd, p)
	e.waiters.Release()
	if errno != 0 {
		return e.blockingIO(p, true, errno)
	}
	return n, nil
}

// blockingIO finishes a fast-path call that failed with errno: it retries after EINTR
// until the call succeeds, fails otherwise, or the end is closed.
func (e *end) blockingIO(p []byte, write bool, errno unix.Errno) (n int, err error) {
	if errno != unix.EINTR {
		return 0, errno
	}
	if !e.waiters.Acquire() {
		return 0, os.ErrClosed
	}
	defer e.waiters.Release()
	for {
		if e.dl.Expired(write) { // set while the call waited (see setDeadline)
			return 0, os.ErrDeadlineExceeded
		}
		if write {
			n, errno = sys.WriteErrno(e.fd, p)
		} else {
			n, errno = e.readErrno(e.fd, p, false)
		}
		switch {
		case errno == 0:
			return n, nil
		case errno != unix.EINTR:
			return 0, errno
		case e.waiters.Closed():
			return 0, os.ErrClosed
		}
	}
}

// fast reports whether a call under ctx with the deadline dl can take the kernel-mode
// hot path: nothing but Close can end it.
func (e *end) fast(ctx context.Context, dl *atomic.Int64) bool {
	// Identify is called in kernel mode only, so Identified also says kernel mode.
	return e.waiters.Identified() && dl.Load() == 0 && ctx.Done() == nil
}

// tryKernel makes one read or write that does not wait on a blocking descriptor
// (RWF_NOWAIT).
func (e *end) tryKernel(p []byte, write bool) (int, error) {
	if !e.waiters.Acquire() {
		return 0, os.ErrClosed
	}
	defer e.waiters.Release()
	if write {
		return sys.WriteNowait(e.fd, p)
	}
	n, errno := e.readErrno(e.fd, p, true)
	if errno != 0 {
		return 0, errno
	}
	return n, nil
}

// Fd returns the descriptor number. It stays valid until Close; do not close it or
// change its flags.
func (e *end) Fd() int {
	if e.file != nil {
		var n int
		_ = e.rc.Control(func(fd uintptr) { n = int(fd) })
		return n
	}
	return e.fd
}

// Wait returns the end's wait strategy.
func (e *end) Wait() ipc.WaitStrategy { return e.strategy }

// String returns the end's name.
func (e *end) String() string { return e.name }

// close is Close for both ends: idempotent, it unblocks every call in flight (which
// then return an error matching os.ErrClosed) before releasing the descriptor.
func (e *end) close() error {
	e.closeOnce.Do(func() {
		e.closed.Store(true)
		if e.file != nil {
			e.turn.Close()
			e.closeErr = e.file.Close()
			return
		}
		e.waiters.Close()
		e.closeErr = unix.Close(e.fd)
	})
	if e.closeErr != nil {
		return ipc.Wrap("close", e.name, e.closeErr)
	}
	return nil
}

// Buffered returns the number of bytes queued in the pipe (FIONREAD).
func (e *end) Buffered() (int, error) {
	var n int
	err := e.control(func(fd int) (err error) {
		n, err = unix.IoctlGetInt(fd, unix.TIOCINQ)
		return err
	})
	return n, e.wrap("ioctl FIONREAD", err)
}

// Capacity returns the pipe's capacity in bytes (F_GETPIPE_SZ).
func (e *end) Capacity() (int, error) {
	var n int
	err := e.control(func(fd int) (err error) {
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
	err := e.control(func(fd int) (err error) {
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
	err := e.control(func(fd int) error {
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
func (e *end) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	var errno unix.Errno
	if errors.As(err, &errno) {
		return ipc.Wrap(op, e.name, errno)
	}
	if errors.Is(err, os.ErrClosed) {
		err = os.ErrClosed
	}
	return &ipc.OpError{Op: op, Object: e.name, Err: err}
}

// pollerCall makes one poller-mode read or write (do) under ctx. It waits for the
// end's turn first (under ctx, the deadline and Close), so that no other call waits
// on the file meanwhile; a ctx that can end is then applied to the file as a
// deadline (wait.ViaDeadline), and the deadline set by the caller restored after.
func (e *end) pollerCall(ctx context.Context, write bool, do func() (int, error)) (int, error) {
	if err := e.turn.Take(ctx, &e.dl, write); err != nil {
		return 0, err
	}
	defer e.turn.Give()
	if ctx.Done() == nil {
		return do()
	}
	set := e.file.SetReadDeadline
	if write {
		set = e.file.SetWriteDeadline
	}
	var n int
	err := wait.ViaDeadline(ctx, &e.dl, write, set, func() (err error) {
		n, err = do()
		return err
	})
	return n, err
}

// setDeadline sets the read and/or write deadline, for pending calls too. In kernel
// mode the calls blocked in read or write are interrupted when it passes, and
// look at it again (blockingIO, readKernel, writeKernel, move).
func (e *end) setDeadline(t time.Time, read, write bool) error {
	e.dl.Set(t, read, write)
	if e.file == nil {
		for _, w := range []bool{false, true} {
			if (w && write) || (!w && read) {
				e.waiters.ExpireAt(w, t, func() bool { return !e.dl.Get(w).Equal(t) })
			}
		}
		return nil
	}
	return e.wrap("set deadline", wait.SetFileDeadline(e.file, t, read, write))
}
