//go:build linux

package ebpf_test

import (
	"math"
	"strings"
	"testing"

	"github.com/ipclab/ipclab/ebpf"
)

// TestSampling drives C = 4n pipe calls (n round trips: 2n writes, 2n reads) with
// SampleEvery 10 and checks that about C/10 are traced, within five binomial standard
// deviations, and that the unsampled calls left nothing behind: every traced call is
// whole (a time in call, an on-CPU time, its 64 bytes, the parts adding up) and there is
// no other row.
func TestSampling(t *testing.T) {
	requireProbes(t)
	const n, size, every = 5000, 64, 10
	for _, mode := range []ebpf.Attach{ebpf.AttachTPBTF, ebpf.AttachRawTP, ebpf.AttachTracepoint} {
		t.Run(mode.String(), func(t *testing.T) {
			if mode == ebpf.AttachTracepoint {
				ensureTracefs(t)
			}
			ping, pong := startPingPong(t, n, size)
			r := trace(t, ebpf.Options{Attach: mode, SampleEvery: every}, nil, ping, pong)
			if r.SampleEvery != every {
				t.Errorf("report's SampleEvery %d, want %d", r.SampleEvery, every)
			}
			const c = 4 * n
			p := 1.0 / every
			want, sd := c*p, math.Sqrt(c*p*(1-p))
			var got uint64
			for i := range r.Rows {
				row := &r.Rows[i]
				switch {
				case row.Primitive == "ipctest-sync", row.Primitive == "epoll":
					continue // the helpers' start signal and Go runtime, sampled or not
				case row.Primitive != "pipe" || (row.Op != "read" && row.Op != "write"):
					t.Errorf("unexpected row %s %s (%d calls)", row.Primitive, row.Op, row.Calls)
					continue
				}
				got += row.Calls
				if row.Errors != 0 || row.EAGAIN != 0 {
					t.Errorf("%s %s: %d errors, %d EAGAIN", row.Primitive, row.Op, row.Errors, row.EAGAIN)
				}
				if row.Bytes != row.Calls*size || row.Hist[ebpf.MetricBytes].Buckets[bucketOf(size)] != row.Calls {
					t.Errorf("%s %s: %d calls, %d bytes, byte sizes %v", row.Primitive, row.Op, row.Calls, row.Bytes,
						row.Hist[ebpf.MetricBytes].Buckets[:10])
				}
				if n := row.Hist[ebpf.MetricReadyWait].Count(); n != 0 {
					t.Errorf("%s %s: %d readiness waits on blocking pipes", row.Primitive, row.Op, n)
				}
				checkConsistent(t, row)
			}
			if d := math.Abs(float64(got) - want); d > 5*sd {
				t.Errorf("sampled %d of %d calls, want %.0f ± %.0f (5 sd)", got, c, want, 5*sd)
			}
			t.Logf("sampled %d of %d calls 1 in %d (expected %.0f, sd %.1f)", got, c, every, want, sd)
			var b strings.Builder
			if err := ebpf.WriteText(&b, r); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), "sampled: 1 call in 10") {
				t.Errorf("text report does not say it is sampled:\n%s", b.String()[:200])
			}
		})
	}
}
