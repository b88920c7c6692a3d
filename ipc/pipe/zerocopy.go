package pipe

import (
	"context"
	"fmt"
	"io"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

// SpliceTo moves up to n bytes from the pipe to dst with splice(2): the kernel moves
// page references, the bytes are never copied through this process. dst is anything
// with a descriptor: another pipe's *Writer, an *os.File, a *net.TCPConn or
// *net.UnixConn. It waits for data under ctx like ReadContext, and for room in dst
// under ctx too; the reader's Close ends either wait. It returns io.EOF once every
// writer is gone and the pipe is drained. dst must stay open for the duration of the
// call.
func (r *Reader) SpliceTo(ctx context.Context, dst syscall.Conn, n int) (int64, error) {
	drc, dfd, err := connFd(dst)
	if err != nil || n <= 0 {
		return 0, r.wrap("splice", orInvalid(err, n))
	}
	attempt := func(src int, flags int) (int, error) {
		return guarded(drc, dfd, flags, func(dfd int) (int64, error) {
			return unix.Splice(src, nil, dfd, nil, n, flags)
		})
	}
	got, err := r.move(ctx, attempt, dfd, true)
	if err == nil && got == 0 {
		return 0, io.EOF
	}
	return int64(got), r.wrap("splice", err)
}

// TeeTo duplicates up to n bytes from the front of this pipe into w with tee(2),
// without consuming them: a later read still returns them. Both must be pipes, and not
// the same pipe (EINVAL). It returns io.EOF once every writer is gone and the pipe is
// drained.
func (r *Reader) TeeTo(ctx context.Context, w *Writer, n int) (int64, error) {
	if w == nil || n <= 0 {
		return 0, r.wrap("tee", orInvalid(nil, 0))
	}
	if w.packet && !r.packet {
		return 0, w.notPacket("tee")
	}
	wrc := w.fd.RawConn()
	attempt := func(src int, flags int) (int, error) {
		return guarded(wrc, w.Fd(), flags, func(wfd int) (int64, error) {
			return unix.Tee(src, wfd, n, flags)
		})
	}
	got, err := r.move(ctx, attempt, w.Fd(), true)
	if err == nil && got == 0 {
		return 0, io.EOF
	}
	return int64(got), r.wrap("tee", err)
}

// SpliceFrom moves up to n bytes from src into the pipe with splice(2). src is
// anything with a descriptor (a socket, a file, another pipe's *Reader). It waits for
// room in the pipe under ctx, and for data in src under ctx too; the writer's Close
// ends either wait. A return of 0, nil means src is at end of file.
func (w *Writer) SpliceFrom(ctx context.Context, src syscall.Conn, n int) (int64, error) {
	src2, sfd, err := connFd(src)
	if err != nil || n <= 0 {
		return 0, w.wrap("splice", orInvalid(err, n))
	}
	if w.packet {
		return 0, w.notPacket("splice")
	}
	attempt := func(dst int, flags int) (int, error) {
		return guarded(src2, sfd, flags, func(sfd int) (int64, error) {
			return unix.Splice(sfd, nil, dst, nil, n, flags)
		})
	}
	got, err := w.move(ctx, attempt, sfd, false)
	return int64(got), w.wrap("splice", err)
}

// Vmsplice moves the bytes of p into the pipe with vmsplice(2). The kernel copies them
// unless SPLICE_F_GIFT is used, which ipclab does not: p may be reused at once. It waits
// for room under ctx and returns how much of p went in.
func (w *Writer) Vmsplice(ctx context.Context, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if w.packet {
		return 0, w.notPacket("vmsplice")
	}
	attempt := func(dst int, flags int) (int, error) {
		return sys.Vmsplice(dst, p, flags)
	}
	n, err := w.move(ctx, attempt, -1, false)
	return n, w.wrap("vmsplice", err)
}

// move runs attempt(fd, flags) on this end until it moves something, ends, or fails
// with an error other than EAGAIN. EAGAIN means either this pipe is not ready (empty
// for a reader, full for a writer) or the other descriptor is not: the pipe's fill
// level tells which, and the wait is on that side. otherFd is -1 when the other side
// is this process's own buffer. otherIsDst says the other descriptor is written to
// (so its wait is for writability).
func (e *end) move(ctx context.Context, attempt func(fd, flags int) (int, error), otherFd int, otherIsDst bool) (int, error) {
	isReader := otherIsDst
	if e.fd.Mode() == ipc.WaitKernel {
		var n int
		err := e.fd.Kernel(ctx, !isReader, func(fd int) error {
			var err error
			n, err = attempt(fd, unix.SPLICE_F_MOVE)
			return err
		})
		return n, err
	}
	const flags = unix.SPLICE_F_NONBLOCK | unix.SPLICE_F_MOVE
	for {
		var n int
		var err error
		otherBlocked := false
		cb := func(fd uintptr) bool {
			n, err = attempt(int(fd), flags)
			if err != unix.EAGAIN {
				return true
			}
			if e.selfReady(int(fd), isReader) {
				otherBlocked = true
				return true
			}
			return false // wait until this pipe is ready
		}
		werr := e.fd.Park(ctx, !isReader, func(rc syscall.RawConn) error {
			if isReader {
				return rc.Read(cb)
			}
			return rc.Write(cb)
		})
		if werr != nil {
			return 0, werr
		}
		if !otherBlocked {
			return n, err
		}
		if otherFd < 0 {
			return 0, unix.EAGAIN
		}
		// Wait on the other descriptor, retrying the move each time it becomes
		// ready, so that no readiness edge is missed; ctx and this end's Close end
		// the wait.
		if werr := e.fd.AwaitOther(ctx, !isReader, otherFd, otherIsDst, func(f int) bool {
			n, err = attempt(f, flags)
			return err != unix.EAGAIN || !e.selfReady(f, isReader)
		}); werr != nil {
			return 0, werr
		}
		if err != unix.EAGAIN {
			return n, err
		}
	}
}

// guarded makes call with the other descriptor of a move (fd, reached through rc).
// A call that cannot wait (SPLICE_F_NONBLOCK: every mode but kernel) runs under rc's
// guard, so that the other descriptor closed meanwhile fails the call instead of
// letting it reach whatever reuses the number. A kernel-mode call, which may sleep,
// uses fd as it is: holding the guard would make the other side's Close wait for
// it.
func guarded(rc syscall.RawConn, fd, flags int, call func(fd int) (int64, error)) (int, error) {
	if flags&unix.SPLICE_F_NONBLOCK == 0 || rc == nil {
		m, err := call(fd)
		return int(m), err
	}
	var m int64
	var err error
	if cerr := rc.Control(func(f uintptr) { m, err = call(int(f)) }); cerr != nil {
		return 0, cerr
	}
	return int(m), err
}

// selfReady reports whether this pipe could take part in a move now: for a reader,
// bytes are queued; for a writer, a slot is free. It asks the kernel (poll with no
// wait), which counts slots, not bytes: 16 one-byte packets or vmsplice'd buffers
// fill a pipe of 16 slots (plain writes would share one page).
func (e *end) selfReady(fd int, reader bool) bool {
	events := int16(unix.POLLOUT)
	if reader {
		events = unix.POLLIN
	}
	pfd := []unix.PollFd{{Fd: int32(fd), Events: events}}
	for {
		n, err := unix.Poll(pfd, 0)
		if err != unix.EINTR {
			return err != nil || n > 0 && pfd[0].Revents&(events|unix.POLLERR|unix.POLLHUP) != 0
		}
	}
}

// connFd returns c's RawConn (nil when c is not registered with the poller) and its
// descriptor.
func connFd(c syscall.Conn) (syscall.RawConn, int, error) {
	if c == nil {
		return nil, -1, fmt.Errorf("nil descriptor: %w", ipc.ErrInvalid)
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, -1, err
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return nil, -1, err
	}
	return rc, fd, nil
}

func orInvalid(err error, n int) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("length %d: %w", n, ipc.ErrInvalid)
}

// SyscallConn returns the end's raw connection, so that it can be the other side of
// another pipe's SpliceTo or SpliceFrom.
func (e *end) SyscallConn() (syscall.RawConn, error) { return e.fd.RawConn(), nil }
