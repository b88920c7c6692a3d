package bench

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"time"
	"unsafe"

	"github.com/ipclab/ipclab/cmd/ipcbench/internal/report"
	"github.com/ipclab/ipclab/ipc/stream"
)

// ScenarioQoS: a stream with quality of service (package ipc/stream) from the peer,
// the source, to the parent, the sink. The source offers a contract (a token bucket
// of QoSConfig.UnitsPerSec units a second and QoSConfig.DepthUnits units of depth,
// isochronous play-out between QoSConfig.MinDelay and MaxDelay after sending) and
// then sends a bursty on/off workload whose bursts offer ten times the contract
// (qosSchedule), shaped by its token bucket. The sink logs every unit and reports on
// every 100 ms; the result carries a report.QoS. The payload is Size bytes (each unit
// carries a stream.HeaderSize header besides). The stream lasts Duration, or sends
// Iters units when Iters is set; there is no warm-up. Only the ipclab implementation
// runs it, in one wait strategy (the transport's first unless Config.Waits names
// others).
const ScenarioQoS = report.ScenarioQoS

// Defaults of ScenarioQoS.
const (
	// QoSDefaultSize is the payload ipcbench run uses in scenario qos unless --size
	// is given.
	QoSDefaultSize  = 256
	qosDefaultRate  = 1000 // units per second
	qosDefaultDepth = 8    // units
	qosDefaultMin   = 5 * time.Millisecond
	qosDefaultMax   = 20 * time.Millisecond
	qosDefaultSeed  = 1
	// qosPeak is the rate of the workload's bursts, in multiples of the contract.
	qosPeak = 10
	// qosInterval is the sink's monitoring interval: the series' step.
	qosInterval = 100 * time.Millisecond
	// qosIdle is how long the sink waits for a unit, once the stream has started,
	// before it takes the stream as ended without its close (which a datagram
	// transport may drop). The workload's pauses last at most 160 ms.
	qosIdle = 3 * time.Second
)

// QoSConfig parameterises ScenarioQoS; zero fields take the defaults.
type QoSConfig struct {
	// UnitsPerSec is the contract's token rate in units a second (default 1000);
	// the bucket counts wire bytes, so the rate is UnitsPerSec × (size + header).
	UnitsPerSec float64
	// DepthUnits is the bucket's depth in units (default 8).
	DepthUnits int
	// MinDelay and MaxDelay bound the play-out delay (default 5 ms and 20 ms).
	MinDelay, MaxDelay time.Duration
	// Seed draws the workload (default 1): one seed, one sequence of offers.
	Seed uint64
}

// withDefaults fills the zero fields.
func (q QoSConfig) withDefaults() QoSConfig {
	if q.UnitsPerSec == 0 {
		q.UnitsPerSec = qosDefaultRate
	}
	if q.DepthUnits == 0 {
		q.DepthUnits = qosDefaultDepth
	}
	if q.MinDelay == 0 && q.MaxDelay == 0 {
		q.MinDelay, q.MaxDelay = qosDefaultMin, qosDefaultMax
	}
	if q.Seed == 0 {
		q.Seed = qosDefaultSeed
	}
	return q
}

func (q QoSConfig) validate() error {
	q = q.withDefaults()
	switch {
	case !(q.UnitsPerSec > 0) || q.UnitsPerSec > 1e7:
		return fmt.Errorf("qos: %v units per second, want more than 0 and at most 10 million", q.UnitsPerSec)
	case q.DepthUnits < 1:
		return fmt.Errorf("qos: depth of %d units, want at least 1", q.DepthUnits)
	case q.MinDelay < 0 || q.MaxDelay <= q.MinDelay:
		return fmt.Errorf("qos: play-out delays %v to %v, want 0 ≤ minimum < maximum", q.MinDelay, q.MaxDelay)
	}
	return nil
}

// qosPeer is what the peer needs to be the source of one case's streams.
type qosPeer struct {
	Config   QoSConfig     `json:"config"` // defaults filled
	Duration time.Duration `json:"duration"`
	Units    int           `json:"units"` // 0: for Duration
}

func newQoSPeer(cfg Config) *qosPeer {
	return &qosPeer{Config: cfg.QoS.withDefaults(), Duration: cfg.Duration, Units: cfg.Iters}
}

// spec returns the contract the source offers for units of size payload bytes.
func (q *qosPeer) spec(size int) stream.FlowSpec {
	c := q.Config
	return stream.FlowSpec{
		Rate: stream.RateFor(c.UnitsPerSec, size), Depth: c.DepthUnits * stream.WireSize(size),
		Mode: stream.Isochronous, MinDelay: c.MinDelay, MaxDelay: c.MaxDelay,
	}
}

// schedule returns when the source offers each unit (qosSchedule).
func (q *qosPeer) schedule() []time.Duration {
	return qosSchedule(q.Config.Seed, q.Config.UnitsPerSec, q.Duration, q.Units)
}

// qosWorkload describes qosSchedule for people.
const qosWorkload = "on/off: bursts of 2-18 ms at 10× the contract, pauses of 40-160 ms"

// qosSchedule returns the times at which the source offers its units, as offsets from
// the stream's start: bursts in which it offers a unit every 1/(10 × unitsPerSec) s
// for a time drawn uniformly from 2 to 18 ms, each followed by a pause drawn from 40
// to 160 ms, starting with a burst. On average it offers 10 × 10/110 = 0.91 times the
// contract, in bursts ten times over it: the shaper holds each burst back to its depth
// and then to its rate. The draws come from a PCG seeded with seed, so a seed always
// gives the same offers. With units > 0 the schedule has that many offers; otherwise
// it has every offer before d.
func qosSchedule(seed uint64, unitsPerSec float64, d time.Duration, units int) []time.Duration {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	gap := time.Duration(float64(time.Second) / (qosPeak * unitsPerSec))
	gap = max(gap, 1)
	done := func(n int, t time.Duration) bool {
		if units > 0 {
			return n >= units
		}
		return t >= d
	}
	var out []time.Duration
	if units > 0 {
		out = make([]time.Duration, 0, units)
	} else {
		out = make([]time.Duration, 0, int(0.95*unitsPerSec*d.Seconds())+16)
	}
	var t time.Duration
	for !done(len(out), t) {
		burstEnd := t + time.Duration((2+16*rng.Float64())*float64(time.Millisecond))
		for ; t < burstEnd && !done(len(out), t); t += gap {
			out = append(out, t)
		}
		t = burstEnd + time.Duration((40+120*rng.Float64())*float64(time.Millisecond))
	}
	return out
}

// offeredRate is the schedule's mean offered rate in units per second: its units over
// the time it covers (Duration, or up to its last offer).
func offeredRate(sched []time.Duration, d time.Duration, units int) float64 {
	span := d
	if units > 0 && len(sched) > 1 {
		span = sched[len(sched)-1]
	}
	if span <= 0 {
		return 0
	}
	return float64(len(sched)) / span.Seconds()
}

// qosTimeout is the time a stream of cfg.Iters units may take beyond defaultTimeout,
// which covers a stream of cfg.Duration: five times the longest it could take, its
// offers spread at 0.91 of the contract and the shaper's backlog at their end.
func qosTimeout(cfg Config) time.Duration {
	if cfg.Iters <= 0 {
		return 0
	}
	q := cfg.QoS.withDefaults()
	return time.Duration(5 * 2.2 * float64(cfg.Iters) / q.UnitsPerSec * float64(time.Second))
}

// qosMemory is the memory a stream of cfg holds besides its buffers: the sink's log
// of every unit and the schedule, in both processes.
func qosMemory(cfg Config) float64 {
	q := cfg.QoS.withDefaults()
	units := float64(cfg.Iters)
	if cfg.Iters <= 0 {
		units = q.UnitsPerSec * cfg.Duration.Seconds()
	}
	const perUnit = 2*unsafe.Sizeof(stream.Unit{}) + 2*8 // the log, and a copy sorted by sequence; the offsets
	return units * float64(perUnit)
}

// qosConnector is implemented by endpoints that can carry a stream: it returns the
// endpoint as a stream.Conn, one message per unit.
type qosConnector interface {
	qosConn() stream.Conn
}

func (e *streamEndpoint) qosConn() stream.Conn { return stream.Framed(e.r, e.w) }

func (e *sockEP) qosConn() stream.Conn {
	switch {
	case e.stream != nil:
		return stream.Framed(e.stream, e.stream)
	case e.seq != nil:
		return e.seq
	}
	return e.dgram
}

func (e *ringEndpoint) qosConn() stream.Conn { return stream.Duplex(e.send, e.recv) }

func connOf(ep Endpoint) (stream.Conn, error) {
	qc, ok := ep.(qosConnector)
	if !ok {
		return nil, fmt.Errorf("%T cannot carry a stream", ep)
	}
	return qc.qosConn(), nil
}

// qosSizeCut says why t cannot carry units of size payload bytes, or nil.
func qosSizeCut(t Transport, size int) error {
	if size > stream.MaxPayload {
		return fmt.Errorf("%s exceeds the largest payload of a stream unit, %d", FormatSize(size), stream.MaxPayload)
	}
	if m := t.MaxSize(); m > 0 && stream.WireSize(size) > m {
		return fmt.Errorf("a unit of %s with its %d-byte header: %w", FormatSize(size), stream.HeaderSize, sizeCut(t, stream.WireSize(size), m))
	}
	return nil
}

// measureQoS runs one stream of ScenarioQoS: the peer is its source, this process
// its sink. It fills out with the units' delays (as its histogram and RTT), its
// throughput and its report.QoS.
func measureQoS(ctx context.Context, cfg Config, p Params, ep Endpoint, ctrl *os.File, out *tracedResult) error {
	conn, err := connOf(ep)
	if err != nil {
		return err
	}
	q := newQoSPeer(cfg)
	spec := q.spec(p.Size)
	sched := q.schedule()
	var hdr [8]byte
	binary.LittleEndian.PutUint64(hdr[:], 1) // one stream
	if _, err := ctrl.Write(hdr[:]); err != nil {
		return err
	}
	maxUnit := min(max(stream.WireSize(p.Size), 64<<10+stream.HeaderSize), stream.WireSize(stream.MaxPayload))
	sink, err := stream.Accept(ctx, conn, stream.WithLog(len(sched)+16), stream.WithMaxUnit(maxUnit), stream.WithInterval(qosInterval))
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	defer sink.Close()
	if got := sink.Spec(); got.Rate != spec.Rate || got.Depth != spec.Depth || got.Mode != spec.Mode {
		return fmt.Errorf("accept: the source offered %+v, want %+v", got, spec)
	}
	var reports []stream.Report
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for r := range sink.Reports() {
			reports = append(reports, r)
		}
	}()
	buf := make([]byte, p.Size)
	for {
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if sink.Stats().Units > 0 {
			rctx, cancel = context.WithTimeout(ctx, qosIdle)
		}
		_, err := sink.Recv(rctx, buf)
		cancel()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				fmt.Fprintf(progress(cfg), "(no unit for %v and no close: the stream is taken as ended) ", qosIdle)
				break
			}
			return fmt.Errorf("receive: %w", err)
		}
	}
	stats := sink.Stats()
	log := sink.Log()
	sink.Close()
	<-collected
	if len(log) == 0 {
		return errors.New("the stream ended without a unit")
	}
	res := qosResult(q, spec, sched, log, stats, reports)
	for _, u := range log {
		out.hist.Record(time.Duration(u.Delay()))
	}
	first, last := log[0].Sent, log[0].Released
	for _, u := range log {
		first, last = min(first, u.Sent), max(last, u.Released)
	}
	out.elapsed = time.Duration(last - first)
	out.QoS = res
	out.finish(len(log))
	return nil
}

// qosResult sums up one stream from its sink's log, counts and reports.
func qosResult(q *qosPeer, spec stream.FlowSpec, sched []time.Duration, log []stream.Unit, stats stream.Stats, reports []stream.Report) *report.QoS {
	unit := stream.WireSize(log[0].Len)
	res := &report.QoS{
		Mode: spec.Mode.String(), UnitBytes: unit, ContractRate: spec.Rate, Depth: spec.Depth,
		MinDelayNs: float64(spec.MinDelay), MaxDelayNs: float64(spec.MaxDelay),
		Workload: qosWorkload, PeakRate: qosPeak * spec.Rate, Seed: q.Config.Seed, Rounds: 1,
		OfferedRate: offeredRate(sched, q.Duration, q.Units) * float64(unit),
		Sent:        len(sched), Received: len(log), Late: int(stats.Late), Beyond: int(stats.Beyond),
		IntervalNs: float64(qosInterval),
	}
	res.Lost = max(res.Sent-res.Received, 0)
	// Send times in the order sent (a datagram transport could reorder arrivals).
	bySeq := slices.Clone(log)
	slices.SortFunc(bySeq, func(a, b stream.Unit) int { return cmp.Compare(a.Seq, b.Seq) })
	times, sizes := make([]int64, len(bySeq)), make([]int, len(bySeq))
	for i, u := range bySeq {
		times[i], sizes[i] = u.Sent, stream.WireSize(u.Len)+spec.Overhead
	}
	res.SpanNs = float64(times[len(times)-1] - times[0])
	res.LongRunRate = stream.LongRunRate(times, sizes)
	res.RateRatio = res.LongRunRate / spec.Rate
	res.MaxBurst = stream.MaxBurst(times, sizes, spec.Rate)
	res.BucketBreaches = len(stream.CheckBucket(times, sizes, spec.Rate, spec.Depth))
	res.PlayoutBreaches = len(stream.CheckIsochronous(log, spec.MinDelay, spec.MaxDelay, false, 0))
	res.DelayP50Ns, res.DelayP99Ns = float64(stream.Delay(log, 0.5)), float64(stream.Delay(log, 0.99))
	res.JitterP99Ns = float64(stream.Jitter(log, 0.99))
	res.Series = qosSeries(reports, times[0], log)
	return res
}

// qosSeries turns the sink's reports into a time series from the first unit sent
// (start) to the last one played out: reports that end before the stream started or
// begin after its last unit are left out. The units played out after the last
// report (the sink stops reporting when the stream ends) make a last interval of
// their own, computed from the log: one interval long (or up to the last unit, if
// that is later), the interval in which the stream ended.
func qosSeries(reports []stream.Report, start int64, log []stream.Unit) []report.QoSPoint {
	var end int64
	for _, u := range log {
		end = max(end, u.Released)
	}
	out := []report.QoSPoint{}
	from := start
	for _, r := range reports {
		if r.End <= start || r.Start > end {
			continue
		}
		out = append(out, report.QoSPoint{
			TS: float64(r.End-start) / 1e9, Units: int(r.Units), Rate: r.Rate,
			DelayP50Ns: float64(r.DelayP50), DelayP99Ns: float64(r.DelayP99),
			Late: int(r.Late), Lost: int(r.Lost),
		})
		from = max(from, r.End)
	}
	var tail []stream.Unit
	var bytes int
	late := 0
	for _, u := range log {
		if u.Released > from {
			tail = append(tail, u)
			bytes += stream.WireSize(u.Len)
			if u.Late {
				late++
			}
		}
	}
	if len(tail) > 0 {
		span := max(int64(qosInterval), end-from)
		out = append(out, report.QoSPoint{TS: float64(from+span-start) / 1e9, Units: len(tail),
			Rate:       float64(bytes) / (float64(span) / 1e9),
			DelayP50Ns: float64(stream.Delay(tail, 0.5)), DelayP99Ns: float64(stream.Delay(tail, 0.99)), Late: late})
	}
	return out
}

// mergeQoS adds round b's stream to a's (see report.QoS.Rounds); m is the merged
// result's delay distribution.
func mergeQoS(a, b *report.QoS, m report.Latency) {
	if a == nil || b == nil {
		return
	}
	if span := a.SpanNs + b.SpanNs; span > 0 {
		a.LongRunRate = (a.LongRunRate*a.SpanNs + b.LongRunRate*b.SpanNs) / span
	}
	a.SpanNs += b.SpanNs
	a.RateRatio = a.LongRunRate / a.ContractRate
	a.Rounds = max(a.Rounds, 1) + max(b.Rounds, 1)
	a.Sent += b.Sent
	a.Received += b.Received
	a.Lost += b.Lost
	a.Late += b.Late
	a.Beyond += b.Beyond
	a.BucketBreaches += b.BucketBreaches
	a.PlayoutBreaches += b.PlayoutBreaches
	a.MaxBurst = max(a.MaxBurst, b.MaxBurst)
	a.JitterP99Ns = max(a.JitterP99Ns, b.JitterP99Ns)
	a.DelayP50Ns, a.DelayP99Ns = m.P50, m.P99
}

// runQoSSource is the peer's side of one stream of ScenarioQoS: it offers the
// contract, sends the schedule's units as they are offered (shaped by the source's
// token bucket) and closes the stream.
func runQoSSource(q *qosPeer, p Params, ep Endpoint) error {
	if q == nil {
		return errors.New("qos: no stream parameters from the parent")
	}
	conn, err := connOf(ep)
	if err != nil {
		return err
	}
	ctx := context.Background()
	src, err := stream.Open(ctx, conn, q.spec(p.Size))
	if err != nil {
		return fmt.Errorf("open the stream: %w", err)
	}
	payload := make([]byte, p.Size)
	for i := range payload {
		payload[i] = byte(i)
	}
	start := time.Now()
	for _, at := range q.schedule() {
		if d := time.Until(start.Add(at)); d > 0 {
			time.Sleep(d)
		}
		if err := src.Send(ctx, payload, at); err != nil {
			return fmt.Errorf("send: %w", err)
		}
	}
	return src.Close()
}
