package stream_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/internal/threads"
	"github.com/ipclab/ipclab/ipc/stream"
	"github.com/ipclab/ipclab/ipc/sysv"
	"github.com/ipclab/ipclab/sockets"
)

// contract is the test contract: units units/s of payload bytes, a bucket of depth
// units.
func contract(units float64, payload, depth int) stream.FlowSpec {
	return stream.FlowSpec{Rate: stream.RateFor(units, payload), Depth: depth * stream.WireSize(payload)}
}

func within(got, want, frac float64) bool { return math.Abs(got-want) <= frac*want }

// QOS-01: a source bursting at 10× its contract (on/off, seeded; twice the contract
// on average) is shaped to the contract: over 10 s its long-run rate is within 2%
// of the token rate and no burst exceeds the bucket's depth, on the send times (the
// shaper's output) and, with the policer's default 5 ms tolerance for the path, on
// the arrival times in the other process.
func TestShapedToContract(t *testing.T) {
	priorityTest(t)
	units := 10000 // 10 s at the contract
	if testing.Short() {
		units = 2000
	}
	spec := contract(1000, 256, 8)
	w := workload{Spec: spec, Kind: "burst", Payload: 256, UnitsPerSec: 1000, Peak: 10, Duty: 0.2, Units: units, Seed: ipctest.Seed(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, src := startSource(t, "pipes", w)
	r := receive(t, ctx, conn)
	res := src.result(t)
	if r.end != nil || len(r.log) != units {
		t.Fatalf("received %d of %d units, end %v", len(r.log), units, r.end)
	}
	times, sizes := sendTimes(r.log, 0)
	rate := stream.LongRunRate(times, sizes)
	burst := stream.MaxBurst(times, sizes, spec.Rate)
	span := time.Duration(times[len(times)-1] - times[0])
	t.Logf("QOS-01: %d units over %v, offered 10× in bursts (duty 0.2), shaped for %v in all; rate %.0f B/s = %.4f× the contract %.0f; max burst %.0f B (depth %d)",
		units, span.Round(time.Millisecond), res.Stats.Shaped.Round(time.Millisecond), rate, rate/spec.Rate, spec.Rate, burst, spec.Depth)
	if !within(rate, spec.Rate, 0.02) {
		t.Errorf("long-run rate %.0f B/s, want %.0f ± 2%%", rate, spec.Rate)
	}
	if burst > float64(spec.Depth)+1e-6 {
		t.Errorf("a burst of %.0f bytes beyond the rate, more than the depth %d", burst, spec.Depth)
	}
	if br := stream.CheckBucket(times, sizes, spec.Rate, spec.Depth); len(br) > 0 {
		t.Errorf("%d units broke the bucket, first: %v", len(br), br[0])
	}
	if res.Stats.Shaped < span/4 {
		t.Errorf("the source waited %v for tokens over %v: the workload did not burst beyond the contract", res.Stats.Shaped, span)
	}
	// At the sink, in the other process.
	arr := make([]int64, len(r.log))
	for i, u := range r.log {
		arr[i] = u.Arrived
	}
	slack := spec.Rate * (5 * time.Millisecond).Seconds()
	arrBurst := stream.MaxBurst(arr, sizes, spec.Rate)
	t.Logf("QOS-01 at the sink: rate %.4f× the contract, max burst %.0f B (depth %d + %.0f for 5 ms of path jitter)", stream.LongRunRate(arr, sizes)/spec.Rate, arrBurst, spec.Depth, slack)
	if arrBurst > float64(spec.Depth)+slack {
		t.Errorf("arrivals burst %.0f bytes, more than depth + 5 ms of tolerance (%0.f)", arrBurst, float64(spec.Depth)+slack)
	}
	if r.stats.Beyond != 0 {
		t.Errorf("the sink's policer found %d units of a shaped source beyond the contract", r.stats.Beyond)
	}
	// The monitor reported every 100 ms, each interval at the contract's rate (± a
	// bucket's depth over the interval).
	var rates []int64
	for _, rep := range r.reports {
		if rep.Units > 0 {
			rates = append(rates, int64(rep.Rate))
		}
	}
	slices.Sort(rates)
	med := float64(rates[len(rates)/2])
	t.Logf("monitor: %d reports, median interval rate %.3f× the contract", len(r.reports), med/spec.Rate)
	if want := int(span / (100 * time.Millisecond)); len(r.reports) < want-2 {
		t.Errorf("%d reports over %v, want about %d", len(r.reports), span, want)
	}
	if !within(med, spec.Rate, float64(spec.Depth)/0.1/spec.Rate) {
		t.Errorf("median interval rate %.0f, want %.0f", med, spec.Rate)
	}
}

// QOS-02: a source that keeps its contract for a second and then sends at three
// times it is caught: the first violation comes within one monitoring interval
// (100 ms) of its first excess unit, no unit of the honest second is called beyond
// the contract, and every excess unit the policer finds is dropped (PoliceDrop) or
// marked (PoliceMark) and counted.
func TestPolicerCatchesCheater(t *testing.T) {
	for _, police := range []stream.Policing{stream.PoliceDrop, stream.PoliceMark} {
		t.Run(police.String(), func(t *testing.T) {
			priorityTest(t)
			// A tolerance of 20 ms: on this shared 2-vCPU machine the sink is now and
			// then descheduled for several milliseconds, and what queued meanwhile
			// arrives together (with 2 ms, an honest unit was marked once in a few
			// runs). The cheater is still caught within (4 + 20) units / 2 units per
			// ms of excess: 12 ms.
			spec := contract(1000, 256, 4)
			spec.Police, spec.Tolerance = police, 20*time.Millisecond
			w := workload{Spec: spec, Kind: "cheat", Payload: 256, UnitsPerSec: 1000, Units: 1000, CheatFactor: 3, CheatUnits: 1500}
			r, res := run(t, "seqpacket", w)
			honest, marked := 0, 0
			for i, u := range r.log {
				if r.payloads[i][0] == 0 {
					honest++
				}
				if u.Marked {
					marked++
					if r.payloads[i][0] == 0 {
						t.Errorf("honest unit %d marked beyond the contract", u.Seq)
					}
				}
			}
			var first *stream.Violation
			for i, v := range r.violations {
				if v.Kind == "rate" {
					first = &r.violations[i]
					break
				}
			}
			if first == nil {
				t.Fatalf("no rate violation reported; stats %+v", r.stats)
			}
			took := time.Duration(first.At - res.CheatStart)
			t.Logf("QOS-02 (%v): cheating from unit 1000 at 3×; first violation %v after the first excess unit was sent (unit %d); %d beyond the contract, %d dropped, %d marked, %d honest units all delivered: %v",
				police, took.Round(time.Microsecond), first.Seq, r.stats.Beyond, r.stats.Dropped, marked, honest, honest == 1000)
			if honest != 1000 {
				t.Errorf("%d of the 1000 honest units delivered", honest)
			}
			if took < 0 || took > 100*time.Millisecond {
				t.Errorf("violation %v after cheating began, want within one interval (100 ms)", took)
			}
			if r.stats.Beyond == 0 {
				t.Fatal("nothing counted beyond the contract")
			}
			switch police {
			case stream.PoliceDrop:
				if r.stats.Dropped != r.stats.Beyond || uint64(len(r.log)) != 2500-r.stats.Beyond {
					t.Errorf("beyond %d, dropped %d, delivered %d of 2500", r.stats.Beyond, r.stats.Dropped, len(r.log))
				}
				// What the policer let through keeps the contract (with its tolerance).
				arr, sizes := make([]int64, len(r.log)), make([]int, len(r.log))
				for i, u := range r.log {
					arr[i], sizes[i] = u.Arrived, stream.WireSize(u.Len)
				}
				tol := spec.Depth + int(spec.Rate*spec.Tolerance.Seconds())
				if br := stream.CheckBucket(arr, sizes, spec.Rate, tol); len(br) > 0 {
					t.Errorf("the policed output breaks the contract: %v", br[0])
				}
			case stream.PoliceMark:
				if uint64(marked) != r.stats.Beyond || r.stats.Dropped != 0 || len(r.log) != 2500 {
					t.Errorf("beyond %d, marked %d, dropped %d, delivered %d", r.stats.Beyond, marked, r.stats.Dropped, len(r.log))
				}
			}
			flagged := false
			for _, rep := range r.reports {
				for _, v := range rep.Violated {
					flagged = flagged || v == "rate"
				}
			}
			if !flagged {
				t.Error("no interval report says the rate was violated")
			}
		})
	}
}

// QOS-03: isochronous delivery at 1000 units/s over a pipe and over UDP, source and
// sink pinned to CPU 0 and a process spinning on CPU 1: every unit is released
// between MinDelay and MaxDelay after it was sent (or marked late, and then it
// really was), and the output jitter p99 stays within 5 ms. On this shared 2-vCPU
// VM, otherwise quiet, p99 measured 0.36–1.06 ms (the sink sleeps the last 2 ms in
// the kernel's high-resolution timer and wakes within ~0.1 ms at p50, but now and
// then its vCPU is not running when the timer fires): 2 ms holds there. CI runs
// this under -race beside other packages' tests, where 2.24 ms was measured: the
// bound asserted is the one that holds in both.
func TestIsochronous(t *testing.T) {
	priorityTest(t)
	units := 5000
	if testing.Short() {
		units = 1000
	}
	const jitterBound = 5 * time.Millisecond
	for _, transport := range []string{"pipes", "udp"} {
		t.Run(transport, func(t *testing.T) {
			burn := ipctest.Start(t, helperBurn, ipctest.WithArgs("1"))
			burn.Await()
			defer burn.Kill()
			spec := contract(1000, 160, 8)
			spec.Mode, spec.MinDelay, spec.MaxDelay = stream.Isochronous, 3*time.Millisecond, 15*time.Millisecond
			// Source and sink on CPU 0, the load on CPU 1.
			w := workload{Spec: spec, Kind: "steady", Payload: 160, UnitsPerSec: 1000, Units: units, Pin: true, CPU: 0}
			restore, err := threads.Pin(0)
			if err != nil {
				t.Fatal(err)
			}
			defer restore()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var conn stream.Conn
			var src *source
			if transport == "udp" {
				l, err := sockets.ListenUDP("127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				conn = stream.Unconnected(l, nil)
				_, src = startSource(t, "udp:"+l.LocalAddr().String(), w)
			} else {
				conn, src = startSource(t, transport, w)
			}
			r := receive(t, ctx, conn)
			src.result(t)
			if r.end != nil {
				t.Fatal(r.end)
			}
			br := stream.CheckIsochronous(r.log, spec.MinDelay, spec.MaxDelay, false, 0)
			jit := stream.Jitter(r.log, 0.99)
			p50, p99 := stream.Delay(r.log, 0.5), stream.Delay(r.log, 0.99)
			t.Logf("QOS-03 over %s: %d units (%d lost, %d late), delay p50 %v p99 %v in [%v, %v], output jitter p99 %v (bound %v), %d breaches",
				transport, len(r.log), r.stats.Lost, r.stats.Late, p50, p99, spec.MinDelay, spec.MaxDelay, jit, jitterBound, len(br))
			for i, b := range br {
				if i < 5 {
					t.Errorf("breach: %v", b)
				}
			}
			if jit > jitterBound {
				t.Errorf("output jitter p99 %v, more than %v", jit, jitterBound)
			}
			if r.stats.Late > uint64(units/100) {
				t.Errorf("%d of %d units late", r.stats.Late, units)
			}
		})
	}
}

// QOS-04: the sink measures what a seqpacket connection between two processes
// carries, and admits streams within it: two of 40% are granted, a third of 40%
// that accepts 10% gets a counter-offer of what is left (20%), a fourth is refused,
// and once the first ends a fifth of 30% is granted. The admitted total never
// exceeds the measured capacity, and the log's own events account for it.
func TestAdmission(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Measure: a probe from another process.
	a, b, err := sockets.SeqpacketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	f, err := b.File()
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	probe := ipctest.Start(t, helperProbe, ipctest.Handover(f))
	capacity, err := stream.MeasureCapacity(ctx, a, make([]byte, 1<<16))
	if err != nil {
		t.Fatal(err)
	}
	probe.MustSucceed()
	adm := stream.NewAdmission(capacity)
	t.Logf("QOS-04: measured capacity %.0f MB/s (64 KiB units, 300 ms)", capacity/1e6)

	offer := func(frac, minFrac float64) stream.FlowSpec {
		s := stream.FlowSpec{Rate: frac * capacity, MinRate: minFrac * capacity, Depth: 1 << 16}
		return s
	}
	type run struct {
		conn stream.Conn
		src  *source
	}
	start := func(spec stream.FlowSpec) run {
		w := workload{Spec: spec, Kind: "steady", Payload: 1000, UnitsPerSec: 100, Units: 20}
		conn, src := startSource(t, "seqpacket", w)
		return run{conn, src}
	}
	accept := func(r run) (*stream.Sink, error) {
		return stream.Accept(ctx, r.conn, stream.WithAdmission(adm))
	}
	drain := func(s *stream.Sink) {
		buf := make([]byte, 2000)
		for {
			if _, err := s.Recv(ctx, buf); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Errorf("recv: %v", err)
				}
				break
			}
		}
		s.Close()
	}
	r1, r2, r3, r4 := start(offer(0.4, 0)), start(offer(0.4, 0)), start(offer(0.4, 0.1)), start(offer(0.4, 0.3))
	s1, err := accept(r1)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := accept(r2)
	if err != nil {
		t.Fatal(err)
	}
	s3, err := accept(r3)
	if err != nil {
		t.Fatal(err)
	}
	if got := s3.Spec().Rate; !within(got, 0.2*capacity, 1e-9) {
		t.Errorf("third stream admitted at %.0f, want the 20%% left (%.0f)", got, 0.2*capacity)
	}
	if _, err := accept(r4); err == nil {
		t.Error("a fourth stream was admitted beyond the capacity")
	}
	rep4 := r4.src.report(t)
	if !strings.Contains(rep4.Err, "refused") {
		t.Errorf("fourth source: %q, want a refusal", rep4.Err)
	}
	drain(s1)
	r1.src.result(t)
	r5 := start(offer(0.3, 0))
	s5, err := accept(r5)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*stream.Sink{s2, s3, s5} {
		drain(s)
	}
	for _, r := range []run{r2, r3, r5} {
		r.src.result(t)
	}
	log := adm.Log()
	var verdicts []string
	for _, e := range log {
		if e.Verdict != 0 {
			verdicts = append(verdicts, e.Op+":"+e.Verdict.String())
		} else {
			verdicts = append(verdicts, e.Op)
		}
	}
	t.Logf("QOS-04 log: %v; admitted at the end %.0f", verdicts, adm.Admitted())
	want := []string{"offer:grant", "offer:grant", "offer:counter", "offer:refuse", "release", "offer:grant", "release", "release", "release"}
	if len(verdicts) != len(want) {
		t.Fatalf("log %v, want %v", verdicts, want)
	}
	for i := range want {
		if verdicts[i] != want[i] {
			t.Errorf("event %d: %s, want %s", i, verdicts[i], want[i])
		}
	}
	if br := stream.CheckAdmission(log, capacity); len(br) > 0 {
		t.Errorf("admission log breaches: %v", br)
	}
	if adm.Admitted() > 1e-6*capacity {
		t.Errorf("%.0f still admitted after every stream ended", adm.Admitted())
	}
}

// helperProbe sends a 300 ms capacity probe on the seqpacket socket File(0).
var helperProbe = ipctest.Helper("stream-probe", func(args []string) int {
	c, err := sockets.FileSeqpacketConn(ipctest.File(0))
	if err != nil {
		return 1
	}
	if _, err := stream.Probe(context.Background(), c, 300*time.Millisecond, 64<<10-stream.HeaderSize); err != nil {
		return 2
	}
	return 0
})

// QOS-05: a complex stream, audio at 50 units/s over a pipe and video at 25 units/s
// over UDP through a relay that delays every datagram by up to 20 ms (the slower
// path), each from its own process, shares one epoch; the sinks play out by media
// time, each handing out a unit no more than 5 ms after its play-out time or
// counting it late. Over 60 s the units played out stay within 10 ms of each other,
// and at most 1% are late.
func TestComplexStreamInSync(t *testing.T) {
	priorityTest(t)
	secs := 60
	if testing.Short() {
		secs = 5
	}
	const skewBound = 10 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+30)*time.Second)
	defer cancel()
	epoch := stream.Now() + int64(500*time.Millisecond)
	iso := func(units float64, payload int) stream.FlowSpec {
		s := contract(units, payload, 4)
		s.Mode, s.MinDelay, s.MaxDelay = stream.Isochronous, 40*time.Millisecond, 100*time.Millisecond
		return s
	}
	audio := workload{Spec: iso(50, 160), Kind: "steady", Payload: 160, UnitsPerSec: 50, Units: 50 * secs, Epoch: epoch, Sub: 1}
	video := workload{Spec: iso(25, 4000), Kind: "steady", Payload: 4000, UnitsPerSec: 25, Units: 25 * secs, Epoch: epoch, Sub: 2}

	l, relay := delayingRelay(t)

	aconn, asrc := startSource(t, "pipes", audio)
	_, vsrc := startSource(t, "udp:"+relay.Addr().String(), video)
	results := make(chan received, 1)
	go func() { results <- receive(t, ctx, stream.Unconnected(l, nil), stream.ByMediaTime(5*time.Millisecond)) }()
	ra := receive(t, ctx, aconn, stream.ByMediaTime(5*time.Millisecond))
	rv := <-results
	asrc.result(t)
	vsrc.result(t)
	if ra.end != nil || rv.end != nil {
		t.Fatalf("audio ended with %v, video with %v", ra.end, rv.end)
	}
	skew, br := stream.CheckSkew([][]stream.Unit{ra.log, rv.log}, epoch, skewBound)
	toTarget, _ := relay.Stats()
	t.Logf("QOS-05: %d s, %d audio units (pipe), %d video units (UDP via relay: %v); worst skew %v (bound %v), %d breaches; late audio %d video %d",
		secs, len(ra.log), len(rv.log), toTarget, skew, skewBound, len(br), ra.stats.Late, rv.stats.Late)
	for i, b := range br {
		if i < 5 {
			t.Errorf("%v", b)
		}
	}
	for _, r := range []received{ra, rv} {
		if br := stream.CheckIsochronous(r.log, 40*time.Millisecond, 45*time.Millisecond, true, epoch); len(br) > 0 {
			t.Errorf("play-out outside [40 ms, 45 ms] of media time: %v", br[0])
		}
	}
	if len(ra.log) != 50*secs || len(rv.log) != 25*secs {
		t.Errorf("audio %d of %d units, video %d of %d", len(ra.log), 50*secs, len(rv.log), 25*secs)
	}
	if late := ra.stats.Late + rv.stats.Late; late > uint64(75*secs/100) {
		var seqs []string
		for _, r := range []received{ra, rv} {
			for _, u := range r.log {
				if u.Late {
					seqs = append(seqs, fmt.Sprintf("%d/%d:+%v", u.Sub, u.Seq, time.Duration(u.Released-(epoch+u.PTS)-int64(40*time.Millisecond))))
				}
			}
		}
		t.Errorf("%d of %d units out of step: %v", late, 75*secs, seqs)
	}
}

// Loss, duplication and reordering injected (seeded) between the processes are
// counted exactly by the sink: what the injector did is what the sink reports.
func TestFaultsCounted(t *testing.T) {
	priorityTest(t)
	seed := ipctest.Seed(t)
	f := ipctest.Faults{Seed: seed, Loss: 0.05, Dup: 0.05, Reorder: 0.05}
	spec := contract(2000, 100, 16)
	w := workload{Spec: spec, Kind: "steady", Payload: 100, UnitsPerSec: 2000, Units: 3000, Faults: &f, FaultUnits: 2500}
	r, res := run(t, "seqpacket", w)
	t.Logf("faults (seed %d): injected %v; sink: %d delivered, %d lost, %d duplicates, %d reordered", seed, res.Faults, len(r.log), r.stats.Lost, r.stats.Duplicates, r.stats.Reordered)
	// Loss and duplication are counted exactly. A message the injector held back
	// for reordering goes out in order when the next one is lost, so the injector's
	// count of holds bounds the reordering the sink sees; the sink's count must
	// equal what its own log shows: units handed out below a sequence number
	// already handed out.
	var top uint64
	var outOfOrder uint64
	for i, u := range r.log {
		if i > 0 && u.Seq < top {
			outOfOrder++
		}
		top = max(top, u.Seq)
	}
	if r.stats.Lost != uint64(res.Faults.Lost) || r.stats.Duplicates != uint64(res.Faults.Duplicated) ||
		r.stats.Reordered != outOfOrder || r.stats.Reordered > uint64(res.Faults.Reordered) {
		t.Errorf("sink counted lost %d dup %d reordered %d (its log shows %d out of order); injected %v", r.stats.Lost, r.stats.Duplicates, r.stats.Reordered, outOfOrder, res.Faults)
	}
	if uint64(len(r.log))+r.stats.Lost != 3000 {
		t.Errorf("%d delivered + %d lost ≠ 3000 sent", len(r.log), r.stats.Lost)
	}
	seen := map[uint64]bool{}
	for _, u := range r.log {
		if seen[u.Seq] {
			t.Fatalf("unit %d delivered twice", u.Seq)
		}
		seen[u.Seq] = true
	}
}

// A source stopped (SIGSTOP) in the middle of an isochronous stream: when it goes on,
// the units it sends late are flagged late and reported within an interval, and
// every other unit still plays out in bounds. A source killed (SIGKILL) ends the
// sink's Recv with an unexpected EOF, not a hang.
func TestSourceStoppedAndKilled(t *testing.T) {
	priorityTest(t)
	spec := contract(1000, 100, 8)
	spec.Mode, spec.MinDelay, spec.MaxDelay = stream.Isochronous, 2*time.Millisecond, 20*time.Millisecond
	w := workload{Spec: spec, Kind: "steady", Payload: 100, UnitsPerSec: 1000, Units: 1500}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("SIGSTOP", func(t *testing.T) {
		// Played out by media time: what the source sends after it goes on is due
		// already. (By send time a stopped source leaves only a gap.)
		w := w
		w.Epoch = stream.Now() + int64(300*time.Millisecond)
		conn, src := startSource(t, "seqpacket", w, ipctest.FaultAt("stream-unit", 500, unix.SIGSTOP))
		go func() {
			// Once the source has stopped itself (at unit 500), leave it stopped
			// for 300 ms.
			for !stopped(src.proc.Pid()) {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(300 * time.Millisecond)
			src.proc.Cmd.Process.Signal(unix.SIGCONT)
		}()
		r := receive(t, ctx, conn, stream.ByMediaTime(5*time.Millisecond))
		src.result(t)
		if r.end != nil {
			t.Fatal(r.end)
		}
		late := false
		for _, v := range r.violations {
			late = late || v.Kind == "late"
		}
		t.Logf("stopped at unit 500 for ~300 ms: %d units, %d late, late violation %v", len(r.log), r.stats.Late, late)
		if r.stats.Late == 0 || !late {
			t.Errorf("a source stopped for 300 ms caused %d late units, violation reported %v", r.stats.Late, late)
		}
		if br := stream.CheckIsochronous(r.log, spec.MinDelay, spec.MinDelay+5*time.Millisecond, true, w.Epoch); len(br) > 0 {
			t.Errorf("%d breaches, first %v", len(br), br[0])
		}
	})
	t.Run("SIGKILL", func(t *testing.T) {
		conn, src := startSource(t, "seqpacket", w, ipctest.FaultAt("stream-unit", 300, unix.SIGKILL))
		r := receive(t, ctx, conn)
		src.proc.Wait()
		if !errors.Is(r.end, io.ErrUnexpectedEOF) {
			t.Errorf("a killed source ended the stream with %v, want an unexpected EOF", r.end)
		}
		if len(r.log) < 290 || len(r.log) > 300 {
			t.Errorf("%d units before the kill at unit 300", len(r.log))
		}
	})
}

// Renegotiation: the source lowers its contract mid-stream; the sink's admission
// controller and policer follow, and the units after it are shaped to the new rate.
func TestRenegotiate(t *testing.T) {
	priorityTest(t)
	spec := contract(2000, 200, 8)
	spec.Tolerance = 20 * time.Millisecond // as in TestPolicerCatchesCheater
	lower := spec.Rate / 4
	adm := stream.NewAdmission(spec.Rate * 1.5)
	w := workload{Spec: spec, Kind: "burst", Payload: 200, UnitsPerSec: 2000, Peak: 10, Duty: 0.5, Units: 2000, Seed: 7, RenegotiateAt: 1000, RenegotiateRate: lower}
	r, res := run(t, "seqpacket", w, stream.WithAdmission(adm))
	if res.Renegotiated.Rate != lower || r.sink.Spec().Rate != lower {
		t.Fatalf("renegotiated to %.0f (the sink holds %.0f), want %.0f", res.Renegotiated.Rate, r.sink.Spec().Rate, lower)
	}
	if got := adm.Log()[1]; got.Op != "renegotiate" || got.Verdict != stream.Grant || got.Admitted != lower {
		t.Errorf("admission after renegotiation: %+v", got)
	}
	var after []stream.Unit
	for i, u := range r.log {
		if r.payloads[i][0] == 2 {
			after = append(after, u)
		}
	}
	times, sizes := sendTimes(after, 0)
	rate := stream.LongRunRate(times, sizes)
	t.Logf("renegotiated from %.0f to %.0f B/s: %d units after at %.0f B/s (%.3f×); policer found %d beyond", spec.Rate, lower, len(after), rate, rate/lower, r.stats.Beyond)
	if !within(rate, lower, 0.05) {
		t.Errorf("rate after renegotiation %.0f, want %.0f ± 5%%", rate, lower)
	}
	if br := stream.CheckBucket(times, sizes, lower, spec.Depth); len(br) > 0 {
		t.Errorf("after renegotiation: %v", br[0])
	}
	if r.stats.Beyond != 0 {
		t.Errorf("the policer found %d units beyond a contract the source kept", r.stats.Beyond)
	}
	if br := stream.CheckAdmission(adm.Log(), adm.Capacity()); len(br) > 0 {
		t.Errorf("admission: %v", br)
	}
}

// Multicast with filtering: one source process, two sinks; one wants every unit,
// the other (a lower capability) every other one, each at its own contract.
func TestFanoutFilters(t *testing.T) {
	priorityTest(t)
	spec := contract(1000, 100, 8)
	w := workload{Spec: spec, Kind: "steady", Payload: 100, UnitsPerSec: 1000, Units: 1000, Every2: 2}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, src := startSource(t, "seqpacket2", w)
	pair := conn.(duplexPair)
	results := make(chan received, 1)
	go func() { results <- receive(t, ctx, pair[1]) }()
	full := receive(t, ctx, pair[0])
	half := <-results
	src.result(t)
	if full.end != nil || half.end != nil {
		t.Fatalf("ends: %v, %v", full.end, half.end)
	}
	t.Logf("fanout: full sink %d units (lost %d), every-other sink %d units (lost %d, contract %.0f B/s)", len(full.log), full.stats.Lost, len(half.log), half.stats.Lost, half.sink.Spec().Rate)
	if len(full.log) != 1000 || len(half.log) != 500 || full.stats.Lost != 0 || half.stats.Lost != 0 {
		t.Errorf("full %d (lost %d), half %d (lost %d)", len(full.log), full.stats.Lost, len(half.log), half.stats.Lost)
	}
	for _, u := range half.log {
		if u.Seq%2 != 0 {
			t.Fatalf("the every-other sink got unit %d", u.Seq)
		}
	}
	if half.sink.Spec().Every != 2 || half.stats.Unwanted != 0 {
		t.Errorf("half sink spec every %d, unwanted %d", half.sink.Spec().Every, half.stats.Unwanted)
	}
}

// A stream runs over every transport ipclab has, between two processes: pipes, a
// Unix stream socket, a seqpacket socket, TCP and UDP on loopback, and a pair of
// shared-memory rings; every unit arrives once, in order, shaped to the contract.
func TestEveryTransport(t *testing.T) {
	priorityTest(t)
	spec := contract(2000, 500, 8)
	w := workload{Spec: spec, Kind: "burst", Payload: 500, UnitsPerSec: 2000, Peak: 10, Duty: 0.3, Units: 600, Seed: 3}
	for _, transport := range []string{"pipes", "unix-stream", "seqpacket", "tcp", "udp", "rings"} {
		t.Run(transport, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var conn stream.Conn
			var src *source
			switch transport {
			case "udp":
				l, err := sockets.ListenUDP("127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				conn = stream.Unconnected(l, nil)
				_, src = startSource(t, "udp:"+l.LocalAddr().String(), w)
			case "tcp":
				l, err := sockets.ListenTCP("127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				_, src = startSource(t, "tcp:"+l.Addr().String(), w)
				c, err := l.AcceptStream(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				conn = stream.Framed(c, c)
			case "rings":
				toSink, err := sysv.CreateRing(1 << 16)
				if err != nil {
					t.Fatal(err)
				}
				defer toSink.Close()
				toSource, err := sysv.CreateRing(1 << 12)
				if err != nil {
					t.Fatal(err)
				}
				defer toSource.Close()
				_, src = startSource(t, fmt.Sprintf("rings:%d:%d", toSink.SegmentID(), toSource.SegmentID()), w)
				src.proc.Await() // attached
				for _, r := range []*sysv.Ring{toSink, toSource} {
					if err := r.Remove(); err != nil {
						t.Fatal(err)
					}
				}
				conn = stream.Duplex(toSource, toSink)
			default:
				conn, src = startSource(t, transport, w)
			}
			r := receive(t, ctx, conn)
			src.result(t)
			if r.end != nil {
				t.Fatal(r.end)
			}
			times, sizes := sendTimes(r.log, 0)
			inOrder := true
			for i, u := range r.log {
				inOrder = inOrder && u.Seq == uint64(i)
			}
			t.Logf("%s: %d units, in order %v, lost %d, rate %.3f× the contract", transport, len(r.log), inOrder, r.stats.Lost, stream.LongRunRate(times, sizes)/spec.Rate)
			if len(r.log) != 600 || !inOrder || r.stats.Lost != 0 || r.stats.Duplicates != 0 {
				t.Errorf("%d units, in order %v, stats %+v", len(r.log), inOrder, r.stats)
			}
			if br := stream.CheckBucket(times, sizes, spec.Rate, spec.Depth); len(br) > 0 {
				t.Errorf("shaping: %v", br[0])
			}
		})
	}
}

// stopped reports whether process pid is stopped (state T in /proc/PID/stat).
func stopped(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // gone: nothing to wait for
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'T'
}

// Synchronous mode: over UDP through a relay that delays each datagram by up to
// 20 ms, with a maximum delay of 10 ms, about half the units are late; with DropLate
// they are dropped and counted, and every unit handed out was within the bound.
func TestSyncDropsLate(t *testing.T) {
	priorityTest(t)
	for _, drop := range []bool{false, true} {
		t.Run(fmt.Sprintf("DropLate=%v", drop), func(t *testing.T) {
			spec := contract(500, 100, 8)
			spec.Mode, spec.MaxDelay, spec.DropLate = stream.Sync, 10*time.Millisecond, drop
			w := workload{Spec: spec, Kind: "steady", Payload: 100, UnitsPerSec: 500, Units: 1000}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			l, relay := delayingRelay(t)
			_, src := startSource(t, "udp:"+relay.Addr().String(), w)
			r := receive(t, ctx, stream.Unconnected(l, nil))
			src.result(t)
			if r.end != nil {
				t.Fatal(r.end)
			}
			late := 0
			for _, u := range r.log {
				d := time.Duration(u.Delay())
				if d > spec.MaxDelay != u.Late {
					t.Errorf("unit %d: delay %v, marked late %v", u.Seq, d, u.Late)
				}
				if u.Late {
					late++
				}
			}
			t.Logf("sync, max delay 10 ms, path delay up to 20 ms, drop %v: %d handed out (%d late among them), %d late in all, %d dropped, %d lost, %d reordered",
				drop, len(r.log), late, r.stats.Late, r.stats.Dropped, r.stats.Lost, r.stats.Reordered)
			if r.stats.Late < 100 || r.stats.Late > 900 {
				t.Errorf("%d of 1000 units late, want about half", r.stats.Late)
			}
			if drop && (late != 0 || r.stats.Dropped != r.stats.Late || uint64(len(r.log))+r.stats.Dropped+r.stats.Lost != 1000) {
				t.Errorf("DropLate: %d late handed out, %d dropped of %d late, %d + %d + %d lost ≠ 1000", late, r.stats.Dropped, r.stats.Late, len(r.log), r.stats.Dropped, r.stats.Lost)
			}
			if !drop && (uint64(late) != r.stats.Late || len(r.log) != 1000) {
				t.Errorf("late %d handed out, %d counted, %d of 1000 handed out", late, r.stats.Late, len(r.log))
			}
		})
	}
}
