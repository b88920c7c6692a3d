package bench

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipclab/ipclab/cmd/ipcbench/internal/report"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/stream"
)

// TestQoSSchedule: the workload is the seed's, offers bursts at ten times the
// contract, and offers about 0.91 of the contract in the long run.
func TestQoSSchedule(t *testing.T) {
	a := qosSchedule(1, 1000, 3*time.Second, 0)
	assert.Equal(t, a, qosSchedule(1, 1000, 3*time.Second, 0), "one seed, one schedule")
	assert.NotEqual(t, a, qosSchedule(2, 1000, 3*time.Second, 0))
	require.NotEmpty(t, a)
	assert.Zero(t, a[0], "the stream starts with a burst")
	assert.Less(t, a[len(a)-1], 3*time.Second)
	assert.Len(t, qosSchedule(1, 1000, time.Hour, 123), 123, "a number of units ignores the duration")

	long := qosSchedule(7, 1000, 120*time.Second, 0)
	rate := float64(len(long)) / 120
	assert.InDelta(t, 1000*10.0/11, rate, 60, "offered on average: 10/110 of the peak")
	peak := 0
	for i := 1; i < len(long); i++ {
		gap := long[i] - long[i-1]
		if gap <= 100*time.Microsecond {
			peak++
		} else {
			assert.GreaterOrEqual(t, gap, 40*time.Millisecond, "a pause is at least 40 ms")
			assert.LessOrEqual(t, gap, 160*time.Millisecond+100*time.Microsecond, "and at most 160 ms")
		}
	}
	assert.Greater(t, peak, len(long)*9/10, "most units are offered within bursts, at 10× the contract")
}

func TestPlanQoS(t *testing.T) {
	cases, skipped, err := Plan(Config{Scenario: ScenarioQoS, Sizes: []int{256}, Primitives: []string{"pipe", "udp", "unix-seqpacket", "shm", "sysv-msg"}})
	require.NoError(t, err)
	var got []string
	for _, c := range cases {
		got = append(got, c.Params.Primitive+"/"+c.Params.Impl+"/"+c.Params.Wait.String())
	}
	assert.Equal(t, []string{"pipe/ipclab/auto", "udp/ipclab/auto", "unix-seqpacket/ipclab/auto", "shm/ipclab/kernel"}, got,
		"ipclab only, in the transport's first wait strategy")
	assert.ErrorContains(t, skipped["sysv-msg"], "does not run scenario qos")

	cases, _, err = Plan(Config{Scenario: ScenarioQoS, Sizes: []int{256}, Primitives: []string{"pipe"}, Waits: []ipc.WaitStrategy{ipc.WaitPoller, ipc.WaitKernel}})
	require.NoError(t, err)
	assert.Len(t, cases, 2, "the wait strategies asked for")

	_, _, err = Plan(Config{Scenario: ScenarioQoS, Sizes: []int{256}, Primitives: []string{"pipe"}, Impls: []string{ImplRaw}})
	assert.ErrorContains(t, err, "no raw implementation in scenario qos")

	// A unit carries its header: the largest UDP payload less 40 bytes.
	_, _, err = Plan(Config{Scenario: ScenarioQoS, Sizes: []int{65507 - stream.HeaderSize + 1}, Primitives: []string{"udp"}})
	assert.ErrorContains(t, err, "40-byte header")
	_, _, err = Plan(Config{Scenario: ScenarioQoS, Sizes: []int{65507 - stream.HeaderSize}, Primitives: []string{"udp"}})
	assert.NoError(t, err)
	_, _, err = Plan(Config{Scenario: ScenarioQoS, Sizes: []int{stream.MaxPayload + 1}, Primitives: []string{"pipe"}})
	assert.ErrorContains(t, err, "largest payload of a stream unit")

	_, _, err = Plan(Config{Scenario: ScenarioQoS, Sizes: []int{256}, Primitives: []string{"pipe"}, QoS: QoSConfig{MinDelay: 30 * time.Millisecond, MaxDelay: 20 * time.Millisecond}})
	assert.ErrorContains(t, err, "play-out delays")
	_, _, err = Plan(Config{Scenario: ScenarioQoS, Sizes: []int{256}, Primitives: []string{"pipe"},
		Probes: func() (TracerCloser, error) { return nil, nil }})
	assert.ErrorContains(t, err, "not traced")
}

// TestQoSAcrossProcesses runs the qos scenario between this process and a peer over a
// byte stream (pipe) and a datagram socket (udp), and checks that the stream kept its
// contract: the send times replay through the token bucket without a breach, their
// largest burst is within the depth and their long-run rate within the rate, and
// the sink reported a series.
func TestQoSAcrossProcesses(t *testing.T) {
	cfg := Config{Scenario: ScenarioQoS, Sizes: []int{256}, Primitives: []string{"pipe", "udp"}, Duration: time.Second, Pin: PinSame}
	results, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	require.Len(t, results, 2)
	sched := qosSchedule(qosDefaultSeed, qosDefaultRate, time.Second, 0)
	for _, r := range results {
		t.Run(r.Primitive, func(t *testing.T) {
			q := r.QoS
			require.NotNil(t, q)
			t.Logf("%s: sent %d, lost %d, late %d, beyond %d, play-out breaches %d; rate ×%.3f, max burst %.1f of %d bytes; delay p50 %v p99 %v, jitter p99 %v; %d intervals",
				r.Primitive, q.Sent, q.Lost, q.Late, q.Beyond, q.PlayoutBreaches, q.RateRatio, q.MaxBurst, q.Depth,
				time.Duration(q.DelayP50Ns), time.Duration(q.DelayP99Ns), time.Duration(q.JitterP99Ns), len(q.Series))
			require.NoError(t, report.File{Results: []report.Result{r}}.Validate())
			unit := stream.WireSize(256)
			assert.Equal(t, unit, q.UnitBytes)
			assert.Equal(t, stream.RateFor(1000, 256), q.ContractRate)
			assert.Equal(t, 8*unit, q.Depth)
			assert.Equal(t, len(sched), q.Sent, "the source sends the seed's schedule")
			assert.Equal(t, q.Sent, q.Received+q.Lost)
			if r.Primitive == "pipe" {
				assert.Zero(t, q.Lost, "a pipe loses nothing")
			}
			assert.LessOrEqual(t, q.Lost, q.Sent/10)
			assert.Equal(t, q.Received, r.Iterations)

			// The shaper: the contract holds on the send times.
			assert.Zero(t, q.BucketBreaches, "a replay of the token bucket over the send times")
			assert.LessOrEqual(t, q.MaxBurst, float64(q.Depth)+1e-6)
			assert.Greater(t, q.MaxBurst, float64(q.Depth)/2, "the bursts use the depth")
			// At most the rate plus one depth over the span; at least a quarter of the
			// rate (the workload offers 0.85 of it over this second, and a loaded
			// machine can hold the source back).
			assert.LessOrEqual(t, q.RateRatio, 1+float64(q.Depth)/(q.ContractRate*q.SpanNs/1e9)+0.01)
			assert.GreaterOrEqual(t, q.RateRatio, 0.25)
			// A unit that arrives just before the maximum delay, or a sink held off
			// the CPU, is played out after it without being late: rare, not never.
			assert.LessOrEqual(t, q.PlayoutBreaches, q.Sent/20, "units not late are played out within the delay bounds")

			// Isochronous play-out: nothing before the minimum delay.
			assert.GreaterOrEqual(t, q.DelayP50Ns, q.MinDelayNs)
			assert.GreaterOrEqual(t, r.RTT.Min, q.MinDelayNs, "RTT holds the units' delays")
			assert.GreaterOrEqual(t, q.DelayP99Ns, q.DelayP50Ns)

			// A series of the sink's 100 ms intervals over the second.
			require.GreaterOrEqual(t, len(q.Series), 8)
			units := 0
			for _, p := range q.Series {
				units += p.Units
				// An interval plays out at most the rate and the depth (1.08× the
				// rate), and what a sink held off the CPU plays out late: loosely.
				assert.LessOrEqual(t, p.Rate, 3*q.ContractRate, "interval ending at %.2fs", p.TS)
				if p.Units > 0 {
					assert.GreaterOrEqual(t, p.DelayP50Ns, q.MinDelayNs)
				}
			}
			assert.Equal(t, q.Received, units, "every unit played out is in one interval")
		})
	}
}

// TestQoSRounds: rounds merge their streams.
func TestQoSRounds(t *testing.T) {
	cfg := Config{Scenario: ScenarioQoS, Sizes: []int{64}, Primitives: []string{"unix-seqpacket"}, Iters: 100, Rounds: 2, Pin: PinSame}
	rs, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	require.Len(t, rs, 1)
	q := rs[0].QoS
	require.NotNil(t, q)
	assert.Equal(t, 2, q.Rounds)
	assert.Equal(t, 200, q.Sent)
	assert.Equal(t, 200, q.Received)
	assert.Equal(t, 200, rs[0].Iterations)
	assert.Zero(t, q.BucketBreaches)
	assert.Equal(t, rs[0].RTT.P50, q.DelayP50Ns, "merged delays come from the merged distribution")
	require.NoError(t, report.File{Results: rs}.Validate())
}
