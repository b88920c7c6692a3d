package fdio

import (
	"context"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/wait"
	"github.com/ipclab/ipclab/ipc"
)

// Do makes the call a describes in direction write (a read or receive when false)
// until it stops failing with EAGAIN or EINTR, ctx ends, the deadline passes or the
// descriptor is closed, waiting as the mode says. It returns a's count and its errno,
// or ctx.Err(), os.ErrDeadlineExceeded or os.ErrClosed; the caller wraps them (Wrap).
//
// With a context that can never end and no deadline, Do allocates nothing.
func (f *FD) Do(ctx context.Context, write bool, p []byte, a Attempt) (int, error) {
	switch f.mode {
	case ipc.WaitKernel:
		if f.canSleep(ctx, write) {
			return f.sleep(write, p, a)
		}
		return f.kernel(ctx, write, p, a)
	case ipc.WaitAuto:
		if f.canSleep(ctx, write) && takeSleeper() {
			n, errno := f.autoSleep(p, a)
			giveSleeper()
			switch {
			case errno != unix.EINTR:
				return n, errnoErr(errno)
			case f.closed.Load():
				return 0, os.ErrClosed
			case f.dl.Expired(write):
				return 0, os.ErrDeadlineExceeded
			}
			// Woken to make room: wait in the poller instead.
		} else {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			if f.dl.Expired(write) {
				return 0, os.ErrDeadlineExceeded
			}
			n, err := f.Try(p, a)
			if err != unix.EAGAIN {
				return n, err
			}
		}
	}
	return f.park(ctx, write, p, a)
}

// Pair makes a send then a receive, each as Do would: a request and the wait for
// its reply. sent reports whether out went out (err is then the receive's). Under
// a context that can never end and with no deadline, in Kernel mode and in Auto
// mode while the call may sleep in the kernel, both system calls run under one
// in-flight count with nothing else between them: all a door call's or an RPC's
// round trip costs beside the kernel's work. It allocates nothing.
func (f *FD) Pair(ctx context.Context, out []byte, send Attempt, in []byte, recv Attempt) (n int, sent bool, err error) {
	if ctx.Done() == nil && f.dl.Read.Load() == 0 && f.dl.Write.Load() == 0 {
		switch f.mode {
		case ipc.WaitKernel:
			return f.pairKernel(out, send, in, recv)
		case ipc.WaitAuto:
			if !takeSleeper() {
				break
			}
			n, sent, errno := f.pairAuto(out, send, in, recv)
			giveSleeper()
			if errno != unix.EINTR {
				return n, sent, errnoErr(errno)
			}
			if err := f.interrupted(!sent); err != nil {
				return 0, sent, err
			}
			// Woken to make room (Do): the rest waits in the hub.
			if !sent {
				if _, err := f.park(ctx, true, out, send); err != nil {
					return 0, false, err
				}
			}
			n, err = f.park(ctx, false, in, recv)
			return n, true, err
		}
	}
	if _, err := f.Do(ctx, true, out, send); err != nil {
		return 0, false, err
	}
	n, err = f.Do(ctx, false, in, recv)
	return n, true, err
}

// pairKernel is Pair's Kernel-mode hot path, sleep's for two calls.
func (f *FD) pairKernel(out []byte, send Attempt, in []byte, recv Attempt) (n int, sent bool, err error) {
	if !f.set.Acquire() {
		return 0, false, os.ErrClosed
	}
	defer f.set.Release()
	var errno unix.Errno
	for {
		if _, errno = send(f.fd, out, false); errno != unix.EINTR {
			break
		}
		if err = f.interrupted(true); err != nil {
			return 0, false, err
		}
	}
	if errno != 0 {
		return 0, false, errno
	}
	for {
		if n, errno = recv(f.fd, in, false); errno != unix.EINTR {
			return n, true, errnoErr(errno)
		}
		if err = f.interrupted(false); err != nil {
			return 0, true, err
		}
	}
}

// pairAuto is Pair's Auto-mode hot path, autoSleep's for two calls: EINTR means
// Close, a deadline set meanwhile, or the watchdog, before out went out or after.
func (f *FD) pairAuto(out []byte, send Attempt, in []byte, recv Attempt) (n int, sent bool, errno unix.Errno) {
	if !f.set.Acquire() {
		return 0, false, unix.EINTR // closed: Pair reports it
	}
	if _, errno = send(f.fd, out, false); errno == 0 {
		sent = true
		n, errno = recv(f.fd, in, false)
	}
	f.set.Release()
	f.progress.Add(1)
	return n, sent, errno
}

// interrupted is what a Kernel-mode call interrupted in its sleep (EINTR) returns:
// os.ErrClosed after Close, os.ErrDeadlineExceeded once a deadline set meanwhile
// has passed, otherwise nil (the call goes on).
func (f *FD) interrupted(write bool) error {
	switch {
	case f.closed.Load():
		return os.ErrClosed
	case f.dl.Expired(write): // set while the call slept (see SetDeadline)
		return os.ErrDeadlineExceeded
	}
	return nil
}

// sleep is Kernel mode's hot path: the call sleeps in the kernel with nothing around
// it but the in-flight count Close waits for (Close finds the thread itself). An
// interrupted call goes on unless the descriptor was closed or a deadline set
// meanwhile has passed.
func (f *FD) sleep(write bool, p []byte, a Attempt) (int, error) {
	if !f.set.Acquire() {
		return 0, os.ErrClosed
	}
	for {
		n, errno := a(f.fd, p, false)
		if errno != unix.EINTR {
			f.set.Release()
			return n, errnoErr(errno)
		}
		if err := f.interrupted(write); err != nil {
			f.set.Release()
			return 0, err
		}
	}
}

// autoSleep is Auto mode's hot path: sleep's one attempt, counted for the
// watchdog. EINTR means Close, a deadline set meanwhile, or the watchdog.
func (f *FD) autoSleep(p []byte, a Attempt) (int, unix.Errno) {
	if !f.set.Acquire() {
		return 0, unix.EINTR // closed: Do reports it
	}
	n, errno := a(f.fd, p, false)
	f.set.Release()
	f.progress.Add(1)
	return n, errno
}

// kernel is a Kernel-mode call that a context or deadline can end: the thread is
// registered with the wait set, so that either can interrupt it.
func (f *FD) kernel(ctx context.Context, write bool, p []byte, a Attempt) (int, error) {
	var n int
	err := f.Kernel(ctx, write, func(fd int) error {
		var errno unix.Errno
		n, errno = a(fd, p, false)
		return errnoErr(errno)
	})
	return n, err
}

// Kernel runs call, one blocking system call on the descriptor that returns its raw
// error, in the kernel under ctx and the deadline (Kernel mode; the general path, it
// allocates).
func (f *FD) Kernel(ctx context.Context, write bool, call func(fd int) error) error {
	kctx, cancel, bounded := f.dl.Bound(ctx, write)
	defer cancel()
	err := f.set.Do(kctx, func() error {
		if f.dl.Expired(write) { // set while the call slept (see SetDeadline)
			return os.ErrDeadlineExceeded
		}
		return call(f.fd)
	})
	return wait.BoundErr(kctx, err, bounded)
}

// park waits until a succeeds: in the runtime poller on the descriptor (Poller mode)
// or in the hub (Auto). The caller first takes the direction's turn, under ctx, the
// deadline and Close, so that it alone waits there and may put ctx on the file as a
// deadline.
func (f *FD) park(ctx context.Context, write bool, p []byte, a Attempt) (int, error) {
	d := f.dir(write)
	if err := d.turn.Take(ctx, &f.dl, write); err != nil {
		return 0, err
	}
	defer d.turn.Give()
	d.attempt, d.p, d.nowait = a, p, f.mode != ipc.WaitPoller
	defer func() { d.attempt, d.p = nil, nil }()
	var err error
	switch {
	case f.file == nil:
		err = f.await(ctx, d, d.pollFn)
	case ctx.Done() == nil:
		err = f.pollWait(d)
	default:
		err = f.viaDeadline(ctx, d, func() error { return f.pollWait(d) })
	}
	if err != nil {
		return 0, err
	}
	return d.n, errnoErr(d.errno)
}

// dir returns the direction's waiting state.
func (f *FD) dir(write bool) *dir {
	if write {
		return &f.dirs[1]
	}
	return &f.dirs[0]
}

// pollWait waits in the runtime poller (Poller mode) until d's attempt stops failing
// with EAGAIN.
func (f *FD) pollWait(d *dir) error {
	if d.write {
		return f.rawErr(f.rc.Write(d.pollFn))
	}
	return f.rawErr(f.rc.Read(d.pollFn))
}

// Wait runs attempt, one system call on the descriptor that returns its raw error
// (unix.EAGAIN: not ready), until it stops returning EAGAIN, honouring ctx, the
// deadline and Close, in any mode. attempt's nowait asks for a call that does not
// wait although the descriptor may be blocking; in Kernel mode it is false and the
// call may block. It is the general path for calls other than Do's (it allocates).
func (f *FD) Wait(ctx context.Context, write bool, attempt func(fd int, nowait bool) error) error {
	if f.mode == ipc.WaitKernel {
		return f.Kernel(ctx, write, func(fd int) error { return attempt(fd, false) })
	}
	return f.Park(ctx, write, func(rc syscall.RawConn) error {
		var err error
		fn := func(fd uintptr) bool {
			err = attempt(int(fd), f.mode != ipc.WaitPoller)
			return err != unix.EAGAIN
		}
		var werr error
		if write {
			werr = rc.Write(fn)
		} else {
			werr = rc.Read(fn)
		}
		if werr != nil {
			return werr
		}
		return err
	})
}

// Park runs io, which waits through rc (Poller or Auto mode), holding the
// direction's turn and honouring ctx, the deadline and Close. rc's callbacks get the
// descriptor; in Auto mode it is blocking and they must not wait. It is the general
// path for calls that wait in their own way (it allocates).
func (f *FD) Park(ctx context.Context, write bool, io func(rc syscall.RawConn) error) error {
	d := f.dir(write)
	if err := d.turn.Take(ctx, &f.dl, write); err != nil {
		return err
	}
	defer d.turn.Give()
	if f.file == nil {
		return io(hubConn{f: f, d: d, ctx: ctx})
	}
	run := func() error { return f.rawErr(io(f.rc)) }
	if ctx.Done() == nil {
		return run()
	}
	return f.viaDeadline(ctx, d, run)
}

// hubConn is the RawConn of an Auto-mode descriptor inside Park: Read and Write wait
// in the hub for Park's direction, under Park's context, and call back with the
// descriptor itself.
type hubConn struct {
	f   *FD
	d   *dir
	ctx context.Context
}

func (c hubConn) Control(fn func(fd uintptr)) error {
	return c.f.Control(func(fd int) error { fn(uintptr(fd)); return nil })
}

func (c hubConn) Read(fn func(fd uintptr) bool) error {
	return c.f.await(c.ctx, c.d, fn)
}

func (c hubConn) Write(fn func(fd uintptr) bool) error { return c.Read(fn) }

// RawConn returns a syscall.RawConn for the descriptor, so that it can take part in
// another descriptor's splice or in code that waits in its own way: in Poller mode
// the file's (with os.ErrClosed after Close); otherwise one whose Read and Write wait
// in poll(2) (Kernel) or in the hub (Auto) between calls of the callback.
func (f *FD) RawConn() syscall.RawConn {
	if f.file != nil {
		return pollerConn{f}
	}
	return rawConn{f}
}

// pollerConn is the file's RawConn (Poller mode) with the engine's errors: after
// Close, os.ErrClosed rather than the runtime's "use of closed file".
type pollerConn struct{ f *FD }

func (c pollerConn) Control(fn func(fd uintptr)) error { return c.f.rawErr(c.f.rc.Control(fn)) }

func (c pollerConn) Read(fn func(fd uintptr) bool) error { return c.f.rawErr(c.f.rc.Read(fn)) }

func (c pollerConn) Write(fn func(fd uintptr) bool) error { return c.f.rawErr(c.f.rc.Write(fn)) }

// rawConn is RawConn for the Kernel and Auto modes.
type rawConn struct{ f *FD }

func (c rawConn) Control(fn func(fd uintptr)) error {
	return c.f.Control(func(fd int) error { fn(uintptr(fd)); return nil })
}

func (c rawConn) Read(fn func(fd uintptr) bool) error { return c.wait(fn, false) }

func (c rawConn) Write(fn func(fd uintptr) bool) error { return c.wait(fn, true) }

func (c rawConn) wait(fn func(fd uintptr) bool, write bool) error {
	if c.f.mode == ipc.WaitAuto {
		return c.f.Park(background, write, func(rc syscall.RawConn) error {
			return rc.Read(fn)
		})
	}
	events := int16(unix.POLLIN)
	if write {
		events = unix.POLLOUT
	}
	return c.f.Control(func(fd int) error {
		for !fn(uintptr(fd)) {
			pfd := []unix.PollFd{{Fd: int32(fd), Events: events}}
			if _, err := unix.Poll(pfd, 10); err != nil && err != unix.EINTR {
				return err
			}
			if c.f.closed.Load() {
				return os.ErrClosed
			}
		}
		return nil
	})
}
