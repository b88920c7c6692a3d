package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/ipclab/ipclab/ipc"
)

// A Sink is the receiving end of a stream: it admits the stream (with an Admission,
// if given), polices it against its contract, plays it out according to its mode,
// and reports on it every interval. One goroutine calls Recv; the other methods are
// safe for concurrent use.
type Sink struct {
	conn   Conn
	adm    *Admission
	media  bool
	slack  time.Duration
	epoch  int64
	ctrl   []byte
	police *TokenBucket
	sleep  sleeper

	mu    sync.Mutex
	spec  FlowSpec
	cur   window // the current monitoring interval
	total Stats
	// A stream carries one sub-stream, fixed by its first unit: top is the highest
	// sequence number seen + 1 (0: none), seen the numbers seen.
	sub     uint32
	hasSub  bool
	top     uint64
	seen    seqSet
	closed  bool // Close has begun: nothing more goes on the channels
	prevDel int64
	hasPrev bool
	log     []Unit
	logCap  int
	// The reader goroutine reads ahead into buffers from free and queues them, so
	// that a unit's arrival time is when it came, and the transport's buffer is
	// not the only play-out buffer. playing is the unit admitted and not yet
	// handed out (Recv returned early: a short buffer, ctx); readErr ends every
	// later Recv.
	queue    chan readItem
	free     chan []byte
	stopRead context.CancelFunc
	reader   sync.WaitGroup
	playing  playItem
	readErr  error
	maxUnit  int
	// closing is when the grace period after the source's close ends (0: open);
	// sent is the number of units the source said it sent.
	closing int64
	sent    uint64

	interval   time.Duration
	reports    chan Report
	violations chan Violation
	done       chan struct{}
	monitor    sync.WaitGroup
	closeOnce  sync.Once
	released   bool
}

// Stats counts what a sink received over the whole stream.
type Stats struct {
	// Units and Bytes handed out (Bytes on the wire, headers included).
	Units, Bytes uint64
	// Lost units: sequence numbers never seen below the highest seen, and after the
	// source's close those it said it sent and that never came (counting only the
	// units the contract's Every asks for).
	Lost uint64
	// Duplicates and Reordered units.
	Duplicates, Reordered uint64
	// Beyond counts units the policer found beyond the contract; Dropped those the
	// sink dropped (beyond the contract under PoliceDrop, or late under DropLate).
	Beyond, Dropped uint64
	// Late counts units that arrived, or were handed out, after the contract's
	// maximum delay.
	Late uint64
	// Unwanted counts units the contract's Every did not ask for (dropped).
	Unwanted uint64
}

// A Report is what a sink measured over one monitoring interval.
type Report struct {
	// Start and End bound the interval (Now nanoseconds).
	Start, End int64
	// Units and Bytes handed out; Rate in bytes per second.
	Units, Bytes uint64
	Rate         float64
	// DelayP50 and DelayP99 are of the end-to-end delay (send to release); JitterP99
	// of the change in delay between consecutive units.
	DelayP50, DelayP99, JitterP99 time.Duration
	// Counts within the interval, as in Stats.
	Lost, Late, Beyond, Dropped uint64
	// Violated says how the contract was broken in the interval, if it was: "rate"
	// (units beyond the contract), "late", "loss". Empty when kept.
	Violated []string
}

// A Violation is a breach of the contract, reported as soon as the sink sees it: the
// first unit beyond the contract in an interval ("rate"), the first late unit
// ("late"), or an interval whose loss exceeded MaxLoss ("loss").
type Violation struct {
	Kind string
	At   int64 // Now nanoseconds
	Seq  uint64
	Sub  uint32
	// Detail says what was measured against what was agreed.
	Detail string
}

type window struct {
	start              int64
	units, bytes       uint64
	lost, late, beyond uint64
	dropped            uint64
	delays, jitters    []int64
	flagged            map[string]bool
}

type sinkConfig struct {
	ahead    int
	adm      *Admission
	media    bool
	slack    time.Duration
	interval time.Duration
	logCap   int
	maxUnit  int
}

// A SinkOption configures Accept.
type SinkOption func(*sinkConfig)

// WithAdmission makes the sink decide offers with a: accept, counter-offer or refuse
// (without it the sink accepts every valid offer). The stream's rate is given back
// when it ends.
func WithAdmission(a *Admission) SinkOption { return func(c *sinkConfig) { c.adm = a } }

// ByMediaTime makes an isochronous sink play each unit out at the stream's epoch +
// its media time + MinDelay, instead of its send time + MinDelay: the sinks of a
// complex stream, whose sources share an epoch (WithEpoch), then play their units
// out in step, whatever path each took. A unit handed out more than slack after its
// play-out time is out of step with the other sub-streams: it counts as late (and is
// dropped under DropLate), as one after MaxDelay does. Sub-streams whose units are
// all in step are within slack of each other.
func ByMediaTime(slack time.Duration) SinkOption {
	return func(c *sinkConfig) { c.media, c.slack = true, slack }
}

// WithInterval sets the monitoring interval (default 100 ms).
func WithInterval(d time.Duration) SinkOption { return func(c *sinkConfig) { c.interval = d } }

// WithLog makes the sink keep the first n units it handed out (without payloads),
// for a checker to read: Log.
func WithLog(n int) SinkOption { return func(c *sinkConfig) { c.logCap = n } }

// WithMaxUnit sets the largest unit the sink can receive, header included (default
// 64 KiB + HeaderSize).
func WithMaxUnit(n int) SinkOption { return func(c *sinkConfig) { c.maxUnit = n } }

// WithReadAhead sets how many units the sink reads ahead of the one it hands out
// (default 32): the play-out buffer. An isochronous stream holds about rate ×
// MinDelay units in it; a sink whose buffer is full leaves the rest in the
// transport, and a full transport blocks the source.
func WithReadAhead(n int) SinkOption { return func(c *sinkConfig) { c.ahead = n } }

// Accept waits for a source's offer on conn, decides it, and returns the sink of
// the admitted stream. A refused offer (or a counter-offer the source turns down)
// is answered and Accept waits for the next offer, until ctx ends.
func Accept(ctx context.Context, conn Conn, opts ...SinkOption) (*Sink, error) {
	c := sinkConfig{interval: 100 * time.Millisecond, maxUnit: 64<<10 + HeaderSize, ahead: 32}
	for _, o := range opts {
		o(&c)
	}
	if c.interval <= 0 || c.logCap < 0 || c.slack < 0 || c.ahead < 1 || c.maxUnit < HeaderSize+controlSize || c.maxUnit > HeaderSize+MaxPayload {
		return nil, ipc.Wrap("accept", "stream", fmt.Errorf("%w: interval %v, log %d, slack %v, read-ahead %d, max unit %d", ipc.ErrInvalid, c.interval, c.logCap, c.slack, c.ahead, c.maxUnit))
	}
	s := &Sink{conn: conn, adm: c.adm, media: c.media, slack: c.slack, maxUnit: c.maxUnit, ctrl: make([]byte, HeaderSize+controlSize),
		queue: make(chan readItem, c.ahead), free: make(chan []byte, c.ahead+1),
		logCap: c.logCap, interval: c.interval,
		reports: make(chan Report, 64), violations: make(chan Violation, 64), done: make(chan struct{})}
	if c.logCap > 0 {
		// Before the answer: the source sends once it has it.
		s.log = make([]Unit, 0, c.logCap)
	}
	for {
		offer, err := recvControl(ctx, conn, s.ctrl, opOffer)
		if err != nil {
			return nil, wrapOp("accept", err)
		}
		spec, ok, err := s.decide(ctx, opOffer, FlowSpec{}, offer.spec)
		if err != nil {
			return nil, wrapOp("accept", err)
		}
		if ok {
			s.spec, s.epoch = spec, offer.value
			break
		}
	}
	now := Now()
	s.police = s.policer(now)
	s.cur = s.newWindow(now)
	for range c.ahead + 1 {
		s.free <- nil // allocated on first use
	}
	var rctx context.Context
	rctx, s.stopRead = context.WithCancel(context.Background())
	s.reader.Add(1)
	go s.read(rctx)
	s.monitor.Add(1)
	go s.run()
	return s, nil
}

// A readItem is one message the reader read, or the error that ended it.
type readItem struct {
	buf []byte
	n   int
	at  int64
	err error
}

// read reads messages ahead until the transport fails or ctx ends (Close).
func (s *Sink) read(ctx context.Context) {
	defer s.reader.Done()
	for {
		var b []byte
		select {
		case b = <-s.free:
		case <-ctx.Done():
			return
		}
		if b == nil {
			b = make([]byte, s.maxUnit)
		}
		n, err := s.conn.Recv(ctx, b)
		if ctx.Err() != nil {
			return // Close: what was read is not handed out
		}
		it := readItem{buf: b, n: n, at: Now(), err: err}
		select {
		case s.queue <- it:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

// next returns the next message read ahead, or io.EOF when the grace period
// after the source's close has ended.
func (s *Sink) next(ctx context.Context) (readItem, error) {
	select {
	case <-s.done:
		return readItem{}, ipc.Wrap("recv", "stream", os.ErrClosed)
	default:
	}
	if s.readErr != nil {
		return readItem{}, s.readErr
	}
	var grace <-chan time.Time
	if s.closing != 0 {
		if s.complete() {
			s.release()
			return readItem{}, io.EOF
		}
		// Closed, with units still missing: wait for stragglers until the grace
		// period ends; those that do not come are lost.
		t := time.NewTimer(time.Duration(s.closing - Now()))
		defer t.Stop()
		grace = t.C
	}
	select {
	case it := <-s.queue:
		if it.err == nil {
			return it, nil
		}
		switch {
		case s.closing != 0 && errors.Is(it.err, io.EOF):
			// The source's end of the transport closed after its close.
			s.endMissing()
			s.readErr = io.EOF
		case errors.Is(it.err, io.EOF):
			// The transport ended without the source's close: it died or
			// dropped the connection. The end is not a clean one.
			s.readErr = wrapOp("recv", fmt.Errorf("%w: the source went away without closing the stream", io.ErrUnexpectedEOF))
		default:
			s.readErr = wrapOp("recv", it.err)
		}
		return readItem{}, s.readErr
	case <-grace:
		s.endMissing()
		s.readErr = io.EOF
		return readItem{}, io.EOF
	case <-ctx.Done():
		return readItem{}, wrapOp("recv", ctx.Err())
	case <-s.done:
		return readItem{}, ipc.Wrap("recv", "stream", os.ErrClosed)
	}
}

// policer returns the token bucket the contract allows, widened by the tolerance.
func (s *Sink) policer(now int64) *TokenBucket {
	return NewTokenBucket(s.spec.Rate, s.spec.Depth+int(s.spec.Rate*s.spec.tolerance().Seconds()), now)
}

// decide answers an offer (or renegotiation, holding old) and settles a
// counter-offer; ok reports whether a contract was agreed.
func (s *Sink) decide(ctx context.Context, op byte, old, offer FlowSpec) (FlowSpec, bool, error) {
	d := Decision{Verdict: Grant, Spec: offer}
	if s.adm != nil {
		if op == opRenegotiate {
			d = s.adm.Renegotiate(old, offer) // grant or refuse: see Admission.Renegotiate
		} else {
			d = s.adm.Decide(offer)
		}
	}
	// giveBack undoes the reservation when the answer cannot be settled: the
	// stream is then broken, and holds nothing (for a renegotiation, the old rate
	// was already given back).
	giveBack := func(err error) (FlowSpec, bool, error) {
		if s.adm != nil && d.Verdict != Refuse {
			s.adm.Release("cancel", d.Spec)
			if op == opRenegotiate {
				s.mu.Lock()
				s.released = true
				s.mu.Unlock()
			}
		}
		return FlowSpec{}, false, err
	}
	switch d.Verdict {
	case Grant:
		if err := sendControl(ctx, s.conn, s.ctrl, control{op: opAccept, spec: d.Spec}); err != nil {
			return giveBack(err)
		}
		return d.Spec, true, nil
	case Counter: // offers only, before the stream runs: nothing else reads conn
		if err := sendControl(ctx, s.conn, s.ctrl, control{op: opCounter, spec: d.Spec}); err != nil {
			return giveBack(err)
		}
		ans, err := recvControl(ctx, s.conn, s.ctrl, opConfirm, opCancel)
		if err != nil {
			return giveBack(err)
		}
		if ans.op == opConfirm {
			return d.Spec, true, nil
		}
		s.adm.Release("cancel", d.Spec)
		return FlowSpec{}, false, nil
	}
	return FlowSpec{}, false, sendControl(ctx, s.conn, s.ctrl, control{op: opRefuse})
}

// Spec returns the contract in force.
func (s *Sink) Spec() FlowSpec {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spec
}

// Epoch returns the stream's media epoch, as the source gave it.
func (s *Sink) Epoch() int64 { return s.epoch }

// Stats returns the counts over the whole stream so far.
func (s *Sink) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Log returns a copy of the units logged (WithLog).
func (s *Sink) Log() []Unit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// Reports delivers a Report at the end of every monitoring interval. Reports the
// reader does not take in time are dropped (the channel holds 64). It is closed by
// Close.
func (s *Sink) Reports() <-chan Report { return s.reports }

// Violations delivers breaches of the contract as they are seen (at most one of
// each kind per interval). It is closed by Close.
func (s *Sink) Violations() <-chan Violation { return s.violations }

// Recv returns the next unit to play out, its payload copied into buf: at once in
// Async and Sync mode, and in Isochronous mode when its play-out time comes. Units
// beyond the contract under PoliceDrop, late units under DropLate and units the
// contract's Every does not ask for are dropped and counted, not returned. At the
// end of the stream Recv returns io.EOF. If buf is too short for the payload, Recv
// returns an error matching ipc.ErrInvalid and keeps the unit for the next call.
// After the source's Close, Recv hands out the units still on their way (a path
// that reorders may deliver some after the close) and returns io.EOF once all have
// come or the larger of MaxDelay and 100 ms has passed; those that did not come
// are counted lost.
func (s *Sink) Recv(ctx context.Context, buf []byte) (Unit, error) {
	for {
		if s.playing.buf == nil {
			it, err := s.next(ctx)
			if err != nil {
				return Unit{}, err
			}
			if err := s.take(ctx, it, buf); err != nil {
				return Unit{}, err
			}
			if s.playing.buf == nil {
				continue // a control message, or a unit dropped
			}
		}
		if len(buf) < s.playing.u.Len {
			return Unit{}, ipc.Wrap("recv", "stream", fmt.Errorf("%w: buffer of %d bytes for a payload of %d; the unit is kept", ipc.ErrInvalid, len(buf), s.playing.u.Len))
		}
		u, ok, err := s.play(ctx, buf)
		if err != nil || ok {
			return u, err
		}
	}
}

// A playItem is a data unit admitted and waiting to be handed out.
type playItem struct {
	readItem
	u Unit
	h header
}

// take handles one message read ahead: a control message, or a data unit that it
// checks, polices and (unless dropped) makes s.playing.
func (s *Sink) take(ctx context.Context, it readItem, buf []byte) error {
	b, n := it.buf, it.n
	keep := false
	defer func() {
		if !keep {
			s.free <- b
		}
	}()
	var h header
	if err := h.parse(b[:n]); err != nil {
		return wrapOp("recv", err)
	}
	if int(h.len) != n-HeaderSize {
		return wrapOp("recv", fmt.Errorf("%w: unit declares %d payload bytes, carries %d", ErrProtocol, h.len, n-HeaderSize))
	}
	if h.kind == kindControl {
		return s.control(ctx, b[HeaderSize:n], it.at)
	}
	u, ok, err := s.admit(&h, n, it.at)
	if err != nil {
		return wrapOp("recv", err)
	}
	if ok {
		s.playing, keep = playItem{readItem: it, u: u, h: h}, true
	}
	return nil
}

// play hands s.playing out when its play-out time comes (at once but in
// Isochronous mode): ok is false if it was dropped. If ctx ends first, the unit
// stays for the next call.
func (s *Sink) play(ctx context.Context, buf []byte) (Unit, bool, error) {
	p := &s.playing
	if s.spec.Mode == Isochronous && !p.u.Late {
		if err := s.sleep.until(ctx, s.done, s.playAt(&p.h)); err != nil {
			return Unit{}, false, wrapOp("recv", err)
		}
	}
	u := p.u
	u.Released = Now()
	ok := s.handedOut(&u, &p.h, p.n)
	if ok {
		copy(buf, p.buf[HeaderSize:p.n])
	}
	s.free <- p.buf
	s.playing = playItem{}
	return u, ok, nil
}

// playAt is when an isochronous unit is due: MinDelay after its send time, or in a
// complex stream after its media time.
func (s *Sink) playAt(h *header) int64 {
	if s.media {
		return s.epoch + h.pts + int64(s.spec.MinDelay)
	}
	return h.sent + int64(s.spec.MinDelay)
}

// complete reports whether every unit the source sent has been seen or counted
// lost for good: the last one has arrived and no hole below it is left.
func (s *Sink) complete() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.top >= s.sent && s.total.Lost == 0
}

// wantedBelow is how many sequence numbers below x the contract's every wants:
// the multiples of every in [0, x).
func wantedBelow(x, every uint64) uint64 { return x/every + min(x%every, 1) }

// endMissing ends a closed stream whose last units did not come: they are lost.
func (s *Sink) endMissing() {
	s.mu.Lock()
	if every := uint64(s.spec.every()); s.sent > s.top {
		miss := wantedBelow(s.sent, every) - wantedBelow(s.top, every)
		s.total.Lost += miss
		s.cur.lost += miss
	}
	s.mu.Unlock()
	s.release()
}

// due is the latest a unit may be handed out: MaxDelay after its reference, and in
// a complex stream no more than the slack after its play-out time.
func (s *Sink) due(h *header) int64 {
	if s.media {
		return s.epoch + h.pts + min(int64(s.spec.MaxDelay), int64(s.spec.MinDelay+s.slack))
	}
	return h.sent + int64(s.spec.MaxDelay)
}

// control handles a control message in the middle of the stream.
func (s *Sink) control(ctx context.Context, p []byte, at int64) error {
	c, err := parseControl(p)
	if err != nil {
		return wrapOp("recv", err)
	}
	switch c.op {
	case opClose:
		if s.closing == 0 {
			grace := max(s.spec.MaxDelay, 100*time.Millisecond)
			s.closing, s.sent = Now()+int64(grace), uint64(c.value)
		}
		return nil
	case opRenegotiate:
		old := s.Spec()
		spec, ok, err := s.decide(ctx, opRenegotiate, old, c.spec)
		if err != nil {
			return wrapOp("renegotiate", err)
		}
		if ok {
			s.mu.Lock()
			s.spec = spec
			s.police = s.policer(at) // from the moment the renegotiation came
			s.mu.Unlock()
		}
		return nil
	}
	return wrapOp("recv", fmt.Errorf("%w: %s in the middle of a stream", ErrProtocol, opName(c.op)))
}

// admit accounts for a data unit that arrived, polices it and checks its delay; ok
// is false if the unit is dropped.
func (s *Sink) admit(h *header, n int, arrived int64) (Unit, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := Unit{Sub: h.sub, Seq: h.seq, PTS: h.pts, Sent: h.sent, Arrived: arrived, Len: int(h.len)}
	// Times from the future: the clock is the machine's, so a unit cannot have
	// been sent after it arrived, nor be due later than MaxDelay from now (it would
	// hold the play-out back).
	if h.sent > arrived+int64(time.Millisecond) {
		return u, false, fmt.Errorf("%w: unit %d sent %v after it arrived", ErrProtocol, h.seq, time.Duration(h.sent-arrived))
	}
	if s.spec.Mode == Isochronous && s.playAt(h) > arrived+int64(s.spec.MaxDelay) {
		return u, false, fmt.Errorf("%w: unit %d due %v from its arrival, beyond the maximum delay", ErrProtocol, h.seq, time.Duration(s.playAt(h)-arrived))
	}
	every := uint64(s.spec.every())
	if h.seq%every != 0 {
		s.total.Unwanted++
		return u, false, nil
	}
	// One sub-stream per stream: another is a peer's mistake (and each would cost
	// the sink a sequence window).
	if !s.hasSub {
		s.sub, s.hasSub = h.sub, true
	} else if h.sub != s.sub {
		return u, false, fmt.Errorf("%w: unit of sub-stream %d in a stream of sub-stream %d", ErrProtocol, h.sub, s.sub)
	}
	// Sequence: duplicates, reordering, loss (counted as the wanted numbers skipped
	// below the highest seen).
	if !s.seen.add(h.seq) {
		s.total.Duplicates++
		return u, false, nil
	}
	if h.seq >= s.top {
		miss := wantedBelow(h.seq, every) - wantedBelow(s.top, every)
		s.total.Lost += miss
		s.cur.lost += miss
		s.top = h.seq + 1
	} else { // a hole filled late: it was counted lost
		s.total.Reordered++
		if s.total.Lost > 0 {
			s.total.Lost--
		}
		if s.cur.lost > 0 {
			s.cur.lost--
		}
	}
	// Policing.
	if !s.police.Take(n+s.spec.Overhead, arrived) {
		s.total.Beyond++
		s.cur.beyond++
		s.flag("rate", u, fmt.Sprintf("unit %d beyond the contract (%.0f bytes/s, depth %d, tolerance %v)", h.seq, s.spec.Rate, s.spec.Depth, s.spec.tolerance()))
		switch s.spec.Police {
		case PoliceDrop:
			s.total.Dropped++
			s.cur.dropped++
			return u, false, nil
		case PoliceMark:
			u.Marked = true
		}
	}
	// Delay.
	if s.spec.Mode != Async {
		due := s.due(h)
		if arrived > due {
			u.Late = true
			s.total.Late++
			s.cur.late++
			s.flag("late", u, fmt.Sprintf("unit %d arrived %v after its due time", h.seq, time.Duration(arrived-due)))
			if s.spec.DropLate {
				s.total.Dropped++
				s.cur.dropped++
				return u, false, nil
			}
		}
	}
	return u, true, nil
}

// handedOut records a unit handed out. A unit that arrived in time but is handed
// out after its due time (the sink itself was late: descheduled, or slow to come
// back to Recv) is late too.
// It reports false if the unit is dropped instead (late, under DropLate).
func (s *Sink) handedOut(u *Unit, h *header, n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.spec.Mode != Async && !u.Late && u.Released > s.due(h) {
		u.Late = true
		s.total.Late++
		s.cur.late++
		s.flag("late", *u, fmt.Sprintf("unit %d handed out %v after its due time", h.seq, time.Duration(u.Released-s.due(h))))
		if s.spec.DropLate {
			s.total.Dropped++
			s.cur.dropped++
			return false
		}
	}
	s.total.Units++
	s.total.Bytes += uint64(n)
	s.cur.units++
	s.cur.bytes += uint64(n)
	d := u.Delay()
	s.cur.delays = append(s.cur.delays, d)
	if s.hasPrev {
		j := d - s.prevDel
		if j < 0 {
			j = -j
		}
		s.cur.jitters = append(s.cur.jitters, j)
	}
	s.prevDel, s.hasPrev = d, true
	if len(s.log) < s.logCap {
		s.log = append(s.log, *u)
	}
	return true
}

// flag reports a violation of kind once per interval; s.mu is held.
func (s *Sink) flag(kind string, u Unit, detail string) {
	if s.closed || s.cur.flagged[kind] {
		return
	}
	s.cur.flagged[kind] = true
	select {
	case s.violations <- Violation{Kind: kind, At: Now(), Seq: u.Seq, Sub: u.Sub, Detail: detail}:
	default:
	}
}

func (s *Sink) newWindow(now int64) window {
	return window{start: now, flagged: map[string]bool{}, delays: s.cur.delays[:0], jitters: s.cur.jitters[:0]}
}

// run ends an interval every s.interval and reports it.
func (s *Sink) run() {
	defer s.monitor.Done()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			s.endInterval()
		}
	}
}

func (s *Sink) endInterval() {
	s.mu.Lock()
	now := Now()
	w := &s.cur
	r := Report{Start: w.start, End: now, Units: w.units, Bytes: w.bytes, Lost: w.lost, Late: w.late, Beyond: w.beyond, Dropped: w.dropped}
	if span := now - w.start; span > 0 {
		r.Rate = float64(w.bytes) / (float64(span) / 1e9)
	}
	r.DelayP50, r.DelayP99 = quantile(w.delays, 0.5), quantile(w.delays, 0.99)
	r.JitterP99 = quantile(w.jitters, 0.99)
	if w.beyond > 0 {
		r.Violated = append(r.Violated, "rate")
	}
	if w.late > 0 {
		r.Violated = append(r.Violated, "late")
	}
	if expected := w.units + w.dropped + w.lost; expected > 0 && float64(w.lost)/float64(expected) > s.spec.MaxLoss {
		r.Violated = append(r.Violated, "loss")
		s.flag("loss", Unit{}, fmt.Sprintf("%d of %d units lost in the interval, more than %.2g", w.lost, expected, s.spec.MaxLoss))
	}
	s.cur = s.newWindow(now)
	s.mu.Unlock()
	select {
	case s.reports <- r:
	default:
	}
}

// quantile returns the q-quantile of v (sorting it in place), 0 for none.
func quantile(v []int64, q float64) time.Duration {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	i := int(q * float64(len(v)-1))
	return time.Duration(v[i])
}

// release gives the stream's rate back to the admission controller, once.
func (s *Sink) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.adm != nil && !s.released {
		s.released = true
		s.adm.Release("release", s.spec)
	}
}

// Close stops the monitor, closes Reports and Violations, and gives the stream's
// rate back to the admission controller. It does not close the Conn. Close is
// idempotent.
func (s *Sink) Close() error {
	s.closeOnce.Do(func() {
		if s.stopRead != nil {
			s.stopRead()
			s.reader.Wait()
		}
		close(s.done)
		s.monitor.Wait()
		s.mu.Lock()
		w := &s.cur
		last := w.units+w.lost+w.late+w.beyond+w.dropped > 0
		s.mu.Unlock()
		if last {
			s.endInterval() // the last, partial interval
		}
		s.release()
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.reports)
		close(s.violations)
	})
	return nil
}

// seqSet remembers which sequence numbers were seen, compactly: every number below
// base was seen (or is too old to matter), and bits holds the ones above it, within
// a window of seqWindow numbers.
type seqSet struct {
	base uint64
	bits []uint64
}

// seqWindow is how many sequence numbers a seqSet tells apart above its base: a
// number further back than this behind the newest is taken as seen (a duplicate).
const seqWindow = 1 << 20

// add records seq and reports whether it was new.
func (q *seqSet) add(seq uint64) bool {
	if seq < q.base {
		return false
	}
	if off := seq - q.base; off >= seqWindow {
		// Slide the window so that seq is in its last word: forget what falls out
		// (at most the whole window: a peer that jumps far ahead costs one clear,
		// not a loop over the gap).
		shift := (off - seqWindow + 64) / 64 // words
		if shift >= uint64(len(q.bits)) {
			q.bits = q.bits[:0]
		} else {
			q.bits = q.bits[shift:]
		}
		q.base += shift * 64
	}
	off := seq - q.base
	for off >= uint64(len(q.bits))*64 {
		q.bits = append(q.bits, 0)
	}
	w, b := off/64, off%64
	if q.bits[w]&(1<<b) != 0 {
		return false
	}
	q.bits[w] |= 1 << b
	for len(q.bits) > 0 && q.bits[0] == ^uint64(0) {
		q.base += 64
		q.bits = q.bits[1:]
	}
	return true
}
