package mailbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/mailbox/internal/wire"
)

// answerSource is where a sender's acknowledgements and replies arrive: its own
// reply port (mailboxes and ports) or the link itself.
type answerSource interface {
	// open returns the carrier answers arrive on and the address to put in frames
	// (empty for a link).
	open() (carrier, []byte, error)
	close() error
}

// Sender is the sending right on a mailbox, port or link. Every send names its
// discipline (see Discipline for the guarantees). It is safe for concurrent use;
// delivery- and response-based sends of one Sender are made one at a time (use more
// Senders for concurrent synchronous calls).
type Sender struct {
	name       string
	out        carrier
	maxPayload int
	frameSize  int
	def        Discipline
	sendBuf    int
	answers    answerSource
	ownsOut    bool // Close closes out

	wouldBlock error

	seq    atomic.Uint64
	frames sync.Pool // *[]byte of frameSize
	sync   chan struct{}
	ansBuf []byte // guarded by sync

	bsOnce sync.Once
	bs     atomic.Pointer[bsender]

	closeOnce sync.Once
	closeErr  error
	closed    atomic.Bool
}

func newSender(name string, out carrier, c config, answers answerSource, ownsOut bool) *Sender {
	s := &Sender{name: name, out: out, maxPayload: c.maxPayload, frameSize: c.maxFrame(),
		def: c.discipline, sendBuf: c.sendBuf, answers: answers, ownsOut: ownsOut,
		sync: make(chan struct{}, 1)}
	s.wouldBlock = &ipc.OpError{Op: "trysend", Object: name, Err: ipc.ErrWouldBlock}
	s.frames.New = func() any { b := make([]byte, s.frameSize); return &b }
	return s
}

func (s *Sender) opErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var oe *ipc.OpError
	if errors.As(err, &oe) && oe.Object == s.name {
		return err
	}
	return &ipc.OpError{Op: op, Object: s.name, Err: err}
}

func (s *Sender) checkPayload(op string, data []byte) error {
	if s.closed.Load() {
		return s.opErr(op, ipc.ErrRemoved)
	}
	if len(data) > s.maxPayload {
		return s.opErr(op, fmt.Errorf("%w: %d-byte message, at most %d", errInvalid, len(data), s.maxPayload))
	}
	return nil
}

// post encodes and sends one data frame (no answer expected).
func (s *Sender) post(ctx context.Context, op string, d Discipline, data []byte, wait bool) error {
	if err := s.checkPayload(op, data); err != nil {
		return err
	}
	bp := s.frames.Get().(*[]byte)
	defer s.frames.Put(bp)
	n, err := wire.Encode(*bp, wire.Frame{Kind: wire.KindData, Discipline: uint8(d), Seq: s.seq.Add(1), Payload: data})
	if err != nil {
		return s.opErr(op, err)
	}
	if wait {
		err = s.out.send(ctx, (*bp)[:n])
	} else if err = s.out.trySend((*bp)[:n]); err != nil && errors.Is(err, ipc.ErrWouldBlock) {
		return s.wouldBlock // preallocated: a caller may spin on it
	}
	return s.opErr(op, err)
}

// TrySend sends data without waiting (NonBlocking): on success the kernel object holds
// the message; if it is full the error matches ipc.ErrWouldBlock and nothing was sent.
// It does not allocate.
func (s *Sender) TrySend(data []byte) error {
	return s.post(context.Background(), "trysend", NonBlocking, data, false)
}

// Send sends data with the Receipt discipline (MPI's standard-mode send): it waits,
// while the queue is full, until the kernel object has stored the message, or ctx
// ends. Once it returns nil the message no longer depends on this process. It does not
// allocate.
func (s *Sender) Send(ctx context.Context, data []byte) error {
	return s.post(ctx, "send", Receipt, data, true)
}

// Put appends data with the Sender's default discipline (WithDiscipline; Receipt
// unless set). For Response the reply is discarded; use Sendrecv to read it.
func (s *Sender) Put(ctx context.Context, data []byte) error {
	_, err := s.SendWith(ctx, s.def, data, nil)
	return err
}

// SendWith sends data with discipline d and, for Response, reads the reply into reply
// and returns its length.
func (s *Sender) SendWith(ctx context.Context, d Discipline, data, reply []byte) (int, error) {
	switch d {
	case NonBlocking:
		return 0, s.TrySend(data)
	case Buffered:
		return 0, s.Bsend(ctx, data)
	case Receipt:
		return 0, s.Send(ctx, data)
	case Delivery:
		return 0, s.Ssend(ctx, data)
	case Response:
		return s.Sendrecv(ctx, data, reply)
	}
	return 0, s.opErr("send", fmt.Errorf("%w: discipline %v", errInvalid, d))
}

// Ssend sends data with the Delivery discipline (MPI's synchronous send): it returns
// only once a receiver's Recv has taken the message and acknowledged it. If ctx ends
// first it returns ctx's error, and the message may still be delivered later.
func (s *Sender) Ssend(ctx context.Context, data []byte) error {
	_, err := s.call(ctx, "ssend", Delivery, data, nil)
	return err
}

// Sendrecv sends data with the Response discipline and waits for the receiver's
// Reply, which it copies into reply; it returns the reply's length. A reply longer
// than reply fills it and returns an error matching ipc.ErrTruncated.
func (s *Sender) Sendrecv(ctx context.Context, data, reply []byte) (int, error) {
	return s.call(ctx, "sendrecv", Response, data, reply)
}

// call sends a data frame carrying the reply address and waits for the answer with
// its sequence number. Answers to earlier calls that gave up are skipped.
func (s *Sender) call(ctx context.Context, op string, d Discipline, data, reply []byte) (int, error) {
	if err := s.checkPayload(op, data); err != nil {
		return 0, err
	}
	select {
	case s.sync <- struct{}{}:
	case <-ctx.Done():
		return 0, s.opErr(op, ctx.Err())
	}
	defer func() { <-s.sync }()
	in, addr, err := s.answers.open()
	if err != nil {
		return 0, s.opErr(op, err)
	}
	if s.ansBuf == nil {
		s.ansBuf = make([]byte, s.frameSize)
	}
	seq := s.seq.Add(1)
	bp := s.frames.Get().(*[]byte)
	n, err := wire.Encode(*bp, wire.Frame{Kind: wire.KindData, Discipline: uint8(d), Seq: seq, Addr: addr, Payload: data})
	if err == nil {
		err = s.out.send(ctx, (*bp)[:n])
	}
	s.frames.Put(bp)
	if err != nil {
		return 0, s.opErr(op, err)
	}
	for {
		n, err := in.recv(ctx, s.ansBuf)
		if errors.Is(err, io.EOF) {
			err = ipc.ErrPeerGone
		}
		if err != nil {
			return 0, s.opErr(op, err)
		}
		f, err := wire.Decode(s.ansBuf[:n])
		if err != nil || f.Seq != seq {
			continue // garbage or a late answer to an abandoned call
		}
		switch {
		case d == Delivery && f.Kind == wire.KindAck:
			return 0, nil
		case d == Response && f.Kind == wire.KindReply:
			m := copy(reply, f.Payload)
			if m < len(f.Payload) {
				return m, s.opErr(op, ipc.ErrTruncated)
			}
			return m, nil
		}
	}
}

// Close releases the Sender: its reply port is removed and buffered messages not yet
// flushed are dropped (the error says how many; call Flush first to keep them). A
// send in flight returns an error matching os.ErrClosed. Idempotent.
func (s *Sender) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		var errs []error
		s.bsOnce.Do(func() {}) // no buffer may start after this
		if b := s.bs.Load(); b != nil {
			errs = append(errs, s.opErr("close", b.close()))
		}
		if s.answers != nil {
			errs = append(errs, s.answers.close())
		}
		if s.ownsOut {
			errs = append(errs, s.out.close())
		}
		s.closeErr = ipc.Join(errs...)
	})
	return s.closeErr
}
