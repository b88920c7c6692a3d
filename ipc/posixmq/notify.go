package posixmq

import (
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

// Notifier tells when messages arrive on a queue. It is one goroutine parked in the Go
// runtime poller on a descriptor of its own (so it never competes with Recv): no
// signal, no OS thread, and it does not consume messages.
//
// The poller registers descriptors edge-triggered, and the kernel wakes a queue's
// watchers on every send (and on a receive that leaves messages). The goroutine stays
// inside a single RawConn.Read, whose callback runs once at the start and once after
// each wake-up: a wake-up that arrives while it is busy is kept by the poller, none is
// lost. Each time it finds the queue non-empty it notifies, so a message that arrives
// after the last check always produces a notification; notifications coalesce.
//
// A Notifier takes no mq_notify registration and never ends one: while this process
// holds a NotifyKernel registration on the queue, a stopped Notifier's descriptor stays
// open until that registration ends (closing it would remove the registration).
type Notifier struct {
	// C receives a value when the queue holds messages: once at the start if it is not
	// empty, then after arrivals. It has a buffer of one, so a burst of arrivals may
	// give one value: drain the queue (TryRecv until ipc.ErrWouldBlock) on each. C is
	// closed when the Notifier stops. Nil for NotifyFunc.
	C <-chan struct{}

	c    chan struct{}
	fn   func()
	q    *Queue
	file *os.File
	rc   syscall.RawConn
	cb   func(uintptr) bool

	stopped atomic.Bool
	inFn    atomic.Bool
	err     error
	done    chan struct{}
}

// Notify starts a Notifier whose channel C receives a value when messages arrive.
// Stop it (or Close the queue) when done.
func (q *Queue) Notify() (*Notifier, error) {
	c := make(chan struct{}, 1)
	n, err := q.startNotifier(c, nil)
	if err != nil {
		return nil, err
	}
	n.C = c
	return n, nil
}

// NotifyFunc starts a Notifier that calls fn when messages arrive: once at the start
// if the queue is not empty, then after arrivals. Calls are made one at a time from
// the Notifier's goroutine; while fn runs, further arrivals coalesce into one more
// call. fn may receive from the queue and may call Stop.
func (q *Queue) NotifyFunc(fn func()) (*Notifier, error) {
	if fn == nil {
		return nil, &ipc.OpError{Op: "notify", Object: q.name, Err: ipc.ErrInvalid}
	}
	return q.startNotifier(nil, fn)
}

func (q *Queue) startNotifier(c chan struct{}, fn func()) (*Notifier, error) {
	// A description of our own, non-blocking whatever this handle's mode, with the
	// same access (so the same permission check passes).
	var nfd int
	err := q.control(func(fd int) (err error) {
		nfd, err = unix.Open("/proc/self/fd/"+strconv.Itoa(fd), q.access|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, q.wrap("notify", err)
	}
	n := &Notifier{c: c, fn: fn, q: q, done: make(chan struct{})}
	n.file = os.NewFile(uintptr(nfd), q.name+" (notifier)")
	if n.rc, err = n.file.SyscallConn(); err != nil {
		n.release()
		return nil, q.wrap("notify", err)
	}
	n.cb = n.check
	q.notifMu.Lock()
	if q.closed.Load() {
		q.notifMu.Unlock()
		n.release()
		return nil, q.wrap("notify", os.ErrClosed)
	}
	if q.notifiers == nil {
		q.notifiers = map[*Notifier]struct{}{}
	}
	q.notifiers[n] = struct{}{}
	q.notifMu.Unlock()
	go n.run()
	return n, nil
}

func (n *Notifier) run() {
	defer close(n.done)
	err := n.rc.Read(n.cb)
	if err != nil && !n.stopped.Load() {
		n.err = n.q.wrap("notify", err)
	}
	n.release()
	if n.c != nil {
		close(n.c)
	}
}

// release closes the Notifier's descriptor, or keeps it until this process's
// registration on the queue ends (registry.go).
func (n *Notifier) release() {
	closeQueueFd(n.q.id, keptFd{file: n.file})
}

// check is the RawConn.Read callback: it runs at the start and after every readiness
// event, notifies if the queue holds messages, and asks to keep waiting.
func (n *Notifier) check(fd uintptr) bool {
	if n.stopped.Load() {
		return true
	}
	var a sys.MqAttr
	if err := sys.MqGetsetattr(int(fd), nil, &a); err != nil {
		n.err = n.q.wrap("mq_getsetattr", err)
		return true
	}
	if a.Curmsgs > 0 {
		if n.c != nil {
			select {
			case n.c <- struct{}{}:
			default:
			}
		} else {
			n.inFn.Store(true)
			n.fn()
			n.inFn.Store(false)
		}
	}
	return n.stopped.Load()
}

// Err returns the error that ended the Notifier, or nil if it is running or was
// stopped.
func (n *Notifier) Err() error {
	select {
	case <-n.done:
		return n.err
	default:
		return nil
	}
}

// Done returns a channel closed when the Notifier has ended (stopped, or failed: see
// Err).
func (n *Notifier) Done() <-chan struct{} { return n.done }

// Stop stops the Notifier and waits for its goroutine to end; no notification is
// delivered after it returns. If the NotifyFunc callback is running (for example
// because it called Stop), Stop does not wait for it, but it is never called again.
// Stop is idempotent, and never removes a NotifyKernel registration (see Notifier).
func (n *Notifier) Stop() {
	if !n.stopped.Swap(true) {
		// Wake the goroutine without waiting for it: a deadline in the past.
		_ = n.file.SetReadDeadline(pastDeadline)
		n.q.notifMu.Lock()
		delete(n.q.notifiers, n)
		n.q.notifMu.Unlock()
	}
	if n.inFn.Load() {
		return
	}
	<-n.done
}

// pastDeadline is a deadline that has already passed.
var pastDeadline = time.Unix(1, 0)
