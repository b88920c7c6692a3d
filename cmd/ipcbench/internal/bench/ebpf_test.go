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
