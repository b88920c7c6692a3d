package mailbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/mailbox/internal/wire"
)

var errClosedSender = fmt.Errorf("sender closed: %w", os.ErrClosed)

// answerSink opens the carrier that answers (acknowledgements, replies) to a frame
// with reply address addr go to.
type answerSink interface {
	get(addr []byte) (carrier, error)
	// drop forgets a cached carrier that failed.
	drop(addr []byte)
	close() error
}

// Message describes a received message. The payload is in the caller's buffer.
type Message struct {
	// N is the payload's length.
	N int
	// Seq is the sender's sequence number.
	Seq uint64
	// Discipline is the discipline the sender used. For Response the receiver must
	// Reply.
	Discipline Discipline

	addr [wire.MaxAddr]byte
	alen uint8
}

// ReplyTo returns the address answers to this message go to (the sender's reply
// port; empty on a link).
func (m *Message) ReplyTo() string { return string(m.addr[:m.alen]) }

// Receiver is the receiving right on a mailbox, port or link. It is safe for
// concurrent use; receives of one Receiver take turns.
type Receiver struct {
	name    string
	in      carrier
	answers answerSink
	ownsIn  bool

	maxPayload int
	buf        chan *rbuf // one receive buffer, passed around as a token
	replies    sync.Pool  // *[]byte frame buffers for Reply
	wouldBlock error      // TryRecv's error for an empty mailbox, made once

	closeOnce sync.Once
	closeErr  error
}

// rbuf is a receive buffer; pending > 0 means it holds a frame of that length that a
// too-short caller buffer could not take yet.
type rbuf struct {
	b       []byte
	pending int
}

func newReceiver(name string, in carrier, c config, answers answerSink, ownsIn bool) *Receiver {
	r := &Receiver{name: name, in: in, answers: answers, ownsIn: ownsIn, maxPayload: c.maxPayload, buf: make(chan *rbuf, 1)}
	r.buf <- &rbuf{b: make([]byte, c.maxFrame())}
	r.wouldBlock = &ipc.OpError{Op: "tryrecv", Object: name, Err: ipc.ErrWouldBlock}
	r.replies.New = func() any { b := make([]byte, wire.Size(0, c.maxPayload)+wire.MaxAddr); return &b }
	return r
}

func (r *Receiver) opErr(op string, err error) error {
	if err == nil {
		return nil
	}
	return &ipc.OpError{Op: op, Object: r.name, Err: err}
}

// Recv waits for a message, copies its payload into buf and returns its description.
// The wait ends with ctx (a deadline gives an error matching os.ErrDeadlineExceeded or
// context.DeadlineExceeded, as the backend reports it). A delivery-based message is
// acknowledged to its sender before Recv returns. Nothing is ever lost:
//   - a payload longer than buf is kept and the error matches io.ErrShortBuffer
//     (Message.N says how long it is): call again with a larger buffer;
//   - a malformed frame (not sent by this package) is discarded with a *FrameError
//     (matching ipc.ErrInvalid) and the next call returns the next message.
//
// On a link, io.EOF means the sender has closed its end. With caller buffers Recv does
// not allocate.
func (r *Receiver) Recv(ctx context.Context, buf []byte) (Message, error) {
	return r.recv(ctx, "recv", buf, true)
}

// TryRecv is Recv without waiting: with no message queued it returns an error
// matching ipc.ErrWouldBlock.
func (r *Receiver) TryRecv(buf []byte) (Message, error) {
	return r.recv(context.Background(), "tryrecv", buf, false)
}

// Get is the queue vocabulary's blocking receive: Recv.
func (r *Receiver) Get(ctx context.Context, buf []byte) (Message, error) {
	return r.recv(ctx, "get", buf, true)
}

// Poll is the queue vocabulary's non-blocking receive: TryRecv.
func (r *Receiver) Poll(buf []byte) (Message, error) {
	return r.recv(context.Background(), "poll", buf, false)
}

func (r *Receiver) recv(ctx context.Context, op string, buf []byte, wait bool) (Message, error) {
	var rb *rbuf
	select {
	case rb = <-r.buf:
	default:
		select {
		case rb = <-r.buf:
		case <-ctx.Done():
			return Message{}, r.opErr(op, ctx.Err())
		}
	}
	defer func() { r.buf <- rb }()
	n := rb.pending
	if n == 0 {
		var err error
		if wait {
			n, err = r.in.recv(ctx, rb.b)
		} else {
			n, err = r.in.tryRecv(rb.b)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return Message{}, io.EOF
			}
			if !wait && errors.Is(err, ipc.ErrWouldBlock) {
				return Message{}, r.wouldBlock // preallocated: a caller may spin on it
			}
			return Message{}, r.opErr(op, err)
		}
	}
	rb.pending = 0
	f, err := wire.Decode(rb.b[:n])
	if err == nil && f.Kind != wire.KindData {
		err = &wire.FrameError{Reason: fmt.Sprintf("%v frame where data was expected", f.Kind), Size: n}
	}
	if err == nil && (f.Discipline == wire.Delivery || f.Discipline == wire.Response) && len(f.Addr) == 0 && !r.answersInline() {
		err = &wire.FrameError{Reason: fmt.Sprintf("%v message without a reply address", Discipline(f.Discipline)), Size: n}
	}
	if err != nil {
		return Message{}, r.opErr(op, err)
	}
	m := Message{N: len(f.Payload), Seq: f.Seq, Discipline: Discipline(f.Discipline), alen: uint8(len(f.Addr))}
	if len(f.Payload) > len(buf) {
		rb.pending = n
		return m, r.opErr(op, fmt.Errorf("%w: message of %d bytes kept for a larger buffer", io.ErrShortBuffer, len(f.Payload)))
	}
	copy(m.addr[:], f.Addr)
	copy(buf, f.Payload)
	if f.Discipline == wire.Delivery {
		// Acknowledge with the receive buffer itself, now that the payload is copied.
		k, _ := wire.Encode(rb.b, wire.Frame{Kind: wire.KindAck, Discipline: wire.Delivery, Seq: m.Seq, Addr: nil})
		// The ack is wire.HeaderSize bytes: f.Addr, just after it in rb.b, is intact.
		if err := r.answer(context.Background(), f.Addr, rb.b[:k], false); err != nil {
			return m, r.opErr("acknowledge", err)
		}
	}
	return m, nil
}

// answersInline reports whether answers go back the way messages came (a link).
func (r *Receiver) answersInline() bool {
	_, ok := r.answers.(linkAnswers)
	return ok
}

// answer sends an answer frame to addr. Acknowledgements never wait (a sender always
// has room for the answer to its one outstanding call); a sender that has gone is not
// an error.
func (r *Receiver) answer(ctx context.Context, addr, frame []byte, wait bool) error {
	for try := 0; try < 2; try++ {
		c, err := r.answers.get(addr)
		if err != nil {
			if gone(err) {
				return nil
			}
			return err
		}
		if wait {
			err = c.send(ctx, frame)
		} else {
			err = c.trySend(frame)
		}
		if err == nil {
			return nil
		}
		if gone(err) {
			r.answers.drop(addr)
			return nil
		}
		if !errors.Is(err, ipc.ErrWouldBlock) {
			return err
		}
		// A full reply port: the cached queue may be an orphan whose name is gone.
		r.answers.drop(addr)
	}
	return nil
}

// Reply answers a response-based message m with data, waiting while the sender's
// reply port is full until ctx ends. It fails with ipc.ErrInvalid if m did not ask for
// a reply. A sender that has gone is not an error. It does not allocate (frame
// buffers come from a pool).
func (r *Receiver) Reply(ctx context.Context, m Message, data []byte) error {
	if m.Discipline != Response {
		return r.opErr("reply", fmt.Errorf("%w: message was sent with %v", errInvalid, m.Discipline))
	}
	if len(data) > r.maxPayload {
		return r.opErr("reply", fmt.Errorf("%w: %d-byte reply, at most %d", errInvalid, len(data), r.maxPayload))
	}
	bp := r.replies.Get().(*[]byte)
	defer r.replies.Put(bp)
	// The pooled buffer's tail holds a copy of the address (slicing m itself would
	// move it to the heap).
	addr := (*bp)[len(*bp)-wire.MaxAddr:]
	addr = addr[:copy(addr, m.addr[:m.alen])]
	n, err := wire.Encode((*bp)[:len(*bp)-wire.MaxAddr], wire.Frame{Kind: wire.KindReply, Discipline: wire.Response, Seq: m.Seq, Payload: data})
	if err != nil {
		return r.opErr("reply", err)
	}
	return r.opErr("reply", r.answer(ctx, addr, (*bp)[:n], true))
}

// Close releases the Receiver; a receive in flight returns an error matching
// os.ErrClosed. Idempotent.
func (r *Receiver) Close() error {
	r.closeOnce.Do(func() {
		var errs []error
		if r.ownsIn {
			errs = append(errs, r.in.close())
		}
		if r.answers != nil {
			errs = append(errs, r.answers.close())
		}
		r.closeErr = ipc.Join(errs...)
	})
	return r.closeErr
}
