package stream_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/internal/threads"
	"github.com/ipclab/ipclab/ipc/pipe"
	"github.com/ipclab/ipclab/ipc/stream"
	"github.com/ipclab/ipclab/ipc/sysv"
	"github.com/ipclab/ipclab/sockets"
)

// A workload is what the source helper sends: the contract it offers and a
// schedule of units.
type workload struct {
	Spec    stream.FlowSpec
	Kind    string // "steady", "burst" (on/off at Peak × the contract) or "cheat"
	Payload int
	// UnitsPerSec is the schedule's rate (steady, cheat, and burst's peak / Peak).
	UnitsPerSec float64
	Peak        float64 // burst: the on-periods' rate as a multiple of UnitsPerSec
	Duty        float64 // burst: the mean fraction of time on
	Units       int     // how many units (steady, burst) or before cheating (cheat)
	Seed        uint64
	Epoch       int64  // media epoch; 0: Now at Open
	Sub         uint32 // sub-stream id
	// CheatFactor is the multiple of the contract a cheating source sends at, for
	// CheatUnits units, unshaped (payload[0] = 1 marks them).
	CheatFactor float64
	CheatUnits  int
	Unshaped    bool
	// Faults are injected on the first FaultUnits data units (seeded); the rest
	// pass unharmed, so that the sink can tell every loss.
	Faults     *ipctest.Faults
	FaultUnits int
	// RenegotiateAt is the unit before which the source renegotiates to
	// RenegotiateRate (payload[0] = 2 marks the units after); 0: never.
	RenegotiateAt   int
	RenegotiateRate float64
	// Every2 > 0 makes a Fanout over two seqpacket branches (File(1), File(2)), the
	// second with Every = Every2 and the rate divided by it.
	Every2 int
	// Pin makes the source pin itself to CPU.
	Pin bool
	CPU int
}

// sourceResult is what the source helper reports on its result pipe.
type sourceResult struct {
	Stats      stream.SourceStats
	Spec       stream.FlowSpec
	Faults     ipctest.FaultStats
	CheatStart int64
	// Renegotiated is the contract agreed by the renegotiation.
	Renegotiated stream.FlowSpec
	Err          string
}

// The source helper: File(0) is the result pipe; the transport is args[0]:
// "seqpacket" (File(1)), "pipes" (File(1) to read, File(2) to write) or
// "udp:ADDR"; args[1] is the workload as JSON.
var helperSource = ipctest.Helper("stream-source", func(args []string) int {
	res := runSource(args)
	if err := json.NewEncoder(ipctest.File(0)).Encode(res); err != nil {
		return 1
	}
	return 0
})

func runSource(args []string) (res sourceResult) {
	fail := func(err error) sourceResult { res.Err = err.Error(); return res }
	var w workload
	if err := json.Unmarshal([]byte(args[1]), &w); err != nil {
		return fail(err)
	}
	if w.Pin {
		if _, err := threads.Pin(w.CPU); err != nil {
			return fail(err)
		}
	}
	raisePriority() // best effort: see raisePriority
	ctx := context.Background()
	conn, err := helperConn(ctx, args[0])
	if err != nil {
		return fail(err)
	}
	var inj *ipctest.Injector
	if w.Faults != nil {
		if inj, err = ipctest.NewInjector(*w.Faults); err != nil {
			return fail(err)
		}
		conn = &faultConn{Conn: conn, inj: inj, left: w.FaultUnits}
	}
	opts := []stream.SourceOption{stream.WithSub(w.Sub)}
	if w.Epoch != 0 {
		opts = append(opts, stream.WithEpoch(w.Epoch))
	}
	if w.Unshaped || w.Kind == "cheat" {
		opts = append(opts, stream.WithoutShaping())
	}
	src, err := stream.Open(ctx, conn, w.Spec, opts...)
	if err != nil {
		return fail(err)
	}
	res.Spec = src.Spec()
	send := src.Send
	if w.Every2 > 0 {
		conn2, err := sockets.FileSeqpacketConn(ipctest.File(2))
		if err != nil {
			return fail(err)
		}
		spec2 := w.Spec
		spec2.Every, spec2.Rate = w.Every2, w.Spec.Rate/float64(w.Every2)
		src2, err := stream.Open(ctx, conn2, spec2, opts...)
		if err != nil {
			return fail(err)
		}
		fan := stream.NewFanout(src, src2)
		defer fan.Close()
		send = fan.Send
	}
	payload := make([]byte, w.Payload)
	period := time.Duration(float64(time.Second) / w.UnitsPerSec)
	start := stream.Now()
	if w.Epoch != 0 {
		start = w.Epoch
	}
	at := start
	rng := rand.New(rand.NewPCG(w.Seed, 1))
	onLeft := 0 // burst: units left in the current on-period
	for i := 0; i < w.Units+w.CheatUnits; i++ {
		pts := time.Duration(i) * period
		switch {
		case i >= w.Units: // cheating
			if i == w.Units {
				res.CheatStart = stream.Now()
			}
			payload[0] = 1
			at += int64(float64(period) / w.CheatFactor)
		case w.Kind == "burst":
			if onLeft == 0 {
				// An on-period of a random length, then the off-period that makes
				// the duty cycle Duty on average.
				on := 1 + rng.IntN(int(2*w.Peak*w.Duty*10))
				gap := time.Duration(float64(on) * float64(period) / w.Peak * (1 - w.Duty) / w.Duty)
				at += int64(gap)
				onLeft = on
			}
			onLeft--
			at += int64(float64(period) / w.Peak)
		default:
			at = start + int64(pts)
		}
		if w.RenegotiateAt > 0 && i == w.RenegotiateAt {
			spec := src.Spec()
			spec.Rate = w.RenegotiateRate
			if res.Renegotiated, err = src.Renegotiate(ctx, spec); err != nil {
				return fail(err)
			}
			payload[0] = 2
		}
		if d := time.Duration(at - stream.Now()); d > 0 {
			time.Sleep(d)
		}
		ipctest.Point("stream-unit")
		if err := send(ctx, payload, pts); err != nil {
			return fail(fmt.Errorf("unit %d: %w", i, err))
		}
	}
	if fc, ok := conn.(*faultConn); ok {
		fc.flush(ctx)
	}
	res.Stats = src.Stats()
	if inj != nil {
		res.Faults = inj.Stats()
	}
	if err := src.Close(); err != nil {
		return fail(err)
	}
	return res
}

// helperConn opens the helper's end of the transport named by spec.
func helperConn(ctx context.Context, spec string) (stream.Conn, error) {
	switch {
	case spec == "seqpacket", spec == "seqpacket2":
		return sockets.FileSeqpacketConn(ipctest.File(1))
	case spec == "pipes":
		r, err := pipe.ReaderFromFd(ipctest.Fd(1))
		if err != nil {
			return nil, err
		}
		w, err := pipe.WriterFromFd(ipctest.Fd(2))
		if err != nil {
			return nil, err
		}
		return stream.Framed(r, w), nil
	case strings.HasPrefix(spec, "udp:"):
		return sockets.DialUDP(ctx, strings.TrimPrefix(spec, "udp:"))
	case strings.HasPrefix(spec, "tcp:"):
		c, err := sockets.DialTCP(ctx, strings.TrimPrefix(spec, "tcp:"))
		if err != nil {
			return nil, err
		}
		return stream.Framed(c, c), nil
	case spec == "unix-stream":
		c, err := sockets.FileStreamConn(ipctest.File(1))
		if err != nil {
			return nil, err
		}
		return stream.Framed(c, c), nil
	case strings.HasPrefix(spec, "rings:"):
		// rings:OUT:IN, segment ids of the rings the test created.
		var out, in int
		if _, err := fmt.Sscanf(strings.TrimPrefix(spec, "rings:"), "%d:%d", &out, &in); err != nil {
			return nil, err
		}
		ro, err := sysv.OpenRing(out)
		if err != nil {
			return nil, err
		}
		ri, err := sysv.OpenRing(in)
		if err != nil {
			return nil, err
		}
		ipctest.Signal() // attached: the test may remove the segments
		return stream.Duplex(ro, ri), nil
	}
	return nil, fmt.Errorf("unknown transport %q", spec)
}

// faultConn applies an Injector to the first left data units it sends.
type faultConn struct {
	stream.Conn
	inj  *ipctest.Injector
	left int
}

func (f *faultConn) Send(ctx context.Context, p []byte) error {
	if f.left <= 0 || len(p) < 3 || p[2] != 1 { // control units pass
		return f.Conn.Send(ctx, p)
	}
	f.left--
	for _, d := range f.inj.Apply(p) {
		if err := f.Conn.Send(ctx, d.Msg); err != nil {
			return err
		}
	}
	if f.left == 0 {
		return f.flush(ctx)
	}
	return nil
}

func (f *faultConn) flush(ctx context.Context) error {
	for _, d := range f.inj.Flush() {
		if err := f.Conn.Send(ctx, d.Msg); err != nil {
			return err
		}
	}
	return nil
}

// A source is a running source helper.
type source struct {
	proc    *ipctest.Proc
	results *os.File
}

// result waits for the helper's report; a helper that failed fails the test.
func (s *source) result(t *testing.T) sourceResult {
	t.Helper()
	r := s.report(t)
	if r.Err != "" {
		t.Fatalf("source helper: %s", r.Err)
	}
	return r
}

// report waits for the helper's report, whatever it says.
func (s *source) report(t *testing.T) sourceResult {
	t.Helper()
	var r sourceResult
	if err := json.NewDecoder(s.results).Decode(&r); err != nil {
		t.Fatalf("source helper: no result: %v\n%s", err, s.proc.Output())
	}
	s.results.Close()
	return r
}

// startSource starts the source helper on transport ("seqpacket", "pipes" or
// "udp:ADDR", with files its end of it) and returns the sink's end for the first
// two.
func startSource(t *testing.T, transport string, w workload, opts ...ipctest.Option) (stream.Conn, *source) {
	t.Helper()
	rr, rw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	files := []*os.File{rw}
	var conn stream.Conn
	var closers []io.Closer
	switch transport {
	case "seqpacket":
		a, f := seqpacketPair(t)
		files = append(files, f)
		conn, closers = a, []io.Closer{a}
	case "seqpacket2":
		a1, f1 := seqpacketPair(t)
		a2, f2 := seqpacketPair(t)
		files = append(files, f1, f2)
		conn, closers = duplexPair{a1, a2}, []io.Closer{a1, a2}
	case "unix-stream":
		a, b, err := sockets.StreamPair()
		if err != nil {
			t.Fatal(err)
		}
		f, err := b.File()
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
		files = append(files, f)
		conn, closers = stream.Framed(a, a), []io.Closer{a}
	case "pipes":
		toHelperR, toHelperW, err := pipe.New()
		if err != nil {
			t.Fatal(err)
		}
		fromHelperR, fromHelperW, err := pipe.New()
		if err != nil {
			t.Fatal(err)
		}
		fr, err := toHelperR.File()
		if err != nil {
			t.Fatal(err)
		}
		fw, err := fromHelperW.File()
		if err != nil {
			t.Fatal(err)
		}
		toHelperR.Close()
		fromHelperW.Close()
		files = append(files, fr, fw)
		conn, closers = stream.Framed(fromHelperR, toHelperW), []io.Closer{fromHelperR, toHelperW}
	}
	js, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]ipctest.Option{ipctest.Handover(files...), ipctest.WithArgs(transport, string(js))}, opts...)
	p := ipctest.Start(t, helperSource, opts...)
	t.Cleanup(func() {
		for _, c := range closers {
			c.Close()
		}
	})
	return conn, &source{proc: p, results: rr}
}

// received is what a sink saw of a whole stream.
type received struct {
	sink       *stream.Sink
	log        []stream.Unit
	payloads   [][]byte // first byte of each payload, if keep
	stats      stream.Stats
	reports    []stream.Report
	violations []stream.Violation
	end        error // what ended Recv: nil for a clean close (io.EOF)
}

// receive accepts a stream on conn and reads it to its end.
func receive(t *testing.T, ctx context.Context, conn stream.Conn, opts ...stream.SinkOption) received {
	t.Helper()
	opts = append([]stream.SinkOption{stream.WithLog(20000)}, opts...)
	sink, err := stream.Accept(ctx, conn, opts...)
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	var r received
	r.sink = sink
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for rep := range sink.Reports() {
			r.reports = append(r.reports, rep)
		}
	}()
	go func() {
		defer wg.Done()
		for v := range sink.Violations() {
			r.violations = append(r.violations, v)
		}
	}()
	buf := make([]byte, stream.MaxPayload)
	for {
		_, err := sink.Recv(ctx, buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			r.end = err
			break
		}
		r.payloads = append(r.payloads, buf[:1:1])
		buf = buf[1:]
		if len(buf) < 1<<16 {
			buf = make([]byte, stream.MaxPayload)
		}
	}
	r.log, r.stats = sink.Log(), sink.Stats()
	sink.Close()
	wg.Wait()
	return r
}

// sendTimes returns the send times and wire sizes (+overhead) of a log.
func sendTimes(log []stream.Unit, overhead int) ([]int64, []int) {
	times, sizes := make([]int64, len(log)), make([]int, len(log))
	for i, u := range log {
		times[i], sizes[i] = u.Sent, stream.WireSize(u.Len)+overhead
	}
	return times, sizes
}

// helperBurn spins on CPU args[0] until killed: background load on the other CPU.
var helperBurn = ipctest.Helper("stream-burn", func(args []string) int {
	runtime.LockOSThread()
	unix.Setpriority(unix.PRIO_PROCESS, 0, 0) // not the test's raised priority
	var set unix.CPUSet
	cpu, _ := strconv.Atoi(args[0])
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return 1
	}
	ipctest.Signal()
	for x := 0; ; x++ {
		_ = x * x
	}
})

// duplexPair carries the sink ends of a two-branch fanout; only its parts are used.
type duplexPair [2]stream.Conn

func (d duplexPair) Send(ctx context.Context, p []byte) error        { return d[0].Send(ctx, p) }
func (d duplexPair) Recv(ctx context.Context, p []byte) (int, error) { return d[0].Recv(ctx, p) }

// raisePriority runs this process at nice −10 (the threads it starts later too), so
// that a stream's timing depends less on what else the machine runs (go test runs
// packages in parallel, two at a time here): the checks read arrival and play-out
// times, which a descheduled sink distorts. (SCHED_FIFO would hold better, but one
// real-time thread spinning in the runtime starved a helper pinned to its CPU for a
// minute.) Without the privilege it does nothing.
func raisePriority() (restore func(), err error) { return threads.Nice(-10) }

// priorityTest runs the calling test's process at nice −10 until the test ends
// (see raisePriority); the source helpers raise themselves.
func priorityTest(t *testing.T) {
	t.Helper()
	restore, err := raisePriority()
	if err != nil {
		t.Logf("running at normal priority (%v): timings depend on the machine's load", err)
	}
	t.Cleanup(restore)
}

// seqpacketPair returns one end of a seqpacket pair, and the other as a file to
// hand over to a helper.
func seqpacketPair(t *testing.T) (*sockets.SeqpacketConn, *os.File) {
	t.Helper()
	a, b, err := sockets.SeqpacketPair()
	if err != nil {
		t.Fatal(err)
	}
	f, err := b.File()
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	return a, f
}

// delayingRelay returns a UDP socket for a sink and a relay in front of it that
// delays every datagram by up to 20 ms (seeded): the address a source dials.
func delayingRelay(t *testing.T) (sink *sockets.DgramConn, relay *ipctest.Relay) {
	t.Helper()
	l, err := sockets.ListenUDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	relay, err = ipctest.NewRelay(pc, l.LocalAddr(), ipctest.Faults{Seed: ipctest.Seed(t), Delay: 20 * time.Millisecond, DelayProb: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	return l, relay
}

// run streams w from a source helper over transport ("seqpacket" or "pipes") to a
// sink in this process, within a minute, and returns what the sink saw and what the
// source reported; a stream that did not end cleanly fails the test.
func run(t *testing.T, transport string, w workload, opts ...stream.SinkOption) (received, sourceResult) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, src := startSource(t, transport, w)
	r := receive(t, ctx, conn, opts...)
	res := src.result(t)
	if r.end != nil {
		t.Fatal(r.end)
	}
	return r, res
}
