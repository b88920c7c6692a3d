package mailbox

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/sockets"
)

// End is one end of a link.
type End uint8

const (
	// SendEnd is the end that sends.
	SendEnd End = iota + 1
	// RecvEnd is the end that receives.
	RecvEnd
)

func (e End) String() string {
	switch e {
	case SendEnd:
		return "send"
	case RecvEnd:
		return "recv"
	}
	return fmt.Sprintf("End(%d)", uint8(e))
}

// Link is one end of a unidirectional link between exactly two processes: a
// connected Unix seqpacket socket (the kernel keeps message boundaries and lets no
// third party in). Exactly one of Tx and Rx is set. Messages go from Tx to Rx only;
// acknowledgements and replies come back along the same connection. Receipt on a link
// means the message is in the receiver's socket buffer. Several links, each with its
// own name, may join the same two processes; a name is free again once its link is
// connected.
type Link struct {
	// Tx is the sending end (nil at the receiving end).
	Tx *Sender
	// Rx is the receiving end (nil at the sending end).
	Rx *Receiver

	name string
	conn *sockets.SeqpacketConn
}

// LinkListener waits for the other end of a named link.
type LinkListener struct {
	ns  *Namespace
	ln  *sockets.SeqpacketListener
	ent *entry
	end End
	cfg config
}

const linkHello = "ipclab-link-1"

// ListenLink creates the link name with this process at end, and waits for the other
// end with Accept. The name (a socket in the namespace directory and an entry owned by
// this process) exists until Accept or Close.
func (ns *Namespace) ListenLink(name string, end End, opts ...Option) (*LinkListener, error) {
	c, err := newConfig("listen link", name, opts)
	if err != nil {
		return nil, err
	}
	if err := checkName("listen link", name, false); err != nil {
		return nil, err
	}
	if err := c.check("listen link", name); err != nil {
		return nil, err
	}
	if end != SendEnd && end != RecvEnd {
		return nil, &ipc.OpError{Op: "listen link", Object: name, Err: errInvalid}
	}
	owner, err := self()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(ns.dir, name+".link")
	rec := Record{Name: name, Kind: linkKind, Backend: "seqpacket", Object: path,
		MaxPayload: c.maxPayload, Owner: owner, End: end.String()}
	// Claim the name first, so a live link's socket is never touched.
	ent, err := ns.register(rec)
	if err != nil {
		return nil, err
	}
	ln, err := sockets.ListenSeqpacket(path, sockets.WithBacklog(1), sockets.WithPeerPolicy(sockets.SameUser()),
		sockets.WithWait(c.wait))
	if err != nil {
		ent.remove()
		ent.release(false)
		return nil, err
	}
	return &LinkListener{ns: ns, ln: ln, ent: ent, end: end, cfg: c}, nil
}

// Accept waits for the other end to dial, then removes the name (so no third process
// can join) and returns this end of the link.
func (l *LinkListener) Accept(ctx context.Context) (*Link, error) {
	conn, err := l.ln.Accept(ctx)
	if err != nil {
		return nil, err
	}
	if err := l.Close(); err != nil {
		conn.Close()
		return nil, err
	}
	if err := conn.Send(ctx, []byte(linkHello)); err != nil {
		conn.Close()
		return nil, err
	}
	return newLink(l.ent.rec.Name, conn, l.end, l.cfg), nil
}

// Close stops listening and removes the name. Idempotent.
func (l *LinkListener) Close() error {
	if l.ent.f == nil {
		return nil
	}
	err := l.ln.Close()
	return ipc.Join(err, l.ent.remove(), l.ent.release(false))
}

// DialLink joins the link name at the end its creator left free. It fails with an
// error matching unix.ENOENT if nobody listens on that name, and with ipc.ErrPeerGone
// if another process took the link first.
func (ns *Namespace) DialLink(ctx context.Context, name string, opts ...Option) (*Link, error) {
	c, err := newConfig("dial link", name, opts)
	if err != nil {
		return nil, err
	}
	ent, err := ns.open("dial link", name, linkKind, c)
	if err != nil {
		return nil, err
	}
	rec := ent.rec
	ent.release(false)
	end := SendEnd
	if rec.End == SendEnd.String() {
		end = RecvEnd
	}
	conn, err := sockets.DialSeqpacket(ctx, rec.Object, sockets.WithPeerPolicy(sockets.SameUser()), sockets.WithWait(c.wait))
	if err != nil {
		return nil, err
	}
	var hello [len(linkHello)]byte
	n, err := conn.Recv(ctx, hello[:])
	if err == io.EOF || err == nil && string(hello[:n]) != linkHello {
		err = ipc.Wrap("dial link", name, unix.ECONNRESET)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	if rec.MaxPayload > 0 {
		c.maxPayload = rec.MaxPayload
	}
	return newLink(name, conn, end, c), nil
}

func newLink(name string, conn *sockets.SeqpacketConn, end End, c config) *Link {
	l := &Link{name: name, conn: conn}
	cc := connCarrier{conn}
	if end == SendEnd {
		l.Tx = newSender(name, cc, c, linkAnswers{cc}, false)
	} else {
		l.Rx = newReceiver(name, cc, c, linkAnswers{cc}, false)
	}
	return l
}

// Name returns the link's name.
func (l *Link) Name() string { return l.name }

// Close destroys this end of the link; the other end's receives return io.EOF and its
// sends ipc.ErrPeerGone. Idempotent.
func (l *Link) Close() error {
	var err error
	if l.Tx != nil {
		err = l.Tx.Close()
	}
	if l.Rx != nil {
		err = l.Rx.Close()
	}
	return ipc.Join(err, l.conn.Close())
}

// connCarrier carries frames over a seqpacket connection.
type connCarrier struct{ c *sockets.SeqpacketConn }

func (c connCarrier) trySend(p []byte) error                   { return c.c.TrySend(p) }
func (c connCarrier) send(ctx context.Context, p []byte) error { return c.c.Send(ctx, p) }
func (c connCarrier) tryRecv(p []byte) (int, error)            { return c.c.TryRecv(p) }
func (c connCarrier) recv(ctx context.Context, p []byte) (int, error) {
	return c.c.Recv(ctx, p)
}
func (c connCarrier) close() error { return nil } // the Link closes the connection

// linkAnswers sends and receives answers along the link itself.
type linkAnswers struct{ c connCarrier }

func (a linkAnswers) open() (carrier, []byte, error) { return a.c, nil, nil }
func (a linkAnswers) get([]byte) (carrier, error)    { return a.c, nil }
func (a linkAnswers) drop([]byte)                    {}
func (a linkAnswers) close() error                   { return nil }
