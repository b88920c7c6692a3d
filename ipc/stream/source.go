package stream

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ipclab/ipclab/ipc"
)

// A Source is the sending end of a stream: it shapes what it sends to its contract
// with a token bucket (bursts up to the depth, long-run rate at most the token
// rate), numbers and timestamps every unit. It is safe for concurrent use; sends are
// serialised.
type Source struct {
	mu      sync.Mutex
	conn    Conn
	spec    FlowSpec
	bucket  *TokenBucket
	sleep   sleeper
	shaping bool
	sub     uint32
	epoch   int64
	seq     uint64
	buf     []byte
	closed  bool
	stats   SourceStats
}

// SourceStats counts what a source sent.
type SourceStats struct {
	Units, Bytes uint64
	// Shaped is how long sends waited for tokens in all.
	Shaped time.Duration
}

type sourceConfig struct {
	sub      uint32
	epoch    int64
	unshaped bool
}

// A SourceOption configures Open.
type SourceOption func(*sourceConfig)

// WithSub sets the sub-stream id carried in every unit (a complex stream's audio,
// video, subtitles).
func WithSub(id uint32) SourceOption { return func(c *sourceConfig) { c.sub = id } }

// WithEpoch sets the stream's media epoch: the moment (Now) media time 0 is due.
// The sub-streams of a complex stream share one epoch; the default is Now at Open.
func WithEpoch(epoch int64) SourceOption { return func(c *sourceConfig) { c.epoch = epoch } }

// WithoutShaping makes a source that sends as fast as it is asked to: one that
// breaks its contract. It exists to test policers and to compare with another
// shaper (tc's tbf) on the same traffic.
func WithoutShaping() SourceOption { return func(c *sourceConfig) { c.unshaped = true } }

// Open offers spec to the sink at the other end of conn and returns the source once
// admitted. If the sink counter-offers a lower rate of at least spec.MinRate, the
// source takes it (Spec tells what was agreed); otherwise Open returns an error
// matching ErrRefused.
func Open(ctx context.Context, conn Conn, spec FlowSpec, opts ...SourceOption) (*Source, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	var c sourceConfig
	for _, o := range opts {
		o(&c)
	}
	if c.epoch == 0 {
		c.epoch = Now()
	}
	s := &Source{conn: conn, shaping: !c.unshaped, sub: c.sub, epoch: c.epoch, buf: make([]byte, HeaderSize+controlSize)}
	agreed, err := s.negotiate(ctx, opOffer, spec)
	if err != nil {
		return nil, wrapOp("open", err)
	}
	s.spec = agreed
	s.bucket = NewTokenBucket(agreed.Rate, agreed.Depth, Now())
	return s, nil
}

// negotiate sends an offer (or renegotiation) and settles the answer.
func (s *Source) negotiate(ctx context.Context, op byte, offer FlowSpec) (FlowSpec, error) {
	if err := sendControl(ctx, s.conn, s.buf, control{op: op, value: s.epoch, spec: offer}); err != nil {
		return FlowSpec{}, err
	}
	ans, err := recvControl(ctx, s.conn, s.buf, opAccept, opRefuse, opCounter)
	if err != nil {
		return FlowSpec{}, err
	}
	// The answer may change the rate, nothing else.
	if ans.op != opRefuse {
		got := ans.spec
		got.Rate = offer.Rate
		if got != offer || (ans.op == opAccept && ans.spec.Rate != offer.Rate) {
			return FlowSpec{}, fmt.Errorf("%w: the sink answered %s with a contract other than the offer's", ErrProtocol, opName(ans.op))
		}
	}
	switch ans.op {
	case opAccept:
		return ans.spec, nil
	case opCounter:
		if op == opRenegotiate {
			return FlowSpec{}, fmt.Errorf("%w: a renegotiation countered (it is granted or refused)", ErrProtocol)
		}
		if ans.spec.Rate >= offer.minRate() && ans.spec.Rate <= offer.Rate {
			return ans.spec, sendControl(ctx, s.conn, s.buf, control{op: opConfirm})
		}
		if err := sendControl(ctx, s.conn, s.buf, control{op: opCancel}); err != nil {
			return FlowSpec{}, err
		}
		return FlowSpec{}, fmt.Errorf("%w: counter-offer of %.0f bytes/s, below the least acceptable %.0f", ErrRefused, ans.spec.Rate, offer.minRate())
	}
	return FlowSpec{}, fmt.Errorf("%w: offer of %.0f bytes/s", ErrRefused, offer.Rate)
}

// Spec returns the contract in force.
func (s *Source) Spec() FlowSpec {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spec
}

// Epoch returns the stream's media epoch (see WithEpoch).
func (s *Source) Epoch() int64 { return s.epoch }

// Stats returns what the source sent so far.
func (s *Source) Stats() SourceStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Send sends payload as the next unit, at media time pts, once the token bucket
// allows it: it waits for tokens (honouring ctx) and then writes. A unit larger than
// the bucket's depth is refused before anything is sent.
func (s *Source) Send(ctx context.Context, payload []byte, pts time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.send(ctx, s.seq, payload, pts)
}

// send sends one unit with sequence number seq; s.mu is held.
func (s *Source) send(ctx context.Context, seq uint64, payload []byte, pts time.Duration) error {
	if s.closed {
		return ipc.Wrap("send", "stream", ipc.ErrRemoved)
	}
	size := WireSize(len(payload))
	if len(payload) > MaxPayload || size+s.spec.Overhead > s.spec.Depth {
		return ipc.Wrap("send", "stream", fmt.Errorf("%w: unit of %d bytes (+%d overhead) exceeds the bucket depth %d or the largest payload %d",
			ipc.ErrInvalid, size, s.spec.Overhead, s.spec.Depth, MaxPayload))
	}
	// The unit's send time is when it took its tokens: the moment the shaper let
	// it go, which a replay of the bucket (CheckBucket) finds conforming.
	sent := Now()
	if s.shaping {
		n := size + s.spec.Overhead
		start := sent
		for {
			w := s.bucket.Wait(n, sent)
			if w == 0 {
				s.bucket.Take(n, sent)
				break
			}
			if err := s.sleep.until(ctx, nil, sent+int64(w)); err != nil {
				return ipc.Wrap("send", "stream", err)
			}
			sent = Now()
		}
		s.stats.Shaped += time.Duration(sent - start)
	}
	if cap(s.buf) < size {
		s.buf = make([]byte, size)
	}
	b := s.buf[:size]
	h := header{kind: kindData, sub: s.sub, seq: seq, pts: int64(pts), len: uint32(len(payload)), sent: sent}
	h.put(b)
	copy(b[HeaderSize:], payload)
	if err := s.conn.Send(ctx, b); err != nil {
		return wrapOp("send", err)
	}
	s.seq = seq + 1
	s.stats.Units++
	s.stats.Bytes += uint64(size)
	return nil
}

// Renegotiate offers a new contract on the open stream (typically a lower one,
// after a Violation) and returns the contract agreed. If the sink refuses, the old
// contract stays and the error matches ErrRefused. No unit may be in flight from
// another goroutine's Send meanwhile: Renegotiate holds the send lock.
func (s *Source) Renegotiate(ctx context.Context, offer FlowSpec) (FlowSpec, error) {
	if err := offer.Validate(); err != nil {
		return FlowSpec{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return FlowSpec{}, ipc.Wrap("renegotiate", "stream", ipc.ErrRemoved)
	}
	agreed, err := s.negotiate(ctx, opRenegotiate, offer)
	if err != nil {
		return s.spec, wrapOp("renegotiate", err)
	}
	s.spec = agreed
	s.bucket.Set(agreed.Rate, agreed.Depth, Now())
	return agreed, nil
}

// Close tells the sink the stream has ended (waiting at most a second for the
// transport to take the message) and releases the source. It does not close conn.
// Close is idempotent.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	// The close says how many units were sent (the next sequence number), so that
	// a sink on a path that reorders can wait for the stragglers.
	return wrapOp("close", sendControl(ctx, s.conn, s.buf, control{op: opClose, value: int64(s.seq)}))
}
