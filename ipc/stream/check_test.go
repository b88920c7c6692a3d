package stream_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ipclab/ipclab/ipc/stream"
)

const ms = int64(time.Millisecond)

// steady returns n units of size bytes, one every period ns from 0.
func steady(n int, period int64, size int) ([]int64, []int) {
	times, sizes := make([]int64, n), make([]int, n)
	for i := range times {
		times[i], sizes[i] = int64(i)*period, size
	}
	return times, sizes
}

// QOS-01's checker passes a conforming stream and catches a planted burst and a
// planted rate excess.
func TestCheckBucketPlanted(t *testing.T) {
	// 100 B every ms is 100 000 B/s; a depth of 300 B.
	times, sizes := steady(1000, ms, 100)
	if br := stream.CheckBucket(times, sizes, 100_000, 300); len(br) != 0 {
		t.Fatalf("a conforming stream: %v", br[0])
	}
	if b := stream.MaxBurst(times, sizes, 100_000); b != 100 {
		t.Errorf("MaxBurst of a steady stream %v, want one unit (100)", b)
	}
	// A burst: units 500..504 all at 500 ms.
	burst := append([]int64(nil), times...)
	for i := 501; i < 505; i++ {
		burst[i] = burst[500]
	}
	br := stream.CheckBucket(burst, sizes, 100_000, 300)
	if len(br) == 0 || br[0].Rule != "QOS-01" || br[0].Index != 503 {
		t.Errorf("planted burst of 500 B over a 300 B depth: %v", br)
	}
	if b := stream.MaxBurst(burst, sizes, 100_000); b != 500 {
		t.Errorf("MaxBurst %v, want 500", b)
	}
	// A rate 10% too high: the bucket runs dry after depth / excess.
	fast, _ := steady(1000, ms*9/10, 100)
	if br := stream.CheckBucket(fast, sizes, 100_000, 300); len(br) == 0 {
		t.Error("a stream 11% over its rate passed")
	}
	if r := stream.LongRunRate(times, sizes); r < 99_999 || r > 100_001 {
		t.Errorf("LongRunRate %v, want 100 000", r)
	}
	if br := stream.CheckBucket(times[:2], sizes, 1, 1); len(br) != 1 || !strings.Contains(br[0].Detail, "times for") {
		t.Errorf("mismatched inputs: %v", br)
	}
}

// QOS-03's checker passes units released in bounds and catches an early one, a late
// one not marked late, and a unit marked late that was not.
func TestCheckIsochronousPlanted(t *testing.T) {
	units := make([]stream.Unit, 100)
	for i := range units {
		s := int64(i) * ms
		units[i] = stream.Unit{Seq: uint64(i), Sent: s, Arrived: s + ms, Released: s + 5*ms, PTS: int64(i) * ms}
	}
	if br := stream.CheckIsochronous(units, 4*time.Millisecond, 10*time.Millisecond, false, 0); len(br) != 0 {
		t.Fatalf("in bounds: %v", br)
	}
	if j := stream.Jitter(units, 0.99); j != 0 {
		t.Errorf("jitter of a constant delay %v", j)
	}
	planted := append([]stream.Unit(nil), units...)
	planted[10].Released = planted[10].Sent + 3*ms  // early
	planted[20].Released = planted[20].Sent + 11*ms // late, not marked
	planted[30].Late = true                         // marked, was not
	planted[40].Arrived, planted[40].Released, planted[40].Late = planted[40].Sent+12*ms, planted[40].Sent+12*ms, true
	br := stream.CheckIsochronous(planted, 4*time.Millisecond, 10*time.Millisecond, false, 0)
	if len(br) != 3 || br[0].Index != 10 || br[1].Index != 20 || br[2].Index != 30 {
		t.Errorf("planted 3 breaches (10, 20, 30), found %v", br)
	}
	if j := stream.Jitter(planted, 1); j != 7*time.Millisecond {
		t.Errorf("worst jitter %v, want 7ms", j)
	}
	// By media time.
	if br := stream.CheckIsochronous(units, 4*time.Millisecond, 10*time.Millisecond, true, 0); len(br) != 0 {
		t.Errorf("by media time: %v", br)
	}
}

// QOS-05's checker passes two streams played out in step and catches one that
// drifts.
func TestCheckSkewPlanted(t *testing.T) {
	mk := func(n int, period, offset int64) []stream.Unit {
		u := make([]stream.Unit, n)
		for i := range u {
			u[i] = stream.Unit{Seq: uint64(i), PTS: int64(i) * period, Released: int64(i)*period + offset}
		}
		return u
	}
	audio, video := mk(100, 20*ms, 40*ms), mk(50, 40*ms, 43*ms)
	skew, br := stream.CheckSkew([][]stream.Unit{audio, video}, 0, 10*time.Millisecond)
	if len(br) != 0 || skew != 3*time.Millisecond {
		t.Fatalf("in step: skew %v, %v", skew, br)
	}
	video[25].Released += 20 * ms
	skew, br = stream.CheckSkew([][]stream.Unit{audio, video}, 0, 10*time.Millisecond)
	if len(br) == 0 || skew != 23*time.Millisecond || br[0].Rule != "QOS-05" {
		t.Errorf("planted 23 ms of skew: %v, %v", skew, br)
	}
}

// QOS-04's checker passes an honest controller's log and catches planted lies.
func TestCheckAdmissionPlanted(t *testing.T) {
	a := stream.NewAdmission(1000)
	spec := func(rate, min float64) stream.FlowSpec { return stream.FlowSpec{Rate: rate, MinRate: min, Depth: 100} }
	for _, s := range []stream.FlowSpec{spec(400, 0), spec(400, 0), spec(400, 100), spec(400, 0)} {
		a.Decide(s)
	}
	a.Release("release", spec(400, 0))
	a.Renegotiate(spec(200, 0), spec(100, 0))
	log := a.Log()
	if br := stream.CheckAdmission(log, 1000); len(br) != 0 {
		t.Fatalf("honest log: %v", br)
	}
	if log[2].Verdict != stream.Counter || log[2].Granted != 200 || log[3].Verdict != stream.Refuse {
		t.Errorf("decisions %+v", log)
	}
	for name, plant := range map[string]func(l []stream.AdmissionEvent){
		"over capacity":   func(l []stream.AdmissionEvent) { l[1].Granted, l[1].Admitted = 700, 1100 },
		"refused granted": func(l []stream.AdmissionEvent) { l[3].Granted = 50 },
		"counter ≥ offer": func(l []stream.AdmissionEvent) { l[2].Granted = 400 },
		"total drifts":    func(l []stream.AdmissionEvent) { l[4].Admitted = 900 },
	} {
		l := append([]stream.AdmissionEvent(nil), log...)
		plant(l)
		if br := stream.CheckAdmission(l, 1000); len(br) == 0 {
			t.Errorf("%s: not caught", name)
		}
	}
}

// The token bucket itself: full at the start, tokens at the rate, never above the
// depth.
func TestTokenBucket(t *testing.T) {
	b := stream.NewTokenBucket(1000, 500, 0) // 1 B per ms
	if !b.Take(500, 0) || b.Take(1, 0) {
		t.Fatal("a full bucket of 500 did not give exactly 500")
	}
	if w := b.Wait(100, 0); w < 100*time.Millisecond || w > 100*time.Millisecond+time.Microsecond {
		t.Errorf("wait for 100 B at 1 B/ms: %v", w)
	}
	if !b.Take(100, 100*ms) || b.Take(1, 100*ms) {
		t.Error("100 ms gave other than 100 tokens")
	}
	if !b.Take(500, 10_000*ms) || b.Take(1, 10_000*ms) {
		t.Error("the bucket held other than its depth after a long idle")
	}
	b.Set(2000, 100, 10_000*ms)
	if !b.Take(100, 10_050*ms) || b.Take(1, 10_050*ms) {
		t.Error("after Set, 50 ms at 2 B/ms is 100 tokens (the depth)")
	}
}

// An admission controller of no capacity refuses everything.
func TestAdmissionNoCapacity(t *testing.T) {
	for _, c := range []float64{0, -1, math.NaN()} {
		if d := stream.NewAdmission(c).Decide(stream.FlowSpec{Rate: 1, MinRate: 1e-9, Depth: 100}); d.Verdict != stream.Refuse {
			t.Errorf("capacity %v: %v", c, d.Verdict)
		}
	}
}
