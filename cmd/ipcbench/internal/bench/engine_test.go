package bench

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipclab/ipclab/internal/ipctest"
)

func TestMain(m *testing.M) {
	PeerMain() // the engine re-executes this test binary as the peer
	ipctest.Main(m)
}

// TestEveryTransportAcrossProcesses runs each registered transport in every
// implementation and wait strategy, in both scenarios, between this process and a
// re-executed peer, with a fixed small number of iterations.
func TestEveryTransportAcrossProcesses(t *testing.T) {
	for _, scenario := range Scenarios {
		cfg := Config{Scenario: scenario, Sizes: []int{64, 4096}, Iters: 50, Warmup: time.Millisecond, Pin: PinSame, Timeout: time.Minute}
		cases, skipped, err := Plan(cfg)
		require.NoError(t, err)
		for name, why := range skipped {
			t.Logf("%s skipped: %v", name, why)
		}
		for _, c := range cases {
			name := strings.Join([]string{scenario, c.Params.Primitive, c.Params.Impl, c.Params.Wait.String(), FormatSize(c.Params.Size)}, "/")
			t.Run(name, func(t *testing.T) {
				r, err := RunCase(context.Background(), cfg, c)
				require.NoError(t, err)
				if scenario == ScenarioFanIn {
					// Whole batches from every sender.
					assert.Positive(t, r.Iterations)
					assert.Zero(t, r.Iterations%DefaultPeers)
				} else {
					assert.Equal(t, 50, r.Iterations)
				}
				assert.Greater(t, r.RTT.Min, 0.0)
				assert.LessOrEqual(t, r.RTT.Min, r.RTT.P50)
				assert.LessOrEqual(t, r.RTT.P50, r.RTT.P99)
				assert.LessOrEqual(t, r.RTT.P99, r.RTT.Max)
				assert.Greater(t, r.MsgsPerSec, 0.0)
				if payloadFree(c.Transport) {
					assert.Zero(t, r.BytesPerSec, "a signal moves no payload")
				} else {
					assert.Greater(t, r.BytesPerSec, 0.0)
				}
				assert.Equal(t, PinSame, r.Pin)
			})
		}
	}
}

func TestPlan(t *testing.T) {
	_, _, err := Plan(Config{Scenario: "nope", Sizes: []int{64}})
	assert.ErrorContains(t, err, "unknown scenario")
	_, _, err = Plan(Config{Scenario: ScenarioPingPong, Sizes: []int{64}, Primitives: []string{"carrier-pigeon"}})
	assert.ErrorContains(t, err, "unknown primitive")
	_, _, err = Plan(Config{Scenario: ScenarioPingPong, Sizes: []int{0}, Primitives: []string{"pipe"}})
	assert.ErrorContains(t, err, "positive")
	cases, _, err := Plan(Config{Scenario: ScenarioPingPong, Sizes: []int{64}, Primitives: []string{"pipe"}})
	require.NoError(t, err)
	var got []string
	for _, c := range cases {
		got = append(got, c.Params.Impl+"/"+c.Params.Wait.String())
	}
	assert.Equal(t, []string{"ipclab/auto", "ipclab/poller", "ipclab/kernel", "std/poller", "raw/kernel"}, got)

	// std only where the primitive has one: asked for by name, the others say why.
	cases, skipped, err := Plan(Config{Scenario: ScenarioPingPong, Sizes: []int{64}, Impls: []string{ImplStd},
		Primitives: []string{"pipe", "unix-stream", "udp", "sysv-msg"}})
	require.NoError(t, err)
	got = nil
	for _, c := range cases {
		got = append(got, c.Params.Primitive+"/"+c.Params.Impl+"/"+c.Params.Wait.String())
	}
	assert.Equal(t, []string{"pipe/std/poller", "unix-stream/std/poller", "udp/std/poller"}, got)
	assert.ErrorContains(t, skipped["sysv-msg/std"], "no std implementation")
	// std does not pass descriptors: a plan with nothing left in it says why.
	_, _, err = Plan(Config{Scenario: ScenarioFdPass, Sizes: []int{64}, Impls: []string{ImplStd}, Primitives: []string{"unix-stream"}})
	assert.ErrorContains(t, err, "no std implementation in scenario fdpass")
	_, _, err = Plan(Config{Scenario: ScenarioPingPong, Sizes: []int{64}, Impls: []string{"fast"}})
	assert.ErrorContains(t, err, "unknown implementation")
}

func TestHistogram(t *testing.T) {
	var h Histogram
	for i := 1; i <= 10000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	l := h.Latency()
	assert.Equal(t, 1000.0, l.Min)
	assert.Equal(t, 10000000.0, l.Max)
	assert.InDelta(t, 5000500, l.Mean, 1)
	for _, c := range []struct{ q, want float64 }{{0.5, 5e6}, {0.9, 9e6}, {0.99, 9.9e6}, {0.999, 9.99e6}} {
		got := h.Quantile(c.q)
		assert.InDelta(t, c.want, got, c.want/float64(int(1)<<subBits), "q%v", c.q)
	}
	// Every bucket boundary maps back to its bucket.
	for b := 0; b < (64-subBits)<<subBits; b++ {
		lo := bucketLow(b)
		require.Equal(t, b, bucketOf(lo), "bucket %d low %d", b, lo)
		if b > 0 {
			require.Equal(t, b-1, bucketOf(lo-1))
		}
	}
	assert.Equal(t, 0.0, (&Histogram{}).Quantile(0.5))
	assert.False(t, math.IsNaN(h.Quantile(1)))
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	d := time.Duration(1)
	for b.Loop() {
		h.Record(d)
		d = d*3 + 7
	}
}

func TestSizes(t *testing.T) {
	for in, want := range map[string]int{"64": 64, "4K": 4096, "64KiB": 65536, "1M": 1 << 20, "2kb": 2048} {
		got, err := ParseSize(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
		back, _ := ParseSize(FormatSize(got))
		assert.Equal(t, got, back)
	}
	for _, bad := range []string{"", "x", "-1", "0", "1.5K"} {
		_, err := ParseSize(bad)
		assert.Error(t, err, bad)
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b, all Histogram
	for i := 1; i <= 1000; i++ {
		d := time.Duration(i*i) * time.Nanosecond
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(&b)
	assert.Equal(t, all.Latency(), a.Latency())
	var empty Histogram
	a.Merge(&empty)
	assert.Equal(t, all.Latency(), a.Latency())
}

func TestRounds(t *testing.T) {
	cfg := Config{Scenario: ScenarioPingPong, Sizes: []int{64}, Primitives: []string{"pipe"}, Impls: []string{ImplRaw},
		Iters: 40, Rounds: 3, Warmup: time.Millisecond, Pin: PinSame}
	rs, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	require.Len(t, rs, 1)
	assert.Equal(t, 120, rs[0].Iterations, "three rounds of 40 merged")
}

// TestLargeMessageBudget: a message whose round trip takes seconds gets a timed phase
// of at least 10 iterations that fits in about twice the Duration, and a timeout that
// leaves room for the warm-up and that phase even at 20 MB/s.
func TestLargeMessageBudget(t *testing.T) {
	assert.Equal(t, 100, minIters(time.Second, time.Microsecond))
	assert.Equal(t, 10, minIters(time.Second, 3*time.Second))
	assert.Equal(t, 40, minIters(time.Second, 50*time.Millisecond))
	cfg := Config{Warmup: 200 * time.Millisecond, Duration: time.Second}
	size := 256 << 20
	// 10 timed and up to 3 warm-up round trips of 2×256 MiB at 20 MB/s.
	need := time.Duration(13 * 2 * float64(size) / 20e6 * float64(time.Second))
	if got := defaultTimeout(cfg, size); got < need {
		t.Errorf("timeout %v for 256 MiB messages, want at least %v", got, need)
	}
	if got := defaultTimeout(cfg, 64); got > 37*time.Second {
		t.Errorf("timeout %v for 64 B messages", got)
	}
}
