package sockets

import (
	"context"
	"errors"
	"net"
	"os"
	"time"

	"github.com/ipclab/ipclab/internal/wait"
	"golang.org/x/sys/unix"
)

// How calls wait: the poller (rawIO, pollerCtx), the kernel with the thread
// registered for interruption (internal/wait), or the kernel unregistered (direct
// and fastpath.go). Deadlines and contexts are applied here.

// background is compared with, rather than asked for Done, on the hot path: an
// interface call less per message.
var background = context.Background()

// take waits for o's turn under ctx, the deadline and Close. A call that must not
// wait (nowait) does not wait for it either: while another caller holds the turn,
// waiting for the data, it finds nothing for itself (EAGAIN).
func (b *base) take(ctx context.Context, o *op, nowait bool) error {
	if nowait {
		if o.turn.TryTake() {
			return nil
		}
		if b.closed.Load() {
			return errClosed
		}
		return unix.EAGAIN
	}
	switch err := o.turn.Take(ctx, &b.dl, o.write); err {
	case nil:
		return nil
	case os.ErrClosed:
		return errClosed
	default:
		return err
	}
}

// exec runs o once the descriptor is ready (poller), blocking in the kernel (kernel),
// or not at all waiting when nowait (MSG_DONTWAIT is then in o.flags).
func (b *base) exec(ctx context.Context, o *op, nowait bool) error {
	if b.file == nil {
		if nowait {
			if !b.waiters.Acquire() {
				return errClosed
			}
			err := o.do(b.fd)
			b.waiters.Release()
			return err
		}
		if (ctx == background || ctx.Done() == nil) && b.dl.Get(o.write).IsZero() {
			if !o.write {
				return b.direct(o)
			}
			// A send that fits goes at once; one that must wait blocks below,
			// where Close can interrupt it.
			flags := o.flags
			o.flags |= unix.MSG_DONTWAIT
			err := b.direct(o)
			o.flags = flags
			if err != unix.EAGAIN {
				return err
			}
		}
		err := b.kernelWait(ctx, o.write, o.kernFn)
		if !o.write && b.closed.Load() && (err != nil || o.n == 0) {
			// Close shut the receive side down to wake unregistered receives: what
			// this one got is that, not an end of file or an empty datagram.
			return errClosed
		}
		return err
	}
	if nowait {
		if err := b.rc.Control(o.ctlFn); err != nil {
			return b.pollErr(err)
		}
		return o.err
	}
	if ctx == background || ctx.Done() == nil {
		return b.rawIO(o)
	}
	return b.pollerCtx(ctx, o.write, func() error { return b.rawIO(o) })
}

// rawIO waits in the poller until o completes, honouring the file's deadlines.
func (b *base) rawIO(o *op) error {
	var err error
	if o.write {
		err = b.rc.Write(o.pollFn)
	} else {
		err = b.rc.Read(o.pollFn)
	}
	if err != nil {
		return b.pollErr(err)
	}
	return o.err
}

// pollErr maps what the poller returns: a closed file is errClosed.
func (b *base) pollErr(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return os.ErrDeadlineExceeded
	}
	if b.closed.Load() || errors.Is(err, os.ErrClosed) || errors.Is(err, net.ErrClosed) {
		return errClosed
	}
	return err
}

// waitIO makes attempt (one non-blocking system call in poller mode, one blocking
// call in kernel mode) until it stops returning EAGAIN, honouring ctx and the
// deadlines. It allocates; the hot path uses exec.
func (b *base) waitIO(ctx context.Context, write bool, attempt func(fd int) error) error {
	if b.file == nil {
		return b.kernelWait(ctx, write, func() error { return attempt(b.fd) })
	}
	var aerr error
	fn := func(fd uintptr) bool {
		aerr = attempt(int(fd))
		return aerr != unix.EAGAIN
	}
	io := func() error {
		var err error
		if write {
			err = b.rc.Write(fn)
		} else {
			err = b.rc.Read(fn)
		}
		if err != nil {
			return b.pollErr(err)
		}
		return aerr
	}
	if ctx.Done() == nil {
		return io()
	}
	return b.pollerCtx(ctx, write, io)
}

// pollerCtx applies ctx as a deadline on the file for one call, then restores the
// deadline the caller set.
func (b *base) pollerCtx(ctx context.Context, write bool, io func() error) error {
	setFile := b.file.SetReadDeadline
	if write {
		setFile = b.file.SetWriteDeadline
	}
	set := func(t time.Time) error {
		if err := setFile(t); err != nil {
			return b.pollErr(err)
		}
		return nil
	}
	return wait.ViaDeadline(ctx, &b.dl, write, set, io)
}

// kernelWait makes call (kernel mode) with the thread registered in b.waiters, so
// that ctx, the read (or write) deadline and Close can interrupt it.
func (b *base) kernelWait(ctx context.Context, write bool, call func() error) error {
	kctx, cancel, bounded := b.dl.Bound(ctx, write)
	err := b.waiters.Do(kctx, call)
	cancel()
	if err == os.ErrClosed {
		return errClosed
	}
	return wait.BoundErr(kctx, err, bounded)
}

// direct makes o's system call in kernel mode without registering the thread in
// b.waiters: the common case (no context to honour, no deadline) then costs nothing
// beyond the call. The caller holds o.mu. Close cannot signal such a call, so it
// shuts the socket's receive side down instead, which wakes a blocked receive; sends
// therefore go direct only with MSG_DONTWAIT (see exec).
func (b *base) direct(o *op) error {
	if b.closed.Load() {
		return errClosed
	}
	for {
		err := o.do(b.fd)
		if b.closed.Load() && (err != nil || o.n == 0) {
			return errClosed
		}
		if err != unix.EINTR {
			return err
		}
		if b.dl.Expired(o.write) { // set while the call waited (see setDeadline)
			return os.ErrDeadlineExceeded
		}
	}
}

// The system calls a blocked kernel-mode receive or send is in (internal/sys).
var (
	recvCalls = []uintptr{unix.SYS_RECVMSG, unix.SYS_RECVMMSG}
	sendCalls = []uintptr{unix.SYS_SENDMSG}
)

// SetDeadline sets the read and write deadlines (see net.Conn). A zero time means
// none. Calls past the deadline fail with an error matching os.ErrDeadlineExceeded
// whose Timeout method reports true.
func (b *base) SetDeadline(t time.Time) error { return b.setDeadline(t, true, true) }

// SetReadDeadline sets the deadline for receives.
func (b *base) SetReadDeadline(t time.Time) error { return b.setDeadline(t, true, false) }

// SetWriteDeadline sets the deadline for sends.
func (b *base) SetWriteDeadline(t time.Time) error { return b.setDeadline(t, false, true) }

func (b *base) setDeadline(t time.Time, read, write bool) error {
	if b.closed.Load() {
		return b.wrap("set deadline", errClosed)
	}
	b.dl.Set(t, read, write)
	if b.file == nil {
		// Calls already blocked in the kernel are interrupted when t passes, and
		// look at the deadline again (fastRecv, direct, op.kernFn).
		if read {
			b.rdExpiry.Arm(t, uintptr(b.fd), recvCalls,
				func() bool { return b.inflight.Load() > 0 || b.rd.turn.Held() },
				func() bool { return b.closed.Load() || !b.dl.Get(false).Equal(t) })
		}
		if write {
			b.wrExpiry.Arm(t, uintptr(b.fd), sendCalls,
				func() bool { return b.wr.turn.Held() },
				func() bool { return b.closed.Load() || !b.dl.Get(true).Equal(t) })
		}
		return nil
	}
	return b.wrap("set deadline", b.pollErr(wait.SetFileDeadline(b.file, t, read, write)))
}
