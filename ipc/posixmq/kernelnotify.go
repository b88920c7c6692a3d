package posixmq

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/fdio"
	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

// ErrUnregistered is returned by KernelNotification.Wait when the registration ended
// without a notification: it was cancelled, or this process closed a descriptor of
// the queue.
var ErrUnregistered = ipc.NewSentinel("mq_notify registration removed", nil)

// ErrRegistered is returned by Queue.File while this process holds a live NotifyKernel
// registration on the queue: closing the file would remove the registration (see
// KernelNotification). Cancel the registration, or let it fire, first. It matches
// unix.EBUSY.
var ErrRegistered = ipc.NewSentinel("this process holds the queue's mq_notify registration, which closing another descriptor of the queue would remove", nil, unix.EBUSY)

// KernelNotification is a registration with the kernel's own mq_notify(2), with its
// exact semantics: a queue has at most one registered process (another registration
// fails with unix.EBUSY, in any process); the notification fires once, when a message
// arrives in an empty queue and no receiver is blocked waiting for it (a blocked
// receiver takes the message and the registration stays); and the registration is
// removed when it fires, when cancelled, and when this process closes a descriptor of
// the queue.
//
// That last rule is the kernel's (mqueue's flush on close): the registration belongs
// to the process, and closing any descriptor of the queue in that process removes it,
// not only the one that made it. The closes a caller makes itself therefore end it:
// Close of the registering Queue, Close of another Queue of the same queue, closing a
// file Queue.File returned (File refuses while the registration is live, with
// ErrRegistered), and the end of the process. The package's own calls never do:
// Status on a write-only handle, StatusOf and a stopped Notifier keep the descriptor
// they opened until the registration ends, then close it.
//
// It is delivered without a signal and without a thread: the kernel's SIGEV_THREAD
// mechanism underneath glibc's (a cookie sent to a netlink socket) is used directly,
// and the socket waits in the Go runtime poller. Use it to claim a queue's single
// notification slot or to interoperate with C programs that rely on it; Notify is
// simpler for watching a queue.
type KernelNotification struct {
	q    *Queue
	sock fdio.FD    // the netlink socket the kernel's message comes on (poller mode)
	mu   sync.Mutex // one Wait at a time
	end  error      // nil, or how the registration ended
	once sync.Once

	cancelled atomic.Bool
}

// NotifyKernel registers for a kernel notification (mq_notify with SIGEV_THREAD on
// a netlink socket). It fails with an error matching unix.EBUSY if a process is
// already registered on the queue. Call Cancel when done with it.
func (q *Queue) NotifyKernel() (*KernelNotification, error) {
	sfd, err := sys.MqNotifySocket()
	if err != nil {
		return nil, q.wrap("socket", err)
	}
	k := &KernelNotification{q: q}
	if err := k.sock.Init(sfd, fdio.Config{Name: q.name + " (mq_notify)", Wait: ipc.WaitPoller}); err != nil {
		return nil, err
	}
	var cookie [sys.NotifyCookieLen]byte
	copy(cookie[:], "ipclab")
	r := lockQueue(q.id)
	r.liveLocked() // forget a registration the kernel has ended
	err = q.control(func(fd int) error { return sys.MqNotifyThread(fd, k.sock.Fd(), cookie) })
	if err == nil {
		r.live = k
	}
	r.unlock()
	if err != nil {
		k.sock.Close()
		return nil, q.wrap("mq_notify", err)
	}
	q.notifMu.Lock()
	if q.closed.Load() {
		q.notifMu.Unlock()
		k.Cancel()
		return nil, q.wrap("mq_notify", os.ErrClosed)
	}
	if q.kernelNotes == nil {
		q.kernelNotes = map[*KernelNotification]struct{}{}
	}
	q.kernelNotes[k] = struct{}{}
	q.notifMu.Unlock()
	return k, nil
}

// Wait waits until the notification fires (nil), the registration ends without
// firing (ErrUnregistered), or ctx ends. After the first result it returns the same
// result again without waiting.
func (k *KernelNotification) Wait(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.end != nil {
		return k.result()
	}
	var msg [sys.NotifyCookieLen]byte
	n, err := k.sock.Do(ctx, false, msg[:], readNotice)
	if err != nil {
		if k.cancelled.Load() {
			k.end = ErrUnregistered
			return k.result()
		}
		return ipc.Wrap("mq_notify", k.q.name, err)
	}
	if n != sys.NotifyCookieLen {
		return &ipc.OpError{Op: "mq_notify", Object: k.q.name, Err: ipc.ErrInvalid}
	}
	if msg[sys.NotifyCookieLen-1] == sys.NotifyWokenUp {
		k.end = errFired
	} else {
		k.end = ErrUnregistered
	}
	// The kernel has removed the registration: close what waited for it.
	r := lockQueue(k.q.id)
	r.endLockedIf(k)
	r.unlock()
	return k.result()
}

// readNotice is the attempt that reads the kernel's message from the socket.
func readNotice(fd int, p []byte, _ bool) (int, unix.Errno) { return sys.ReadErrno(fd, p) }

// errFired marks a registration that ended by firing.
var errFired = errors.New("fired")

func (k *KernelNotification) result() error {
	if k.end == errFired {
		return nil
	}
	return &ipc.OpError{Op: "mq_notify", Object: k.q.name, Err: k.end}
}

// Cancel removes the registration if it has not fired (mq_notify with a null
// sigevent) and releases the socket. It is idempotent; a Wait in progress returns
// ErrUnregistered. Closing the queue cancels its registrations.
//
// The kernel knows registrations by process, not by object; the package serialises
// its registrations on one queue with Cancel, so a Cancel racing with the
// notification never removes a newer registration made through the package.
func (k *KernelNotification) Cancel() error {
	var err error
	k.once.Do(func() {
		k.cancelled.Store(true)
		r := lockQueue(k.q.id)
		if !k.fired() {
			cerr := k.q.control(func(fd int) error { return sys.MqNotify(fd, nil) })
			if cerr != nil && !errors.Is(cerr, os.ErrClosed) {
				err = k.q.wrap("mq_notify", cerr)
			}
		}
		r.endLockedIf(k)
		r.unlock()
		k.sock.Close()
		k.q.notifMu.Lock()
		delete(k.q.kernelNotes, k)
		k.q.notifMu.Unlock()
	})
	return err
}

// fired reports whether the registration has ended: a message from the kernel is
// waiting on the socket (or was read).
func (k *KernelNotification) fired() bool {
	if k.mu.TryLock() {
		end := k.end
		k.mu.Unlock()
		if end != nil {
			return true
		}
	}
	pending := false
	_ = k.sock.Control(func(fd int) error {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, _ := unix.Poll(fds, 0)
		pending = n > 0
		return nil
	})
	return pending
}
