package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipclab/ipclab/cmd/ipcbench/internal/report"
	"github.com/ipclab/ipclab/ebpf"
	"github.com/ipclab/ipclab/ipc"
)

// passLog records, for every progress line of a case, whether probes were attached
// while it was written.
type passLog struct {
	mu       sync.Mutex
	attached bool
	events   []string
}

func (l *passLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := string(p)
	if strings.Contains(s, "pingpong pipe/") {
		state := "untraced"
		if l.attached {
			state = "traced"
		}
		label := "untraced"
		if strings.Contains(s, " traced [") {
			label = "traced"
		}
		l.events = append(l.events, label+" case, probes "+state)
	}
	return len(p), nil
}

func (l *passLog) set(attached bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.attached = attached
	if attached {
		l.events = append(l.events, "attach")
	} else {
		l.events = append(l.events, "detach")
	}
}

type loggedProbes struct {
	*ebpf.Probes
	log *passLog
}

func (p loggedProbes) Close() error {
	p.log.set(false)
	return p.Probes.Close()
}

// TestEBPFOverheadInterleaved (issue 14 §6, --ebpf probe overhead) runs a plan with
// real probes and checks that traced and untraced rounds interleave, with the probes
// attached exactly for the traced passes, alternating which comes first; that the
// overhead is the median of the rounds' p50 ratios, reported with their spread, in
// JSON and in the table.
func TestEBPFOverheadInterleaved(t *testing.T) {
	opts := ebpf.Options{PIDs: []int{os.Getpid()}, FollowForks: true}
	probe, err := ebpf.Load(opts)
	if err != nil {
		t.Skipf("eBPF probes unavailable: %v", err)
	}
	probe.Close()
	log := &passLog{}
	cfg := Config{Scenario: ScenarioPingPong, Sizes: []int{64}, Primitives: []string{"pipe"}, Impls: []string{ImplRaw},
		Iters: 300, Rounds: 2, Warmup: time.Millisecond, Pin: PinSame, Progress: log,
		Probes: func() (TracerCloser, error) {
			p, err := ebpf.Load(opts)
			if err != nil {
				return nil, err
			}
			log.set(true)
			return loggedProbes{p, log}, nil
		}}
	rs, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	// Rounds is raised to MinTracedRounds; odd rounds start untraced, even ones traced.
	want := []string{
		"untraced case, probes untraced", "attach", "traced case, probes traced", "detach",
		"attach", "traced case, probes traced", "detach", "untraced case, probes untraced",
		"untraced case, probes untraced", "attach", "traced case, probes traced", "detach",
	}
	assert.Equal(t, want, log.events)
	require.Len(t, rs, 1)
	r := rs[0]
	assert.Equal(t, MinTracedRounds*300, r.Iterations, "the untraced rounds only")
	e := r.EBPF
	require.NotNil(t, e)
	require.NotNil(t, e.Breakdown)
	assert.Equal(t, MinTracedRounds, e.OverheadRounds)
	assert.Positive(t, e.OverheadMin)
	assert.LessOrEqual(t, e.OverheadMin, e.OverheadRatio, "the median lies within the spread")
	assert.LessOrEqual(t, e.OverheadRatio, e.OverheadMax)

	js, err := json.Marshal(report.File{Results: rs})
	require.NoError(t, err)
	for _, k := range []string{`"overhead_ratio":`, `"overhead_min":`, `"overhead_max":`, `"overhead_rounds":3`} {
		assert.Contains(t, string(js), k)
	}
	var tbl bytes.Buffer
	require.NoError(t, WriteEBPFTable(&tbl, rs))
	assert.Contains(t, tbl.String(), "spread over rounds")
	assert.Contains(t, tbl.String(), " in 3")
}

// TestBreakdownReadyWait checks that the breakdown carries the readiness wait of the
// measured primitive's rows, per call, and not that of the control pipe or epoll.
func TestBreakdownReadyWait(t *testing.T) {
	row := func(prim, op string, calls uint64, callNs, waitNs []uint64) ebpf.Row {
		r := ebpf.Row{Primitive: prim, Op: op, Calls: calls}
		for _, v := range callNs {
			r.Hist[ebpf.MetricCall].Buckets[1]++
			r.Hist[ebpf.MetricCall].Sum += v
		}
		for _, v := range waitNs {
			r.Hist[ebpf.MetricReadyWait].Buckets[10]++
			r.Hist[ebpf.MetricReadyWait].Sum += v
		}
		return r
	}
	rep := &ebpf.Report{Rows: []ebpf.Row{
		row("pipe", "read", 4, []uint64{100, 100, 100, 100}, []uint64{3000, 1000}),
		row("pipe", "write", 2, []uint64{200, 200}, nil),
		row(controlLabel, "read", 1, []uint64{50}, []uint64{1 << 20}),
		row("epoll", "epoll_wait", 1, []uint64{5000}, nil),
	}}
	b, calls, _ := breakdown(rep)
	require.NotNil(t, b)
	assert.Equal(t, 6.0, calls)
	assert.InDelta(t, 4000.0/6, b.ReadyWaitNs, 1e-9)
	assert.Equal(t, uint64(2), b.ReadyWaits)
	assert.InDelta(t, 800.0/6, b.SyscallNs, 1e-9, "the wait is not in the call time")

	var tbl bytes.Buffer
	require.NoError(t, WriteEBPFTable(&tbl, []report.Result{
		{Primitive: "pipe", Impl: "std", Wait: "poller", Size: 64, EBPF: &report.EBPF{Probes: true, Breakdown: b}},
	}))
	assert.Contains(t, tbl.String(), "readiness wait")
	assert.Contains(t, tbl.String(), formatNs(4000.0/6))
}

// TestEBPFReadyWaitPoller runs a pipe ping-pong through Go's poller and blocking in
// the kernel, traced, and checks where each waits: the poller row in readiness waits
// after EAGAIN (in JSON and in the table), the kernel row inside the call and never
// for readiness.
func TestEBPFReadyWaitPoller(t *testing.T) {
	opts := ebpf.Options{PIDs: []int{os.Getpid()}, FollowForks: true}
	probe, err := ebpf.Load(opts)
	if err != nil {
		t.Skipf("eBPF probes unavailable: %v", err)
	}
	probe.Close()
	cfg := Config{Scenario: ScenarioPingPong, Sizes: []int{64}, Primitives: []string{"pipe"}, Impls: []string{"ipclab"},
		Waits: []ipc.WaitStrategy{ipc.WaitPoller, ipc.WaitKernel}, Iters: 300, Warmup: time.Millisecond, Pin: PinNone,
		Probes: func() (TracerCloser, error) { return ebpf.Load(opts) }}
	rs, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	got := map[string]*report.Breakdown{}
	for _, r := range rs {
		require.NotNil(t, r.EBPF, r.Wait)
		require.NotNil(t, r.EBPF.Breakdown, r.Wait)
		got[r.Wait] = r.EBPF.Breakdown
	}
	// The histograms behind the breakdown go into the JSON too, merged over the
	// traced rounds: the readiness waits' count is the breakdown's.
	for _, r := range rs {
		hs := map[string]report.Histogram{}
		for _, h := range r.EBPF.Histograms {
			hs[h.Metric] = h
		}
		assert.Positive(t, hs["call"].Count, r.Wait)
		assert.Equal(t, hs["call"].Count, hs["oncpu"].Count, r.Wait)
		assert.Equal(t, got[r.Wait].ReadyWaits, hs["ready_wait"].Count, r.Wait)
		assert.LessOrEqual(t, hs["call"].P50, hs["call"].P99, r.Wait)
		// A column per traced round, together the merged histogram.
		h := r.EBPF.RoundHeatmap
		require.NotNil(t, h, r.Wait)
		require.Len(t, h.Columns, MinTracedRounds, r.Wait)
		var sum uint64
		for _, col := range h.Columns {
			for k, c := range col {
				sum += c
				assert.LessOrEqual(t, c, hs["call"].Buckets[k], r.Wait)
			}
		}
		assert.Equal(t, hs["call"].Count, sum, r.Wait)
	}
	poller, kernel := got["poller"], got["kernel"]
	require.NotNil(t, poller)
	require.NotNil(t, kernel)
	assert.Positive(t, poller.ReadyWaits, "a poller ping-pong reads before the peer writes: EAGAIN, then a readiness wait")
	assert.Positive(t, poller.ReadyWaitNs)
	assert.Zero(t, kernel.ReadyWaits, "kernel-wait reads block inside the call")
	assert.Positive(t, kernel.OffCPUPeerNs)

	js, err := json.Marshal(report.File{Results: rs})
	require.NoError(t, err)
	assert.Contains(t, string(js), `"ready_wait_ns":`)
	var tbl bytes.Buffer
	require.NoError(t, WriteEBPFTable(&tbl, rs))
	assert.Contains(t, tbl.String(), "readiness wait")
	assert.Contains(t, tbl.String(), formatNs(poller.ReadyWaitNs))
}
