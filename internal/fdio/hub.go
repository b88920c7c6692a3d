package fdio

import (
	"context"
	"os"
	"runtime"
	"sync"
	"syscall"
	"weak"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/wait"
)

// The hub is where Auto-mode calls wait once they leave the kernel: one epoll
// instance per process, itself registered with the Go runtime poller, and one
// goroutine that reads it and wakes the calls whose descriptors became ready. A
// descriptor joins the hub the first time one of its calls waits there and leaves it
// on Close; it is armed one-shot (EPOLLONESHOT) for the directions with a call
// waiting, each time such a call is about to look, so that a descriptor nobody waits
// on costs the hub nothing however busy it is, and it is taken out of the epoll
// instance when its last waiting call leaves, so that its calls afterwards do not
// pay for a wake-up nobody listens to. A waiting call costs no thread and no
// descriptor of its own; the hub and its goroutine go away when the last descriptor
// leaves.
type hub struct {
	file *os.File // the epoll instance, in the runtime poller
	rc   syscall.RawConn
	ep   int
	fds  map[int32]weak.Pointer[FD] // under hubs.mu

	retired bool // under hubs.mu: taken out of use, its file closed or about to be
}

// hubs holds the process's hub, made on first need.
var hubs struct {
	mu  sync.Mutex
	cur *hub
}

// hubBatch is how many events the hub's goroutine takes per epoll_wait.
const hubBatch = 128

// join registers f with the process's hub, making the hub if there is none, with
// the events ev. It runs under f.armMu.
func (f *FD) join(ev *unix.EpollEvent) error {
	hubs.mu.Lock()
	h := hubs.cur
	if h == nil {
		var err error
		if h, err = newHub(); err != nil {
			hubs.mu.Unlock()
			return err
		}
		hubs.cur = h
	}
	if err := unix.EpollCtl(h.ep, unix.EPOLL_CTL_ADD, f.fd, ev); err != nil {
		retired := len(h.fds) == 0 && h.retire()
		hubs.mu.Unlock()
		if retired {
			h.file.Close()
		}
		return err
	}
	defer hubs.mu.Unlock()
	h.fds[int32(f.fd)] = weak.Make(f)
	f.hub, f.watched = h, true
	// An FD dropped without Close (its owner's cleanup closes the descriptor) never
	// calls leaveHub: forget its entry when the collector finds it.
	f.dropped = runtime.AddCleanup(f, forgetDropped, hubEntry{h, int32(f.fd)})
	return nil
}

// hubEntry names an FD's entry in a hub, for forgetDropped.
type hubEntry struct {
	h  *hub
	fd int32
}

// forgetDropped removes the entry of an FD collected without Close, unless the
// descriptor number has joined again since, and retires the hub if it is empty.
func forgetDropped(e hubEntry) {
	hubs.mu.Lock()
	retired := false
	if wf, ok := e.h.fds[e.fd]; ok && wf.Value() == nil {
		delete(e.h.fds, e.fd)
		retired = len(e.h.fds) == 0 && e.h.retire()
	}
	hubs.mu.Unlock()
	if retired {
		e.h.file.Close()
	}
}

// leaveHub removes f from its hub, if it joined one, and closes the hub if f was the
// last descriptor in it. Close calls it once no call is in flight.
func (f *FD) leaveHub() {
	f.armMu.Lock()
	defer f.armMu.Unlock()
	h := f.hub
	if h == nil {
		return
	}
	if f.watched {
		_ = unix.EpollCtl(h.ep, unix.EPOLL_CTL_DEL, f.fd, nil)
	}
	f.hub, f.watched = nil, false
	f.dropped.Stop()
	hubs.mu.Lock()
	delete(h.fds, int32(f.fd))
	retired := len(h.fds) == 0 && h.retire()
	hubs.mu.Unlock()
	if retired {
		h.file.Close()
	}
}

// newHub makes an epoll instance and starts the goroutine that reads it.
func newHub() (*hub, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(ep, true); err != nil {
		unix.Close(ep)
		return nil, err
	}
	h := &hub{file: os.NewFile(uintptr(ep), "fdio hub"), ep: ep, fds: make(map[int32]weak.Pointer[FD])}
	if h.rc, err = h.file.SyscallConn(); err != nil {
		h.file.Close()
		return nil, err
	}
	go h.run()
	return h, nil
}

// retire takes the hub out of use, under hubs.mu, and reports whether it was in
// use: the caller that retired it then closes its epoll file, after letting go of
// hubs.mu, and its goroutine returns. (Not under hubs.mu: the goroutine takes
// hubs.mu inside the file's RawConn.Read, and the file's Close waits for that Read
// to return.) A descriptor that joins meanwhile makes a new hub.
func (h *hub) retire() bool {
	if h.retired {
		return false
	}
	h.retired = true
	if hubs.cur == h {
		hubs.cur = nil
	}
	return true
}

// run reads the hub's events, waiting in the runtime poller while there are none,
// until the hub is closed.
func (h *hub) run() {
	events := make([]unix.EpollEvent, hubBatch)
	woken := make([]*FD, 0, hubBatch)
	_ = h.rc.Read(func(ep uintptr) bool {
		for {
			n, err := unix.EpollWait(int(ep), events, 0)
			if err == unix.EINTR {
				continue
			}
			if n <= 0 {
				return false // none ready: wait for the poller
			}
			hubs.mu.Lock()
			for _, ev := range events[:n] {
				if f := h.fds[ev.Fd].Value(); f != nil {
					woken = append(woken, f)
				}
			}
			hubs.mu.Unlock()
			for i, f := range woken {
				f.dirs[0].poke()
				f.dirs[1].poke()
				woken[i] = nil
			}
			woken = woken[:0]
		}
	})
}

// poke wakes d's call waiting in the hub, if there is one, without blocking.
func (d *dir) poke() {
	if d.wake == nil || !d.parked.Load() {
		return
	}
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// arm asks the hub to wake f's waiting calls once the descriptor is ready in the
// direction of one of them (one-shot). It runs with f's in-flight count held, so
// that the descriptor number cannot be another's.
func (f *FD) arm() error {
	var ev unix.EpollEvent
	if f.dirs[0].parked.Load() {
		ev.Events |= unix.EPOLLIN | unix.EPOLLRDHUP
	}
	if f.dirs[1].parked.Load() {
		ev.Events |= unix.EPOLLOUT
	}
	ev.Events |= unix.EPOLLONESHOT
	ev.Fd = int32(f.fd)
	f.armMu.Lock()
	defer f.armMu.Unlock()
	switch {
	case f.hub == nil:
		return f.join(&ev)
	case !f.watched:
		if err := unix.EpollCtl(f.hub.ep, unix.EPOLL_CTL_ADD, f.fd, &ev); err != nil {
			return err
		}
		f.watched = true
		return nil
	}
	return unix.EpollCtl(f.hub.ep, unix.EPOLL_CTL_MOD, f.fd, &ev)
}

// unwatch takes f out of the hub's epoll instance once no call of it waits there
// (d's call is leaving), keeping its place in the hub. It runs with f's in-flight
// count held.
func (f *FD) unwatch(d *dir) {
	d.parked.Store(false)
	f.armMu.Lock()
	defer f.armMu.Unlock()
	if !f.watched || f.dirs[0].parked.Load() || f.dirs[1].parked.Load() {
		return
	}
	if unix.EpollCtl(f.hub.ep, unix.EPOLL_CTL_DEL, f.fd, nil) == nil {
		f.watched = false
	}
}

// await waits in the hub, in direction d, until ready (called with the descriptor,
// which does not wait) reports true, ctx ends, the deadline passes or the descriptor
// is closed. The caller holds d's turn. With a context that can never end and no
// deadline it allocates nothing.
func (f *FD) await(ctx context.Context, d *dir, ready func(fd uintptr) bool) error {
	d.parked.Store(true)
	defer func() {
		if f.set.Acquire() {
			f.unwatch(d)
			f.set.Release()
		} else {
			d.parked.Store(false)
		}
	}()
	var alarm wait.Alarm
	defer alarm.Stop()
	for {
		// Close, SetDeadline and the hub change what they change before they poke,
		// and a poke that finds a token already waiting is dropped: whoever takes
		// that token looks at everything again here.
		if f.closed.Load() || !f.set.Acquire() {
			return os.ErrClosed
		}
		err := f.arm()
		done := err == nil && ready(uintptr(f.fd))
		f.set.Release()
		switch {
		case err != nil:
			return err
		case done:
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		expired, passed := alarm.Until(f.dl.Get(d.write))
		if passed {
			return os.ErrDeadlineExceeded
		}
		select {
		case <-d.wake:
		case <-expired:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
