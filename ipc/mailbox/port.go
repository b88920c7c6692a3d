package mailbox

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/posixmq"
	"github.com/ipclab/ipclab/sockets"
)

// Port is a named queue with many senders and one receiver: the process holding the
// Port owns the right to receive, and the namespace entry records it as the owner.
// Senders get a Sender from OpenPort. The port lives as long as its receive right:
// the owner's Close removes it, and Reap removes it once the owner has died. Handover
// gives the right to another process.
//
// With the POSIX backend the right is enforced by the kernel for unprivileged users:
// the queue has mode 0200, so opening it by name gives a send-only descriptor, and
// only the owner's descriptor (created with the queue, or passed by Handover) can
// receive. With System V, whose permissions are checked on every call, it is a
// convention of this package.
type Port struct {
	*Receiver

	ns  *Namespace
	ent *entry
	q   carrier
	cfg config

	mu      sync.Mutex
	handed  bool
	closed  bool
	closeEr error
}

// Kinds of namespace entries (Record.Kind).
const (
	mailboxKind = "mailbox"
	portKind    = "port"
	linkKind    = "link"
)

// CreatePort creates the port name and returns its receive right.
func (ns *Namespace) CreatePort(name string, opts ...Option) (*Port, error) {
	c, err := newConfig("create port", name, opts)
	if err != nil {
		return nil, err
	}
	ent, q, err := ns.createQueued("create port", name, portKind, c)
	if err != nil {
		return nil, err
	}
	return ns.newPort(ent, q, c), nil
}

func (ns *Namespace) newPort(ent *entry, q carrier, c config) *Port {
	return &Port{Receiver: newReceiver(ent.rec.Name, q, c, &nsAnswers{ns: ns, cfg: c}, true),
		ns: ns, ent: ent, q: q, cfg: c}
}

// OpenPort returns a Sender to the port name (unix.ENOENT if there is none). Closing
// the Sender does not affect the port. If the port's owner closes it, System V sends
// fail with ipc.ErrRemoved; a POSIX queue already open stays writable but is read by
// nobody and vanishes with the last descriptor.
func (ns *Namespace) OpenPort(name string, opts ...Option) (*Sender, error) {
	c, err := newConfig("open port", name, opts)
	if err != nil {
		return nil, err
	}
	ent, err := ns.open("open port", name, portKind, c)
	if err != nil {
		return nil, err
	}
	rec := ent.rec
	ent.release(false) // senders do not keep a port alive
	q, err := openQueue(rec, c.wait, true)
	if err != nil {
		return nil, err
	}
	c = rec.apply(c)
	return newSender(name, q, c, &replyPort{ns: ns, cfg: c}, true), nil
}

// Record returns the port's namespace entry as this owner last wrote it.
func (p *Port) Record() Record { return p.ent.rec }

// Close gives up the receive right: the port and its name are removed (unless it was
// handed over, in which case only this handle is released). Idempotent.
func (p *Port) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return p.closeEr
	}
	p.closed = true
	err := p.Receiver.Close()
	if !p.handed {
		err = ipc.Join(err, p.ent.remove())
	}
	p.closeEr = ipc.Join(err, p.ent.release(false))
	return p.closeEr
}

const handoverMagic = "ipclab-port-handover "

// Handover gives the receive right to the process at the other end of conn, which
// calls AcceptPort. The queue travels as a descriptor (SCM_RIGHTS) for the POSIX
// backend, by its id for System V. The new owner takes the entry's lock, writes itself
// into the owner record and confirms; only then does this Port let go (it is closed,
// without removing the port). If anything fails before the confirmation, this Port
// keeps the right. No message is lost: messages stay in the kernel queue, and
// Handover first waits (until ctx ends) for a receive in flight on this Port to
// finish.
func (p *Port) Handover(ctx context.Context, conn *sockets.SeqpacketConn) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return &ipc.OpError{Op: "handover", Object: p.name, Err: ipc.ErrRemoved}
	}
	var rb *rbuf
	select {
	case rb = <-p.buf:
	case <-ctx.Done():
		return &ipc.OpError{Op: "handover", Object: p.name, Err: ctx.Err()}
	}
	defer func() { p.buf <- rb }()
	if rb.pending > 0 {
		return &ipc.OpError{Op: "handover", Object: p.name,
			Err: fmt.Errorf("%w: a message is held for a larger receive buffer; receive it first", errInvalid)}
	}
	var fds []int
	if mq, ok := p.q.(mqCarrier); ok {
		// The descriptor itself, not Queue.File: reopening a mode-0200 queue for
		// receiving is exactly what the kernel refuses. The new owner shares this
		// open file description (and its O_NONBLOCK flag), which this Port stops
		// using once the handover is confirmed.
		fds = []int{mq.q.Fd()}
	}
	if _, err := conn.WriteMsg(ctx, []byte(handoverMagic+p.name), fds); err != nil {
		return &ipc.OpError{Op: "handover", Object: p.name, Err: err}
	}
	var ans [256]byte
	n, err := conn.Recv(ctx, ans[:])
	if err != nil {
		return &ipc.OpError{Op: "handover", Object: p.name, Err: err}
	}
	if string(ans[:n]) != "OK" {
		return &ipc.OpError{Op: "handover", Object: p.name, Err: fmt.Errorf("refused: %s", ans[:n])}
	}
	p.handed, p.closed = true, true
	p.closeEr = ipc.Join(p.Receiver.Close(), p.ent.release(false))
	return p.closeEr
}

// AcceptPort receives a port's receive right sent with Handover over conn and
// returns it; the caller becomes the port's owner.
func (ns *Namespace) AcceptPort(ctx context.Context, conn *sockets.SeqpacketConn, opts ...Option) (*Port, error) {
	c, err := newConfig("accept port", "", opts)
	if err != nil {
		return nil, err
	}
	var msg [256]byte
	var fds [1]int
	n, nfds, err := conn.ReadMsg(ctx, msg[:], fds[:])
	if err != nil {
		return nil, &ipc.OpError{Op: "accept port", Err: err}
	}
	refuse := func(err error) (*Port, error) {
		if nfds > 0 {
			closeFd(fds[0])
		}
		_ = conn.Send(ctx, []byte("ERR "+err.Error()))
		return nil, &ipc.OpError{Op: "accept port", Err: err}
	}
	name, ok := bytes.CutPrefix(msg[:n], []byte(handoverMagic))
	if !ok {
		return refuse(fmt.Errorf("%w: not a port handover", errInvalid))
	}
	ent, err := ns.lookup(string(name), false)
	if err != nil {
		return refuse(err)
	}
	if ent.rec.Kind != portKind {
		ent.release(false)
		return refuse(fmt.Errorf("%w: %s is a %s", errInvalid, name, ent.rec.Kind))
	}
	c = ent.rec.apply(c)
	var q carrier
	switch {
	case ent.rec.Backend == "posixmq" && nfds == 1:
		mq, err := posixmq.FromFd(fds[0], posixmq.WithWait(c.wait))
		nfds = 0 // FromFd owns it now, even on error
		if err != nil {
			ent.release(false)
			return refuse(err)
		}
		q = mqCarrier{mq}
	case ent.rec.Backend == "sysv" && nfds == 0:
		q, err = openQueue(ent.rec, c.wait, false)
		if err != nil {
			ent.release(false)
			return refuse(err)
		}
	default:
		ent.release(false)
		return refuse(fmt.Errorf("%w: %d descriptors for a %s port", errInvalid, nfds, ent.rec.Backend))
	}
	owner, err := self()
	if err == nil {
		err = ent.setOwner(owner)
	}
	if err == nil {
		err = conn.Send(ctx, []byte("OK"))
	}
	if err != nil {
		q.close()
		ent.release(false)
		return nil, &ipc.OpError{Op: "accept port", Object: string(name), Err: err}
	}
	return ns.newPort(ent, q, c), nil
}
