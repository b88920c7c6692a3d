package sockets

import (
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/fdio"
	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/internal/wait"
	"github.com/ipclab/ipclab/ipc"
)

// base is what every socket shares: the descriptor, how it waits, deadlines, the
// preallocated per-direction system-call state that keeps the hot path free of
// allocations, and a Close that unblocks calls in flight.
type base struct {
	// What a kernel-mode send or receive on the fast path touches comes first, in
	// one cache line: after the peer has run, every extra line is a miss.
	fd       int          // kernel mode: the blocking descriptor
	inflight atomic.Int32 // kernel-mode calls on the fast path (fastpath.go), which hold no op mutex
	closed   atomic.Bool
	// wantCred: SO_PASSCRED is on (or a datagram policy needs credentials), so
	// receives need a control buffer.
	wantCred atomic.Bool
	hot      bool // kernel mode: plain sends and receives may take the fast path
	// recvFlags are the flags every receive passes: MSG_CMSG_CLOEXEC, and on
	// message sockets MSG_TRUNC, so that a truncated message's real length is known.
	recvFlags int32
	// Deadlines set with Set*Deadline, as Unix nanoseconds (0: none). The poller
	// keeps its own copy; these restore it after a context-bound call and bound
	// kernel-mode calls.
	dl wait.Deadlines

	name   string // used in errors
	family int
	sotype int
	cfg    config

	// Poller mode: the non-blocking descriptor lives in an *os.File registered with
	// the runtime poller; rc reaches it.
	file *os.File
	rc   syscall.RawConn

	// Kernel mode: the threads blocked on the descriptor, and what interrupts them
	// when a deadline set while they wait passes (setDeadline).
	waiters            wait.Set
	rdExpiry, wrExpiry wait.Expiry

	closeOnce sync.Once
	closeErr  error
	onClose   func() // runs before the descriptor is released (listener unlink)

	rd, wr op

	local, remote net.Addr
	connected     bool
}

// op is one direction's system call: its arguments and results live here, and the
// callbacks handed to the poller or to internal/wait are built once, so a call
// allocates nothing. turn lets one caller at a time use it; the others wait for
// their turn under their own contexts and deadlines (base.take).
type op struct {
	turn  wait.Turn
	write bool
	fd    int // kernel mode
	p     []byte
	oob   []byte
	buf   []byte // control buffer sized for cfg.maxFds (+ credentials)
	addr  sys.Addr
	to    *sys.Addr // &addr or nil
	flags int

	n, oobn, rflags int
	err             error

	pollFn func(uintptr) bool
	ctlFn  func(uintptr)
	kernFn func() error
	dl     *wait.Deadlines // the socket's, which kernFn checks before each attempt
}

func (o *op) do(fd int) error {
	if o.write {
		o.n, o.err = sys.Sendmsg(fd, o.p, o.oob, o.to, o.flags)
	} else {
		o.n, o.oobn, o.rflags, o.err = sys.Recvmsg(fd, o.p, o.oob, o.to, o.flags)
	}
	return o.err
}

func (o *op) init(write bool, fd int, oobSize int, dl *wait.Deadlines) {
	o.write = write
	o.fd = fd
	o.dl = dl
	o.turn.Init()
	o.buf = make([]byte, oobSize)
	o.pollFn = func(fd uintptr) bool { return o.do(int(fd)) != unix.EAGAIN }
	o.ctlFn = func(fd uintptr) { o.do(int(fd)) }
	o.kernFn = func() error {
		if o.dl.Expired(o.write) { // set while the call waited (see setDeadline)
			return os.ErrDeadlineExceeded
		}
		return o.do(o.fd)
	}
}

// recvFlags returns the flags a receive on a socket of sotype passes. On datagram
// and seqpacket sockets (Unix and UDP) MSG_TRUNC makes recvmsg return a message's
// real length even when it did not fit, so a truncation error can name it; callers
// clamp that length to the buffer for the bytes actually copied. Streams never get
// it: on TCP it would discard the data instead of copying it.
func recvFlags(sotype int) int32 {
	if sotype == unix.SOCK_STREAM {
		return unix.MSG_CMSG_CLOEXEC
	}
	return unix.MSG_CMSG_CLOEXEC | unix.MSG_TRUNC
}

// oobSize is the control buffer a socket needs: room for the fd cap and credentials.
func oobSize(c config) int {
	n := unix.CmsgSpace(unix.SizeofUcred)
	if c.maxFds > 0 {
		n += unix.CmsgSpace(4 * c.maxFds)
	}
	return n
}

// newBase takes ownership of fd, a socket, and sets it up for the configured wait
// strategy. On error fd is closed.
func newBase(fd, family, sotype int, c config) (*base, error) {
	b := &base{family: family, sotype: sotype, cfg: c, fd: fd, recvFlags: recvFlags(sotype)}
	b.local, b.remote, b.connected = sockAddrs(fd, sotype)
	b.name = describe(family, sotype, b.local, b.remote)
	if err := unix.SetNonblock(fd, c.wait == ipc.WaitPoller); err != nil {
		unix.Close(fd)
		return nil, ipc.Wrap("fcntl", b.name, err)
	}
	if c.passCred || dgramPolicy(sotype, c) {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
			unix.Close(fd)
			return nil, ipc.Wrap("setsockopt SO_PASSCRED", b.name, err)
		}
		b.wantCred.Store(true)
	}
	if c.noFds {
		// Linux < 6.16 answers ENOPROTOOPT; receipt then closes unexpected fds.
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, sys.SO_PASSRIGHTS, 0)
	}
	b.rd.init(false, fd, oobSize(c), &b.dl)
	b.wr.init(true, fd, oobSize(c), &b.dl)
	if c.wait == ipc.WaitKernel {
		b.hot = true
		return b, nil
	}
	b.file = os.NewFile(uintptr(fd), b.name)
	rc, err := b.file.SyscallConn()
	if err != nil {
		b.file.Close()
		return nil, ipc.Wrap("open", b.name, err)
	}
	b.rc = rc
	return b, nil
}

// control runs f with the descriptor, guarding against a concurrent Close.
func (b *base) control(f func(fd int) error) error {
	if b.file != nil {
		var ferr error
		if err := b.rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
			return b.pollErr(err)
		}
		return ferr
	}
	if !b.waiters.Acquire() {
		return errClosed
	}
	defer b.waiters.Release()
	return f(b.fd)
}

// wrap builds the package's *ipc.OpError.
func (b *base) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return ipc.Wrap(op, b.name, fdio.Bare(err))
}

// Close closes the socket. Calls blocked on it return an error matching
// os.ErrClosed and net.ErrClosed. Close is idempotent: later calls return nil.
func (b *base) Close() error {
	b.closeOnce.Do(func() {
		b.closed.Swap(true) // Swap: ordered before the loads of inflight below
		b.rdExpiry.Arm(time.Time{}, 0, nil, nil, nil)
		b.wrExpiry.Arm(time.Time{}, 0, nil, nil, nil)
		// Callers waiting for their turn leave with errClosed.
		b.rd.turn.Close()
		b.wr.turn.Close()
		if b.onClose != nil {
			b.onClose()
		}
		if b.file != nil {
			b.closeErr = b.file.Close()
			return
		}
		// Every receive and send either holds its direction's turn for the whole
		// call or is counted in inflight (the fast path). A receive in progress may
		// be blocked in the kernel unregistered (direct, fast path): shutting the
		// receive side down wakes it. Registered calls are signalled. Once inflight
		// is zero and both turns are Close's, no call is left to see the descriptor
		// number reused.
		rdFree := b.rd.turn.TryDrain()
		if !rdFree || b.inflight.Load() > 0 {
			_ = unix.Shutdown(b.fd, unix.SHUT_RD)
		}
		b.waiters.Close()
		for b.inflight.Load() > 0 {
			time.Sleep(20 * time.Microsecond)
		}
		if !rdFree {
			b.rd.turn.Drain()
		}
		b.wr.turn.Drain()
		b.closeErr = unix.Close(b.fd)
	})
	if b.closeErr != nil {
		return b.wrap("close", b.closeErr)
	}
	return nil
}

// Fd returns the descriptor. It stays valid until Close; do not close it or change
// its flags.
func (b *base) Fd() int { return b.fd }

// Wait returns the socket's wait strategy.
func (b *base) Wait() ipc.WaitStrategy { return b.cfg.wait }

// String describes the socket ("unix-stream /run/x/s -> @", "tcp 127.0.0.1:1 -> ...").
func (b *base) String() string { return b.name }

// LocalAddr returns the socket's own address (*net.UnixAddr, *net.TCPAddr or
// *net.UDPAddr), or nil if it has none.
func (b *base) LocalAddr() net.Addr { return b.local }

// RemoteAddr returns the connected peer's address, or nil.
func (b *base) RemoteAddr() net.Addr { return b.remote }

// SyscallConn returns a raw connection for socket options the package does not wrap.
// It is nil in kernel mode.
func (b *base) SyscallConn() syscall.RawConn { return b.rc }

// File returns a duplicate of the descriptor, close-on-exec, for handing to another
// process (exec.Cmd.ExtraFiles). It shares the open file description, so its
// O_NONBLOCK flag is shared too.
func (b *base) File() (*os.File, error) {
	var f *os.File
	err := b.control(func(fd int) error {
		nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return err
		}
		f = os.NewFile(uintptr(nfd), b.name)
		return nil
	})
	return f, b.wrap("dup", err)
}

// shutdown is shutdown(2).
func (b *base) shutdown(how int) error {
	return b.wrap("shutdown", b.control(func(fd int) error { return unix.Shutdown(fd, how) }))
}

// closedError is the cause of every call on, or blocked in, a closed socket.
type closedError struct{}

func (closedError) Error() string        { return "use of closed socket" }
func (closedError) Is(target error) bool { return target == os.ErrClosed || target == net.ErrClosed }

var errClosed error = closedError{}
