package mailbox

import (
	"sync"

	"github.com/ipclab/ipclab/ipc"
)

// Mailbox is a named queue with many senders and many receivers, in any processes:
// every handle can both send (Sender) and receive (Receiver), and each message goes to
// exactly one receiver. It is backed by a POSIX or System V message queue
// (WithBackend) and is transient or persistent (Persistent):
//
//   - transient: the queue and its name exist while some process has the mailbox
//     open; the last Close removes them, and Reap removes them once every process
//     holding them has died.
//   - persistent: the queue and its name, with the messages in it, outlive every
//     process until Remove.
type Mailbox struct {
	*Sender
	*Receiver

	ent *entry

	once     sync.Once
	err      error
	removeMu sync.Mutex // serialises Removes after Close
}

// CreateMailbox creates the mailbox name. It fails with an error matching unix.EEXIST
// if a live mailbox, port or link has that name (a stale one is reaped and replaced).
func (ns *Namespace) CreateMailbox(name string, opts ...Option) (*Mailbox, error) {
	c, err := newConfig("create mailbox", name, opts)
	if err != nil {
		return nil, err
	}
	ent, q, err := ns.createQueued("create mailbox", name, mailboxKind, c)
	if err != nil {
		return nil, err
	}
	return ns.newMailbox(ent, q, c), nil
}

// createQueued creates the queue of a mailbox or port (kind) named name, with c's
// options, and registers it; op names the caller's operation in errors.
func (ns *Namespace) createQueued(op, name, kind string, c config) (*entry, carrier, error) {
	if err := checkName(op, name, false); err != nil {
		return nil, nil, err
	}
	if err := c.check(op, name); err != nil {
		return nil, nil, err
	}
	owner, err := self()
	if err != nil {
		return nil, nil, err
	}
	q, obj, err := createQueue(c.backend, c.maxMsgs, c.maxFrame(), c.wait, kind == portKind)
	if err != nil {
		return nil, nil, err
	}
	rec := Record{Name: name, Kind: kind, Backend: c.backend.String(), Object: obj, SysV: sysvIdentity(q),
		Persistent: c.persistent && kind == mailboxKind, MaxMsgs: c.maxMsgs, MaxPayload: c.maxPayload, Owner: owner}
	ent, err := ns.register(rec)
	if err != nil {
		q.close()
		destroyObject(rec)
		return nil, nil, err
	}
	return ent, q, nil
}

// OpenMailbox opens the existing mailbox name (unix.ENOENT if there is none). Its
// backend, persistence and capacity come from the namespace entry.
func (ns *Namespace) OpenMailbox(name string, opts ...Option) (*Mailbox, error) {
	c, err := newConfig("open mailbox", name, opts)
	if err != nil {
		return nil, err
	}
	ent, err := ns.open("open mailbox", name, mailboxKind, c)
	if err != nil {
		return nil, err
	}
	q, err := openQueue(ent.rec, c.wait, false)
	if err != nil {
		ent.release(false)
		return nil, err
	}
	c = ent.rec.apply(c)
	return ns.newMailbox(ent, q, c), nil
}

// apply takes the object's backend and capacity from the record.
func (rec Record) apply(c config) config {
	c.persistent = rec.Persistent
	if b, err := ParseBackend(rec.Backend); err == nil {
		c.backend = b
	}
	if rec.MaxMsgs > 0 {
		c.maxMsgs = rec.MaxMsgs
	}
	if rec.MaxPayload > 0 {
		c.maxPayload = rec.MaxPayload
	}
	return c
}

func (ns *Namespace) newMailbox(ent *entry, q carrier, c config) *Mailbox {
	name := ent.rec.Name
	return &Mailbox{
		Sender:   newSender(name, q, c, &replyPort{ns: ns, cfg: c}, false),
		Receiver: newReceiver(name, q, c, &nsAnswers{ns: ns, cfg: c}, false),
		ent:      ent,
	}
}

// Record returns the mailbox's namespace entry.
func (m *Mailbox) Record() Record { return m.ent.rec }

// Len returns the number of messages queued in the mailbox.
func (m *Mailbox) Len() (int, error) { return m.Sender.out.(queueLen).len() }

// Name returns the mailbox's name.
func (m *Mailbox) Name() string { return m.ent.rec.Name }

// Close closes this handle; blocked calls return an error matching os.ErrClosed. For a
// transient mailbox the last handle in any process removes the queue and its name
// (queued messages are discarded). Idempotent.
func (m *Mailbox) Close() error {
	return m.close(false)
}

// Remove destroys the mailbox now, whoever else has it open (their calls then fail:
// ipc.ErrRemoved on System V; a POSIX queue lives on for handles already open, but the
// name is gone), and closes this handle. A persistent mailbox goes only this way.
// After Close it still destroys the mailbox this handle had open (not one made since
// under the same name).
func (m *Mailbox) Remove() error {
	removed := false
	m.once.Do(func() {
		removed = true
		m.err = m.closeNow(true)
	})
	if removed {
		return m.err
	}
	m.removeMu.Lock() // Removes after Close, against each other
	defer m.removeMu.Unlock()
	return m.ent.remove()
}

func (m *Mailbox) close(remove bool) error {
	m.once.Do(func() { m.err = m.closeNow(remove) })
	return m.err
}

// closeNow closes the handle and, if remove, destroys the mailbox; it runs once,
// under m.once, which holds back every other Close and Remove meanwhile.
func (m *Mailbox) closeNow(remove bool) error {
	errs := []error{m.Sender.Close(), m.Receiver.Close()}
	if remove {
		errs = append(errs, m.ent.remove())
	}
	errs = append(errs, m.Sender.out.close(), m.ent.release(!m.ent.rec.Persistent && !remove))
	return ipc.Join(errs...)
}
