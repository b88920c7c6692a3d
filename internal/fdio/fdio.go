// Package fdio is ipclab's one descriptor engine: how a call on a pipe, FIFO or
// socket descriptor waits, and everything that makes that safe.
//
// An FD owns one descriptor and, for it: the three wait modes (ipc.WaitAuto,
// ipc.WaitPoller, ipc.WaitKernel), the in-flight count that makes Close safe against
// the descriptor number being reused, the read and write deadlines and how pending
// calls learn of them, the bridge from a context to the runtime poller, the turn that
// lets one caller at a time wait in each direction while queued callers honour their
// own contexts (wait.Turn), the Close that unblocks every call and then drains them,
// the EAGAIN/EINTR loops, and error wrapping at the boundary (Wrap). The primitives
// above it (pipe, fifo, sockets) describe one system call as an Attempt and call Do;
// a request and the wait for its reply (a door call, an RPC) are one Pair.
//
// # The modes
//
//   - Kernel: the descriptor is blocking and the calling thread sleeps in the system
//     call, as in C. A call with no context to honour and no deadline is the call
//     itself between two atomic adds (the hot path); others register their thread
//     with internal/wait so that a signal can interrupt them.
//   - Poller: the descriptor is non-blocking and registered with the Go runtime
//     poller; a waiting goroutine holds no thread.
//   - Auto (the default): the descriptor is blocking. A call with nothing to honour
//     but Close sleeps in the kernel like Kernel's hot path, while fewer than
//     MaxSleepers calls of the process do; a call that stays asleep for a tick
//     (between StuckAfter and 2×StuckAfter) is interrupted and moved to the poller,
//     so idle descriptors hold no thread. Calls with a context that can end or a
//     deadline, and calls that find no free place, try once without waiting and
//     then wait in the hub (hub.go): one epoll instance per process, registered
//     with the runtime poller, that watches the blocking descriptors of waiting
//     calls and wakes them; a waiting call holds no thread and no descriptor.
//
// A round trip in Auto mode costs what Kernel's costs plus a few atomic adds; ten
// thousand idle receivers hold at most MaxSleepers threads, and none after a tick.
package fdio

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/wait"
	"github.com/ipclab/ipclab/ipc"
)

// An Attempt makes one system call on fd with the caller's buffer p and returns the
// count and the raw errno (0 for success). nowait asks for a call that does not wait
// although the descriptor may be blocking (RWF_NOWAIT, MSG_DONTWAIT); in Poller mode
// the descriptor is non-blocking and nowait is false. Attempts are plain functions or
// method values made once, so that a call allocates nothing.
type Attempt func(fd int, p []byte, nowait bool) (int, unix.Errno)

// Config describes an FD.
type Config struct {
	// Name is used in errors.
	Name string
	// Wait is the mode: ipc.WaitAuto, ipc.WaitPoller or ipc.WaitKernel.
	Wait ipc.WaitStrategy
	// ReadCalls and WriteCalls are the system calls a thread blocked reading or
	// writing may be in, with the descriptor as first argument, so that Close, a
	// deadline and Auto's watchdog can find it (/proc/self/task/*/syscall).
	ReadCalls, WriteCalls []uintptr
}

// FD is one descriptor under the engine. Init it in place; an FD must not be copied.
type FD struct {
	// What a kernel-mode call on the hot path touches comes first, in one cache
	// line: after the peer has run on this CPU, every extra line is a miss.
	fd       int
	set      wait.Set // calls in the kernel (Kernel and Auto): Close interrupts them
	mode     ipc.WaitStrategy
	progress atomic.Uint32 // Auto: sleeping calls that returned (for the watchdog)
	closed   atomic.Bool

	dl wait.Deadlines

	// Poller mode: the descriptor lives in an *os.File registered with the poller.
	file *os.File
	rc   syscall.RawConn

	dirs [2]dir // read, write

	name      string
	closeOnce sync.Once
	closeErr  error

	// Try calls in Poller mode go through RawConn.Control with one prepared
	// callback, under tryMu.
	tryMu  sync.Mutex
	try    Attempt
	tryP   []byte
	tryN   int
	tryErr unix.Errno
	tryFn  func(uintptr)

	// Auto's watchdog state, under the registry's lock.
	lastProgress uint32
	lastBusy     bool

	// Auto: the hub the descriptor belongs to (nil: none yet) and whether its epoll
	// instance watches the descriptor now, under armMu.
	armMu   sync.Mutex
	hub     *hub
	watched bool
	dropped runtime.Cleanup // forgets the hub entry of an FD dropped without Close
}

// dir is one direction's waiting state.
type dir struct {
	write   bool
	turn    wait.Turn
	calls   []uintptr
	expiry  wait.Expiry // Kernel and Auto: interrupts calls asleep when the deadline passes
	attempt Attempt     // the call holding the turn (poller callback state)
	p       []byte
	nowait  bool
	n       int
	errno   unix.Errno
	pollFn  func(uintptr) bool
	br      bridge        // Poller: the waiting call's context on the file
	parked  atomic.Bool   // Auto: a call of this direction waits in the hub
	wake    chan struct{} // Auto: the hub, SetDeadline and Close wake that call (buffered)
}

// Init takes ownership of fd and sets f up in place as c says: close-on-exec, the
// O_NONBLOCK flag the mode needs, the poller registration. On error fd is closed.
func (f *FD) Init(fd int, c Config) error {
	f.fd, f.mode, f.name = fd, c.Wait, c.Name
	switch c.Wait {
	case ipc.WaitAuto, ipc.WaitPoller, ipc.WaitKernel:
	default:
		unix.Close(fd)
		return &ipc.OpError{Op: "open", Object: c.Name, Err: fmt.Errorf("wait strategy %v not supported (want auto, poller or kernel): %w", c.Wait, ipc.ErrInvalid)}
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
		unix.Close(fd)
		return ipc.Wrap("fcntl", f.name, err)
	}
	if err := unix.SetNonblock(fd, c.Wait == ipc.WaitPoller); err != nil {
		unix.Close(fd)
		return ipc.Wrap("fcntl", f.name, err)
	}
	for i := range f.dirs {
		d := &f.dirs[i]
		d.write = i == 1
		d.calls = c.ReadCalls
		if d.write {
			d.calls = c.WriteCalls
		}
		d.turn.Init()
		if c.Wait == ipc.WaitAuto {
			d.wake = make(chan struct{}, 1)
		}
		d.pollFn = func(uintptr) bool {
			for {
				d.n, d.errno = d.attempt(f.fd, d.p, d.nowait)
				if d.errno != unix.EINTR {
					return d.errno != unix.EAGAIN
				}
			}
		}
	}
	f.tryFn = func(fd uintptr) { f.tryN, f.tryErr = f.try(int(fd), f.tryP, false) }
	if c.Wait != ipc.WaitPoller {
		calls := append(append([]uintptr(nil), c.ReadCalls...), c.WriteCalls...)
		f.set.Identify(uintptr(fd), calls...)
		if c.Wait == ipc.WaitAuto {
			register(f)
		}
		return nil
	}
	f.file = os.NewFile(uintptr(fd), f.name)
	rc, err := f.file.SyscallConn()
	if err != nil {
		f.file.Close()
		return ipc.Wrap("open", f.name, err)
	}
	f.rc = rc
	return nil
}

// Fd returns the descriptor number. It stays valid until Close.
func (f *FD) Fd() int { return f.fd }

// Mode returns the wait mode.
func (f *FD) Mode() ipc.WaitStrategy { return f.mode }

// File returns the *os.File that holds the descriptor in Poller mode, nil in the
// other modes. Closing it is Close's job.
func (f *FD) File() *os.File { return f.file }

// Control runs fn with the descriptor, guarding against a concurrent Close.
func (f *FD) Control(fn func(fd int) error) error {
	if f.file != nil {
		var ferr error
		if err := f.rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
			return f.rawErr(err)
		}
		return ferr
	}
	if !f.set.Acquire() {
		return os.ErrClosed
	}
	defer f.set.Release()
	return fn(f.fd)
}

// Try makes one attempt that does not wait. With nothing to do it fails with
// unix.EAGAIN; it never queues behind a caller waiting in the same direction.
func (f *FD) Try(p []byte, a Attempt) (int, error) {
	if f.file != nil {
		f.tryMu.Lock()
		f.try, f.tryP = a, p
		err := f.rc.Control(f.tryFn)
		f.try, f.tryP = nil, nil
		n, errno := f.tryN, f.tryErr
		f.tryMu.Unlock()
		if err != nil {
			return 0, f.rawErr(err)
		}
		return n, errnoErr(errno)
	}
	if !f.set.Acquire() {
		return 0, os.ErrClosed
	}
	for {
		n, errno := a(f.fd, p, true)
		if errno != unix.EINTR {
			f.set.Release()
			return n, errnoErr(errno)
		}
	}
}

// rawErr turns the error of a poller-mode RawConn call into os.ErrClosed once the
// descriptor is closed (the RawConn reports a closed file with an error of its own),
// and a poller deadline into os.ErrDeadlineExceeded.
func (f *FD) rawErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return os.ErrDeadlineExceeded
	case f.closed.Load() || errors.Is(err, os.ErrClosed) || errors.Is(err, net.ErrClosed):
		return os.ErrClosed
	}
	return err
}

// Wrap turns an error from any layer into the one *ipc.OpError, naming op and the
// descriptor. A nil error stays nil.
func (f *FD) Wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	err = Bare(err)
	if errors.Is(err, os.ErrClosed) && !errors.Is(err, ipc.ErrRemoved) {
		err = os.ErrClosed
	}
	return ipc.Wrap(op, f.name, err)
}

// Bare strips the *fs.PathError and *os.SyscallError an *os.File or RawConn wraps
// around an errno, so that the one *ipc.OpError wraps the errno itself.
func Bare(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		err = se.Err
	}
	return err
}

// errnoErr is errno as an error, nil for 0, without allocating.
func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// SetDeadline sets the read and/or write deadline (zero: none), for pending calls
// too: calls asleep in the kernel are interrupted when it passes and look at it
// again; calls in the poller see it on their file, calls in the hub are woken to
// look at it.
func (f *FD) SetDeadline(t time.Time, read, write bool) error {
	if f.closed.Load() {
		return os.ErrClosed
	}
	f.dl.Set(t, read, write)
	for i := range f.dirs {
		d := &f.dirs[i]
		if d.write && !write || !d.write && !read {
			continue
		}
		if f.file != nil {
			if err := f.setFileDeadline(d); err != nil {
				return err
			}
			continue
		}
		w := d.write
		d.expiry.Arm(t, &f.set, uintptr(f.fd), d.calls,
			func() bool { return f.set.InFlight() > 0 || d.turn.Held() },
			func() bool { return f.closed.Load() || !f.dl.Get(w).Equal(t) })
		d.poke() // a call waiting in the hub looks at the new deadline
	}
	return nil
}

// Close closes the descriptor. Every call in flight returns an error matching
// os.ErrClosed first: callers waiting for their turn leave, calls in the poller are
// woken, calls asleep in the kernel are interrupted, and the descriptor is released
// only when none is left. It is idempotent; the error is the first close's.
func (f *FD) Close() error {
	f.closeOnce.Do(func() {
		f.closed.Store(true)
		for i := range f.dirs {
			d := &f.dirs[i]
			d.turn.Close()
			d.expiry.Arm(time.Time{}, nil, 0, nil, nil, nil)
			d.poke()
		}
		if f.file != nil {
			f.closeErr = f.file.Close()
			return
		}
		if f.mode == ipc.WaitAuto {
			unregister(f)
		}
		f.set.Close()
		for i := range f.dirs {
			f.dirs[i].turn.Drain()
		}
		f.leaveHub()
		f.closeErr = unix.Close(f.fd)
	})
	return f.closeErr
}

// background is the context of calls the engine makes for itself.
var background = context.Background()

// canSleep reports whether a call under ctx has nothing to honour but Close, so
// that it may sleep in the kernel unregistered.
func (f *FD) canSleep(ctx context.Context, write bool) bool {
	if ctx.Done() != nil {
		return false
	}
	if write {
		return f.dl.Write.Load() == 0
	}
	return f.dl.Read.Load() == 0
}
