package fdio

import (
	"context"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/wait"
)

// AwaitOther waits for another descriptor, one a call of f's moves data to or from
// (splice, tee): until other is ready for reading (for writing when otherWrite) and
// ready, called with f's descriptor under its guard, reports true. It honours ctx,
// f's deadline in direction write, and f's Close (os.ErrClosed), holding that
// direction's turn. The wait is on an epoll instance of its own that watches other,
// in the runtime poller: the call holds no thread. It is the general path for a rare
// wait (it allocates, and costs a descriptor while it waits).
func (f *FD) AwaitOther(ctx context.Context, write bool, other int, otherWrite bool, ready func(fd int) bool) error {
	d := f.dir(write)
	if err := d.turn.Take(ctx, &f.dl, write); err != nil {
		return err
	}
	defer d.turn.Give()
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(other)}
	if otherWrite {
		ev.Events = unix.EPOLLOUT | unix.EPOLLET
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, other, &ev); err != nil {
		unix.Close(ep)
		return err
	}
	if err := unix.SetNonblock(ep, true); err != nil {
		unix.Close(ep)
		return err
	}
	file := os.NewFile(uintptr(ep), f.name+" (waiting for the other descriptor)")
	defer file.Close()
	rc, err := file.SyscallConn()
	if err != nil {
		return err
	}
	// f's Close ends the wait as a cancellation would.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-d.turn.Closed():
			cancel()
		case <-wctx.Done():
		}
	}()
	events := make([]unix.EpollEvent, 1)
	var cerr error
	cb := func(ep uintptr) bool {
		for { // consume the edge before looking, so that a later one wakes us
			n, err := unix.EpollWait(int(ep), events, 0)
			if err != unix.EINTR && n <= 0 {
				break
			}
		}
		done := false
		if cerr = f.Control(func(fd int) error { done = ready(fd); return nil }); cerr != nil {
			return true
		}
		return done
	}
	err = wait.ViaDeadline(wctx, &f.dl, write, func(t time.Time) error { return f.rawErr(file.SetReadDeadline(t)) },
		func() error { return f.rawErr(rc.Read(cb)) })
	switch {
	case f.closed.Load():
		return os.ErrClosed
	case err != nil:
		return err
	}
	return cerr
}
