package mailbox

import (
	"github.com/ipclab/ipclab/internal/option"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/mailbox/internal/wire"
)

// Option configures the handles CreateMailbox, OpenMailbox, CreatePort, OpenPort,
// ListenLink and DialLink return. Options about the kernel object (backend,
// persistence, capacity) matter only when it is created.
type Option func(*config)

type config struct {
	backend    Backend
	persistent bool
	maxMsgs    int
	maxPayload int
	wait       ipc.WaitStrategy
	discipline Discipline
	sendBuf    int
}

func newConfig(op, name string, opts []Option) (config, error) {
	c := config{backend: PosixMQ, maxMsgs: 10, maxPayload: 1024, wait: ipc.WaitAuto, discipline: Receipt, sendBuf: 16}
	if err := option.Apply(&c, opts); err != nil {
		return c, &ipc.OpError{Op: op, Object: name, Err: err}
	}
	return c, nil
}

func (c config) maxFrame() int { return wire.Size(wire.MaxAddr, c.maxPayload) }

func (c config) check(op, name string) error {
	bad := c.maxMsgs <= 0 || c.maxPayload <= 0 || c.maxPayload > 1<<20 || c.sendBuf <= 0 ||
		!c.discipline.valid() || (c.backend != PosixMQ && c.backend != SysV) ||
		(c.wait != ipc.WaitAuto && c.wait != ipc.WaitPoller && c.wait != ipc.WaitKernel)
	if bad {
		return &ipc.OpError{Op: op, Object: name, Err: errInvalid}
	}
	return nil
}

// WithBackend chooses the kernel queue behind a mailbox or port: PosixMQ (default) or
// SysV.
func WithBackend(b Backend) Option { return func(c *config) { c.backend = b } }

// Persistent makes a new mailbox persistent: its kernel queue and its name outlive
// every process, keeping queued messages, until Remove. Without it a mailbox is
// transient: the last handle's Close (in any process) removes it, and Reap removes it
// once every process holding it has died.
func Persistent() Option { return func(c *config) { c.persistent = true } }

// WithCapacity sets the capacity of a new queue: at most maxMsgs messages (POSIX
// backend; limited by /proc/sys/fs/mqueue/msg_max for unprivileged users) of at most
// maxPayload bytes each (default 10 messages of 1024 bytes). Handles opening an
// existing object take its capacity from the namespace entry.
func WithCapacity(maxMsgs, maxPayload int) Option {
	return func(c *config) { c.maxMsgs, c.maxPayload = maxMsgs, maxPayload }
}

// WithWait sets how blocking calls on POSIX queues and links wait: ipc.WaitAuto (the
// default: in the kernel while the wait is short, then in the Go poller),
// ipc.WaitPoller (in the Go poller) or ipc.WaitKernel (the thread blocks in the
// system call). System V queues always wait in the kernel.
func WithWait(w ipc.WaitStrategy) Option { return func(c *config) { c.wait = w } }

// WithDiscipline sets the discipline Put uses (default Receipt).
func WithDiscipline(d Discipline) Option { return func(c *config) { c.discipline = d } }

// WithSendBuffer sets how many messages Bsend may hold before it waits (default 16).
// The buffer is allocated when Bsend is first used.
func WithSendBuffer(n int) Option { return func(c *config) { c.sendBuf = n } }
