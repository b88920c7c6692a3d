package posixmq

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/fdio"
	"github.com/ipclab/ipclab/internal/option"
	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

// Queue is an open POSIX message queue descriptor. It is safe for concurrent use.
type Queue struct {
	// nonblock and the descriptor under the engine (internal/fdio: wait modes,
	// Close, the in-flight count) are what Send and Recv touch, so they come first.
	nonblock atomic.Bool
	fd       fdio.FD

	closed atomic.Bool
	name   string
	access int // unix.O_RDONLY, O_WRONLY or O_RDWR
	id     qid // the queue's identity, for its record (registry.go)

	closeOnce sync.Once
	closeErr  error
	// leak closes the descriptor of a queue dropped without Close, once the garbage
	// collector finds it (auto and kernel modes: in poller mode the *os.File the
	// engine holds does that itself).
	leak runtime.Cleanup

	notifMu     sync.Mutex
	notifiers   map[*Notifier]struct{}
	kernelNotes map[*KernelNotification]struct{}
}

// Attr is a queue's attributes (struct mq_attr).
type Attr struct {
	// MaxMsg is the queue's capacity in messages. Fixed at creation.
	MaxMsg int
	// MsgSize is the largest message the queue accepts, in bytes. Fixed at creation.
	MsgSize int
	// CurMsgs is the number of messages queued now.
	CurMsgs int
	// Nonblock is O_NONBLOCK: when set, Send and Recv return ipc.ErrWouldBlock
	// instead of waiting. It is the only attribute SetAttr changes.
	Nonblock bool
}

type config struct {
	strategy         ipc.WaitStrategy
	access           int
	mode             os.FileMode
	modeSet          bool
	allowWorld       bool
	maxMsg, msgSize  int
	attrSet          bool
	nonblock         bool
	allowOtherOwners bool
}

// Option configures Create, Open, OpenOrCreate and FromFd.
type Option func(*config)

// WithWait sets how blocking calls wait: ipc.WaitAuto (the default: a call with no
// context to honour sleeps in mq_timedsend/mq_timedreceive while it is short, and
// moves to the runtime poller if it stays blocked), ipc.WaitPoller (the goroutine
// parks in the Go runtime poller and holds no thread) or ipc.WaitKernel (the calling
// thread sleeps inside mq_timedsend/mq_timedreceive, where eBPF probes see it;
// cancellation interrupts it with a signal, see internal/wait). See internal/fdio.
func WithWait(w ipc.WaitStrategy) Option { return func(c *config) { c.strategy = w } }

// ReadOnly opens the queue for receiving only (O_RDONLY): Send fails with EBADF.
func ReadOnly() Option { return func(c *config) { c.access = unix.O_RDONLY } }

// WriteOnly opens the queue for sending only (O_WRONLY): Recv fails with EBADF.
func WriteOnly() Option { return func(c *config) { c.access = unix.O_WRONLY } }

// WithMode sets the permission bits of a queue being created (default 0600; the
// process umask still applies). Bits for others, or group write, are refused unless
// AllowWorld is also given.
func WithMode(perm os.FileMode) Option {
	return func(c *config) { c.mode, c.modeSet = perm, true }
}

// AllowWorld permits WithMode bits that let other users read or write the queue.
func AllowWorld() Option { return func(c *config) { c.allowWorld = true } }

// WithAttr sets the capacity (maxMsg messages of at most msgSize bytes) of a queue
// being created. Both must be positive; unprivileged callers are limited by
// /proc/sys/fs/mqueue/msg_max and msgsize_max (EINVAL beyond) and by RLIMIT_MSGQUEUE.
// Without it the kernel uses msg_default and msgsize_default.
func WithAttr(maxMsg, msgSize int) Option {
	return func(c *config) { c.maxMsg, c.msgSize, c.attrSet = maxMsg, msgSize, true }
}

// Nonblocking opens the queue with O_NONBLOCK set (see Attr.Nonblock).
func Nonblocking() Option { return func(c *config) { c.nonblock = true } }

// TrustExisting makes OpenOrCreate accept an existing queue owned by another user or
// with a wider mode than requested. Without it such a queue is refused with
// ipc.ErrUntrustedObject (it may have been planted by someone else).
func TrustExisting() Option { return func(c *config) { c.allowOtherOwners = true } }

func buildConfig(opts []Option) (config, error) {
	c := config{access: unix.O_RDWR, mode: 0o600}
	if err := option.Apply(&c, opts); err != nil {
		return c, err
	}
	if c.strategy != ipc.WaitAuto && c.strategy != ipc.WaitPoller && c.strategy != ipc.WaitKernel {
		return c, fmt.Errorf("wait strategy %v not supported (want auto, poller or kernel): %w", c.strategy, ipc.ErrInvalid)
	}
	if c.mode&^os.ModePerm != 0 {
		return c, fmt.Errorf("mode %v has bits other than permissions: %w", c.mode, ipc.ErrInvalid)
	}
	if !c.allowWorld && c.mode&0o027 != 0 {
		return c, fmt.Errorf("mode %#o lets other users in (use AllowWorld): %w", uint32(c.mode), ipc.ErrInvalid)
	}
	if c.attrSet && (c.maxMsg <= 0 || c.msgSize <= 0) {
		return c, fmt.Errorf("attributes maxmsg %d, msgsize %d must be positive: %w", c.maxMsg, c.msgSize, ipc.ErrInvalid)
	}
	return c, nil
}

// Create creates the queue name ("/name") with O_CREAT|O_EXCL, so it fails with an
// error matching unix.EEXIST if the name is taken, and opens it. The queue is created
// 0600 unless WithMode says otherwise, with the capacity WithAttr gives.
func Create(name string, opts ...Option) (*Queue, error) {
	return open(name, unix.O_CREAT|unix.O_EXCL, opts)
}

// Open opens the existing queue name. It fails with an error matching unix.ENOENT if
// there is none, and unix.EACCES if the caller may not open it for the access asked.
func Open(name string, opts ...Option) (*Queue, error) {
	return open(name, 0, opts)
}

// OpenOrCreate opens the queue name, creating it if needed (O_CREAT without O_EXCL;
// the attributes and mode apply only if it is created). An existing queue must be
// owned by the caller's effective uid and have no permission bits beyond the
// requested mode, unless TrustExisting is given; otherwise it is closed and the error
// matches ipc.ErrUntrustedObject.
func OpenOrCreate(name string, opts ...Option) (*Queue, error) {
	return open(name, unix.O_CREAT, opts)
}

func open(name string, create int, opts []Option) (*Queue, error) {
	bare, err := kernelName("mq_open", name)
	if err != nil {
		return nil, err
	}
	c, err := buildConfig(opts)
	if err != nil {
		return nil, &ipc.OpError{Op: "mq_open", Object: name, Err: err}
	}
	if create == 0 && (c.attrSet || c.modeSet) {
		return nil, &ipc.OpError{Op: "mq_open", Object: name,
			Err: fmt.Errorf("WithAttr and WithMode apply only when creating: %w", ipc.ErrInvalid)}
	}
	flags := c.access | create | unix.O_CLOEXEC
	if c.strategy == ipc.WaitPoller || c.nonblock {
		flags |= unix.O_NONBLOCK
	}
	var attr *sys.MqAttr
	if c.attrSet {
		attr = &sys.MqAttr{Maxmsg: int64(c.maxMsg), Msgsize: int64(c.msgSize)}
	}
	fd, err := sys.MqOpen(bare, flags, uint32(c.mode), attr)
	if err != nil {
		return nil, ipc.Wrap("mq_open", name, err)
	}
	if create == unix.O_CREAT && !c.allowOtherOwners {
		if err := checkOwner(fd, c.mode); err != nil {
			if id, ierr := queueID(fd); ierr == nil {
				closeQueueFd(id, keptFd{fd: fd}) // this process may hold its registration
			} else {
				unix.Close(fd)
			}
			return nil, &ipc.OpError{Op: "mq_open", Object: name, Err: err}
		}
	}
	return newQueue(fd, name, c)
}

// checkOwner verifies that the queue open at fd belongs to us and is no more open
// than mode.
func checkOwner(fd int, mode os.FileMode) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("queue owned by uid %d: %w", st.Uid, ipc.ErrUntrustedObject)
	}
	if perm := os.FileMode(st.Mode) & os.ModePerm; perm&^mode != 0 {
		return fmt.Errorf("queue has mode %#o, wider than %#o: %w", uint32(perm), uint32(mode), ipc.ErrUntrustedObject)
	}
	return nil
}

// FromFd takes ownership of fd, a message queue descriptor (inherited from a parent or
// received over a socket), and returns it as a Queue that waits as the options say.
// It makes fd close-on-exec. A descriptor that is not a message queue is refused with
// an error matching unix.EBADF. On error fd is closed. A descriptor owned by an
// *os.File must be duplicated first (and the file closed), or the file closes the
// number again, whatever it names by then. Note that a descriptor shares its
// O_NONBLOCK flag with every duplicate of it: hand other processes File instead.
func FromFd(fd int, opts ...Option) (*Queue, error) {
	c, err := buildConfig(opts)
	name := describe(fd)
	if err != nil {
		unix.Close(fd)
		return nil, &ipc.OpError{Op: "adopt", Object: name, Err: err}
	}
	var a sys.MqAttr
	if err := sys.MqGetsetattr(fd, nil, &a); err != nil {
		unix.Close(fd)
		return nil, ipc.Wrap("mq_getsetattr", name, err)
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		unix.Close(fd)
		return nil, ipc.Wrap("fcntl", name, err)
	}
	c.access = fl & unix.O_ACCMODE
	return newQueue(fd, name, c)
}

// describe names a queue descriptor the way /proc/self/fd does ("/name").
func describe(fd int) string {
	if target, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd)); err == nil {
		return target
	}
	return "fd " + strconv.Itoa(fd)
}

// The system calls a thread blocked on a queue may be in, with the descriptor as
// first argument, so that Close and Auto's watchdog can find it.
var (
	recvCalls = []uintptr{unix.SYS_MQ_TIMEDRECEIVE}
	sendCalls = []uintptr{unix.SYS_MQ_TIMEDSEND}
)

func newQueue(fd int, name string, c config) (*Queue, error) {
	id, err := queueID(fd)
	if err != nil {
		unix.Close(fd)
		return nil, ipc.Wrap("fstat", name, err)
	}
	q := &Queue{name: name, access: c.access, id: id}
	q.nonblock.Store(c.nonblock)
	if err := q.fd.Init(fd, fdio.Config{Name: name, Wait: c.strategy, ReadCalls: recvCalls, WriteCalls: sendCalls}); err != nil {
		return nil, err
	}
	if c.nonblock && c.strategy != ipc.WaitPoller {
		// Init made the description blocking, as the mode wants; Nonblocking asks
		// for the flag itself (see SetAttr).
		if err := q.fd.Control(func(fd int) error { return unix.SetNonblock(fd, true) }); err != nil {
			q.fd.Close()
			return nil, ipc.Wrap("fcntl", name, err)
		}
	}
	if q.fd.File() == nil {
		q.leak = runtime.AddCleanup(q, closeFd, q.fd.Fd())
	}
	return q, nil
}

// closeFd closes the descriptor of a queue that was dropped without Close.
func closeFd(fd int) { unix.Close(fd) }

// The attempts: one mq_timedsend or mq_timedreceive each, as fdio.Attempts. A call
// that must not wait on a blocking descriptor passes an absolute timeout that has
// already passed (the epoch): the kernel looks at it only when the call would sleep,
// and then returns ETIMEDOUT at once, which the attempt reports as EAGAIN. In Poller
// mode the description is non-blocking and nowait is false.

// epoch is the timeout of an attempt that must not wait. The kernel only reads it.
var epoch unix.Timespec

func timeout(nowait bool) *unix.Timespec {
	if nowait {
		return &epoch
	}
	return nil
}

// receive is the receiving attempt. A message's priority comes back with its length,
// in the count's upper half (see unpack), so that nothing is shared between callers
// and nothing allocated.
func receive(fd int, p []byte, nowait bool) (int, unix.Errno) {
	n, prio, errno := sys.MqTimedreceiveErrno(fd, p, timeout(nowait))
	switch errno {
	case 0:
		return n | int(prio)<<32, 0
	case unix.ETIMEDOUT:
		errno = unix.EAGAIN
	}
	return 0, errno
}

// unpack splits receive's count into the message's length and priority. Both fit in
// 32 bits: a message is at most msgsize_max bytes (the kernel caps it at 16 MiB), a
// priority is below PrioMax.
func unpack(v int) (int, uint) { return int(uint32(v)), uint(v >> 32) }

// sender is a priority whose send method is the sending attempt at that priority.
type sender uint16

func (s sender) send(fd int, p []byte, nowait bool) (int, unix.Errno) {
	errno := sys.MqTimedsendErrno(fd, p, uint(s), timeout(nowait))
	if errno == unix.ETIMEDOUT {
		errno = unix.EAGAIN
	}
	return 0, errno
}

// send0 is the sending attempt at priority 0, written out rather than calling
// sender(0).send: on one CPU the send is where the sender sleeps while the woken
// receiver runs, and each frame on that stack costs a mispredicted return.
func send0(fd int, p []byte, nowait bool) (int, unix.Errno) {
	errno := sys.MqTimedsendErrno(fd, p, 0, timeout(nowait))
	if errno == unix.ETIMEDOUT {
		errno = unix.EAGAIN
	}
	return 0, errno
}

// senders holds the sending attempt of every priority, made a chunk at a time on
// first use and shared by every queue, so that a send allocates nothing.
var senders [PrioMax / senderChunk]atomic.Pointer[[senderChunk]fdio.Attempt]

const senderChunk = 256

// sendAttempt returns the sending attempt at prio (< PrioMax). Priority 0, the usual
// one, is a plain function: nothing to look up, no memory to touch.
func sendAttempt(prio uint) fdio.Attempt {
	if prio == 0 {
		return send0
	}
	c := &senders[prio/senderChunk]
	t := c.Load()
	if t == nil {
		t = new([senderChunk]fdio.Attempt)
		for i := range t {
			t[i] = sender(prio/senderChunk*senderChunk + uint(i)).send
		}
		if !c.CompareAndSwap(nil, t) {
			t = c.Load()
		}
	}
	return t[prio%senderChunk]
}

// Name returns the queue's name ("/name"), as given to Create or Open.
func (q *Queue) Name() string { return q.name }

// Wait returns the queue's wait strategy.
func (q *Queue) Wait() ipc.WaitStrategy { return q.fd.Mode() }

// String returns the queue's name.
func (q *Queue) String() string { return q.name }

// late makes the attempt that a call whose context had ended (or ended while it
// waited) is owed: as POSIX timed calls do, a call that can complete at once
// succeeds whatever its context. The engine refuses to start a call under an ended
// context, so the hot path needs no test of its own; the test is here, once the call
// has failed. It returns err unless the attempt succeeds.
func (q *Queue) late(ctx context.Context, err error, p []byte, a fdio.Attempt) (int, error) {
	if ctx.Done() == nil || ctx.Err() == nil {
		return 0, err
	}
	n, terr := q.fd.Try(p, a)
	if terr != nil {
		return 0, err
	}
	return n, nil
}

// Send sends data as one message of priority prio (0 ≤ prio < PrioMax), waiting for
// room while the queue is full, until ctx ends or the queue is closed. As POSIX
// mq_timedsend does, a send that finds room succeeds even if ctx has already ended.
// Errors match unix.EMSGSIZE (data longer than MsgSize), unix.EBADF (a queue opened
// ReadOnly), ipc.ErrWouldBlock (full and Nonblock set), ctx.Err() or os.ErrClosed.
// With caller buffers it does not allocate.
func (q *Queue) Send(ctx context.Context, data []byte, prio uint) error {
	if prio >= PrioMax {
		return q.badPrio(prio)
	}
	a := sendAttempt(prio)
	var err error
	if q.nonblock.Load() {
		_, err = q.fd.Try(data, a)
	} else if _, err = q.fd.Do(ctx, true, data, a); err != nil {
		_, err = q.late(ctx, err, data, a)
	}
	if err != nil {
		return q.wrap("mq_timedsend", err)
	}
	return nil
}

// TrySend sends data as one message of priority prio without waiting; with the queue
// full it returns an error matching ipc.ErrWouldBlock (and unix.EAGAIN).
func (q *Queue) TrySend(data []byte, prio uint) error {
	if prio >= PrioMax {
		return q.badPrio(prio)
	}
	if _, err := q.fd.Try(data, sendAttempt(prio)); err != nil {
		return q.wrap("mq_timedsend", err)
	}
	return nil
}

func (q *Queue) badPrio(prio uint) error {
	return &ipc.OpError{Op: "mq_timedsend", Object: q.name,
		Err: fmt.Errorf("priority %d not below %d: %w", prio, PrioMax, ipc.ErrInvalid)}
}

// Recv receives the oldest message of the highest priority into buf and returns its
// length and priority, waiting while the queue is empty, until ctx ends or the queue
// is closed. buf must hold at least MsgSize bytes: the kernel refuses a shorter one
// with unix.EMSGSIZE and leaves the message queued. Other errors match unix.EBADF (a
// queue opened WriteOnly), ipc.ErrWouldBlock (empty and Nonblock set), ctx.Err() or
// os.ErrClosed. As POSIX mq_timedreceive does, a receive that finds a message
// succeeds even if ctx has already ended. With caller buffers it does not allocate.
func (q *Queue) Recv(ctx context.Context, buf []byte) (n int, prio uint, err error) {
	var v int
	if q.nonblock.Load() {
		v, err = q.fd.Try(buf, receive)
	} else if v, err = q.fd.Do(ctx, false, buf, receive); err != nil {
		v, err = q.late(ctx, err, buf, receive)
	}
	if err != nil {
		return 0, 0, q.wrap("mq_timedreceive", err)
	}
	n, prio = unpack(v)
	return n, prio, nil
}

// TryRecv is Recv without waiting: with the queue empty it returns an error matching
// ipc.ErrWouldBlock (and unix.EAGAIN).
func (q *Queue) TryRecv(buf []byte) (n int, prio uint, err error) {
	v, err := q.fd.Try(buf, receive)
	if err != nil {
		return 0, 0, q.wrap("mq_timedreceive", err)
	}
	n, prio = unpack(v)
	return n, prio, nil
}

// Attr returns the queue's attributes (mq_getsetattr). Nonblock reports this
// handle's mode as Send and Recv see it; in poller mode the descriptor itself is
// always non-blocking, because the runtime poller needs it so.
func (q *Queue) Attr() (Attr, error) {
	var a sys.MqAttr
	err := q.control(func(fd int) error { return sys.MqGetsetattr(fd, nil, &a) })
	if err != nil {
		return Attr{}, q.wrap("mq_getsetattr", err)
	}
	return Attr{MaxMsg: int(a.Maxmsg), MsgSize: int(a.Msgsize), CurMsgs: int(a.Curmsgs), Nonblock: q.nonblock.Load()}, nil
}

// SetAttr applies a.Nonblock, the only attribute that can change after creation (as
// with mq_setattr(3), MaxMsg, MsgSize and CurMsgs are ignored), and returns the
// attributes as they were before. In the auto and kernel modes it sets the
// descriptor's O_NONBLOCK flag, which every duplicate of the descriptor shares; in
// poller mode the descriptor stays non-blocking and only this handle's Send and Recv
// change behaviour.
func (q *Queue) SetAttr(a Attr) (Attr, error) {
	var set, old sys.MqAttr
	if a.Nonblock || q.fd.Mode() == ipc.WaitPoller {
		set.Flags = unix.O_NONBLOCK
	}
	err := q.control(func(fd int) error { return sys.MqGetsetattr(fd, &set, &old) })
	if err != nil {
		return Attr{}, q.wrap("mq_getsetattr", err)
	}
	was := q.nonblock.Swap(a.Nonblock)
	return Attr{MaxMsg: int(old.Maxmsg), MsgSize: int(old.Msgsize), CurMsgs: int(old.Curmsgs), Nonblock: was}, nil
}

// Len returns the number of messages queued (mq_curmsgs).
func (q *Queue) Len() (int, error) {
	a, err := q.Attr()
	return a.CurMsgs, err
}

// Status is a queue's state as the kernel reports it in the queue's file (the text
// read from the descriptor, or from /dev/mqueue/<name> where that is mounted).
type Status struct {
	// QSize is the number of bytes of message data queued.
	QSize int
	// Notify is the sigev_notify of the process registered with mq_notify
	// (0 = SIGEV_SIGNAL, 1 = SIGEV_NONE, 2 = SIGEV_THREAD) and Signo its signal;
	// both are 0 when NotifyPID is 0.
	Notify, Signo int
	// NotifyPID is the process registered with mq_notify, 0 if none.
	NotifyPID int
	// Text is the kernel's line as read.
	Text string
}

// Status reads the queue's status line from the kernel ("QSIZE:... NOTIFY:...
// SIGNO:... NOTIFY_PID:..."). It needs no mqueue mount: the text comes from read(2) on
// the descriptor. A write-only handle cannot read its own descriptor, so it reopens
// the queue read-only through /proc/self/fd; while this process holds a NotifyKernel
// registration on the queue, that descriptor stays open (and serves later calls) until
// the registration ends, because closing it would remove the registration.
func (q *Queue) Status() (Status, error) {
	var text string
	var err error
	if q.access != unix.O_WRONLY {
		err = q.control(func(fd int) (err error) {
			text, err = readStatus(fd)
			return err
		})
	} else {
		r := lockQueue(q.id)
		if kfd := r.readableLocked(); kfd >= 0 {
			text, err = readStatus(kfd)
		} else {
			err = q.control(func(fd int) error {
				rfd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(fd), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
				if err != nil {
					return err
				}
				text, err = readStatus(rfd)
				r.closeLocked(keptFd{fd: rfd, read: true})
				return err
			})
		}
		r.unlock()
	}
	if err != nil {
		return Status{}, q.wrap("read status", err)
	}
	s, err := ParseStatus(text)
	if err != nil {
		return Status{}, q.wrap("read status", err)
	}
	return s, nil
}

// readStatus reads the status line of the queue open for reading at fd.
func readStatus(fd int) (string, error) {
	var buf [128]byte
	n, err := unix.Pread(fd, buf[:], 0)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// StatusOf reads the status of the queue name from the mqueue file system mounted at
// dir (usually "/dev/mqueue"). Reading it needs read permission on the queue. While
// this process holds a NotifyKernel registration on the queue, the descriptor it
// opens stays open (and serves later calls) until the registration ends, because
// closing it would remove the registration.
func StatusOf(dir, name string) (Status, error) {
	bare, err := kernelName("read status", name)
	if err != nil {
		return Status{}, err
	}
	text, err := statusOf(dir + "/" + bare)
	if err != nil {
		return Status{}, ipc.Wrap("read status", name, err)
	}
	s, err := ParseStatus(text)
	if err != nil {
		return Status{}, ipc.Wrap("read status", name, err)
	}
	return s, nil
}

func statusOf(path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", err
	}
	r := lockQueue(qid{uint64(st.Dev), st.Ino})
	if kfd := r.readableLocked(); kfd >= 0 {
		text, err := readStatus(kfd)
		r.unlock()
		return text, err
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		r.unlock()
		return "", err
	}
	text, err := readStatus(fd)
	id, ierr := queueID(fd)
	switch {
	case ierr == nil && id == r.id:
		r.closeLocked(keptFd{fd: fd, read: true})
		r.unlock()
	case ierr == nil:
		// Another queue took the name between the stat and the open.
		r.unlock()
		closeQueueFd(id, keptFd{fd: fd, read: true})
	default:
		r.unlock()
		unix.Close(fd)
	}
	return text, err
}

// ParseStatus parses the kernel's status line of a queue.
func ParseStatus(text string) (Status, error) {
	s := Status{Text: strings.TrimSpace(text)}
	seen := 0
	for _, f := range strings.Fields(text) {
		k, v, ok := strings.Cut(f, ":")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return Status{}, fmt.Errorf("status field %q: %w", f, ipc.ErrInvalid)
		}
		switch k {
		case "QSIZE":
			s.QSize = n
		case "NOTIFY":
			s.Notify = n
		case "SIGNO":
			s.Signo = n
		case "NOTIFY_PID":
			s.NotifyPID = n
		default:
			continue
		}
		seen++
	}
	if seen != 4 {
		return Status{}, fmt.Errorf("status %q: want QSIZE, NOTIFY, SIGNO and NOTIFY_PID: %w", s.Text, ipc.ErrInvalid)
	}
	return s, nil
}

// Fd returns the descriptor number. It stays valid until Close; do not close it or
// change its flags. After Close it returns -1 (the number may already name another
// file).
func (q *Queue) Fd() int {
	if q.closed.Load() {
		return -1
	}
	return q.fd.Fd()
}

// File returns a new open file description of the queue (reopened through
// /proc/self/fd with the same access), blocking, close-on-exec, and independent of
// this handle's flags, for exec.Cmd.ExtraFiles; the child adopts it with FromFd. It
// works after Remove too. The caller closes the returned file once the child has
// started.
//
// Closing that file in this process removes this process's mq_notify registration on
// the queue (the kernel's rule, see KernelNotification), so File refuses with an error
// matching ErrRegistered (and unix.EBUSY) while a NotifyKernel registration on the
// queue, made through any handle, is live. Likewise a file obtained before a
// registration ends it when closed (or when the garbage collector closes it).
func (q *Queue) File() (*os.File, error) {
	r := lockQueue(q.id)
	defer r.unlock()
	if r.liveLocked() {
		return nil, &ipc.OpError{Op: "reopen", Object: q.name, Err: ErrRegistered}
	}
	var f *os.File
	err := q.control(func(fd int) error {
		nfd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(fd), q.access|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		f = os.NewFile(uintptr(nfd), q.name)
		return nil
	})
	return f, q.wrap("reopen", err)
}

// Close closes the descriptor (mq_close) and stops the handle's Notifiers. It is
// idempotent: later calls return the first one's result. Calls blocked on the queue
// return an error matching os.ErrClosed. Close drops the handle only: the queue
// itself lives on until Remove (and, after Remove, until its last descriptor in any
// process is closed). Closing also removes this process's kernel mq_notify
// registration on the queue, whichever handle of the queue made it (the kernel's
// rule, see KernelNotification).
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		q.notifMu.Lock()
		q.closed.Store(true)
		ns, ks := q.notifiers, q.kernelNotes
		q.notifiers, q.kernelNotes = nil, nil
		q.notifMu.Unlock()
		for k := range ks {
			k.Cancel() // while the descriptor is still open
		}
		for n := range ns {
			n.Stop()
		}
		q.leak.Stop()
		q.closeErr = q.fd.Close() // unblocks every call, then releases the descriptor
	})
	if q.closeErr != nil {
		return q.wrap("close", q.closeErr)
	}
	return nil
}

// Remove removes the queue's name (mq_unlink), as the package function Remove does:
// the queue itself lives on, fully usable through this and every other open handle,
// until the last one in any process is closed; opening it by name then fails with an
// error matching fs.ErrNotExist. Close drops only the handle; Remove destroys the
// queue. After Close it still removes the name, once it has confirmed that the name
// still names the queue this handle had open (not one made since under the same
// name, which it leaves alone, returning an error matching ipc.ErrRemoved).
func (q *Queue) Remove() error {
	if !q.closed.Load() {
		return Remove(q.name)
	}
	bare, err := kernelName("mq_unlink", q.name)
	if err != nil {
		return err
	}
	fd, err := sys.MqOpen(bare, q.access|unix.O_CLOEXEC|unix.O_NONBLOCK, 0, nil)
	if err != nil {
		return ipc.Wrap("mq_unlink", q.name, err)
	}
	id, err := queueID(fd)
	if err != nil {
		unix.Close(fd)
		return ipc.Wrap("mq_unlink", q.name, err)
	}
	// Through the queue's record: closing a descriptor of a queue ends this
	// process's mq_notify registration on it, which another handle may hold.
	closeQueueFd(id, keptFd{fd: fd, read: q.access != unix.O_WRONLY})
	if id != q.id {
		return &ipc.OpError{Op: "mq_unlink", Object: q.name, Err: fmt.Errorf("the name now names another queue: %w", ipc.ErrRemoved)}
	}
	return Remove(q.name)
}

// Remove removes the queue name (mq_unlink). The name disappears at once (a later
// Open fails with an error matching unix.ENOENT and fs.ErrNotExist, and Create may
// make a new queue of that name); the queue itself lives on, fully usable, until
// every process has closed its descriptors. It fails with an error matching
// unix.ENOENT if there is no such queue and unix.EACCES without permission.
func Remove(name string) error {
	bare, err := kernelName("mq_unlink", name)
	if err != nil {
		return err
	}
	return ipc.Wrap("mq_unlink", name, sys.MqUnlink(bare))
}

// control runs f with the descriptor, guarding against a concurrent Close.
func (q *Queue) control(f func(fd int) error) error { return q.fd.Control(f) }

// wrap turns an error from any layer into the package's *ipc.OpError.
func (q *Queue) wrap(op string, err error) error { return q.fd.Wrap(op, err) }
