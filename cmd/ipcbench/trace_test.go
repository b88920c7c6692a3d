package main

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/pipe"
)

// pipe-loop moves 64-byte messages through a pipe until it is killed.
var _ = ipctest.Helper("pipe-loop", func([]string) int {
	r, w, err := pipe.New(pipe.WithWait(ipc.WaitKernel))
	if err != nil {
		return 1
	}
	buf := make([]byte, 64)
	ipctest.Signal()
	for {
		if _, err := w.Write(buf); err != nil {
			return 1
		}
		if _, err := r.ReadFull(context.Background(), buf); err != nil {
			return 1
		}
		time.Sleep(100 * time.Microsecond)
	}
})

func TestTrace(t *testing.T) {
	ipctest.RequireRoot(t)
	p := ipctest.Start(t, "pipe-loop")
	p.Await()
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"trace", "-p", strconv.Itoa(p.Pid()), "-interval", "200ms", "-count", "2", "-format", "table"}, &out, &errOut)
	if err != nil && bytes.Contains(errOut.Bytes(), []byte("CAP_BPF")) {
		t.Skip("eBPF probes need CAP_BPF and CAP_PERFMON:", err)
	}
	require.NoError(t, err, errOut.String())
	assert.Contains(t, errOut.String(), "tracing pid "+strconv.Itoa(p.Pid()))
	assert.Contains(t, out.String(), "pipe read")
	assert.Contains(t, out.String(), "pipe write")
	assert.Contains(t, out.String(), "=== total")

	_, _, err = runCLI(t, "trace")
	var ue usageError
	assert.ErrorAs(t, err, &ue, "trace without -p")
	_, _, err = runCLI(t, "trace", "-p", "1", "-format", "xml")
	assert.ErrorAs(t, err, &ue)
	_, _, err = runCLI(t, "trace", "-p", "1", "-sample", "-1")
	assert.ErrorAs(t, err, &ue)

	// Sampled, the text output says so.
	out.Reset()
	errOut.Reset()
	err = run(context.Background(), []string{"trace", "-p", strconv.Itoa(p.Pid()), "-interval", "200ms", "-count", "1", "-sample", "4"}, &out, &errOut)
	require.NoError(t, err, errOut.String())
	assert.Contains(t, out.String(), "sampled: 1 call in 4")
	assert.Contains(t, out.String(), "pipe write")
}

// alive-check exits 0 when alive reports that the pid in its argument exists.
var _ = ipctest.Helper("alive-check", func(args []string) int {
	pid, err := strconv.Atoi(args[0])
	if err != nil || !alive(pid) {
		return 1
	}
	return 0
})

// TestAliveOtherUser: a process of another user exists although signal 0 cannot reach
// it (EPERM): trace must not take it for gone.
func TestAliveOtherUser(t *testing.T) {
	ipctest.RequireRoot(t)
	ipctest.Start(t, "alive-check", ipctest.AsUser(ipctest.Nobody), ipctest.WithArgs(strconv.Itoa(os.Getpid()))).MustSucceed()
	assert.False(t, alive(procInt(t, "/proc/sys/kernel/pid_max")+1))
}

// TestTracePrometheus: `trace -format prometheus` prints one exposition of the totals
// that the Prometheus project's text parser reads, with a pipe histogram whose le
// buckets add up to its count and to the calls counted.
func TestTracePrometheus(t *testing.T) {
	ipctest.RequireRoot(t)
	p := ipctest.Start(t, "pipe-loop")
	p.Await()
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"trace", "-p", strconv.Itoa(p.Pid()), "-interval", "200ms", "-count", "2", "-format", "prometheus"}, &out, &errOut)
	if err != nil && bytes.Contains(errOut.Bytes(), []byte("CAP_BPF")) {
		t.Skip("eBPF probes need CAP_BPF and CAP_PERFMON:", err)
	}
	require.NoError(t, err, errOut.String())
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(out.Bytes()))
	require.NoError(t, err, out.String())
	series := func(family string) *dto.Metric {
		t.Helper()
		for _, m := range fams[family].GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["primitive"] == "pipe" && l["op"] == "read" {
				return m
			}
		}
		t.Fatalf("%s: no pipe read series in\n%s", family, out.String())
		return nil
	}
	calls := series("ipclab_ebpf_calls_total").GetCounter().GetValue()
	assert.Positive(t, calls)
	h := series("ipclab_ebpf_call_seconds").GetHistogram()
	assert.Equal(t, calls, float64(h.GetSampleCount()), "one time in call per call")
	b := h.GetBucket()
	require.NotEmpty(t, b)
	assert.True(t, math.IsInf(b[len(b)-1].GetUpperBound(), 1), "the last bucket is +Inf")
	assert.Equal(t, h.GetSampleCount(), b[len(b)-1].GetCumulativeCount())
	for k := 1; k < len(b); k++ {
		assert.LessOrEqual(t, b[k-1].GetCumulativeCount(), b[k].GetCumulativeCount(), "cumulative")
		if k < len(b)-1 {
			assert.InEpsilon(t, 2*b[k-1].GetUpperBound()+1e-9, b[k].GetUpperBound(), 1e-9, "log2 buckets: le doubles (plus 1 ns)")
		}
	}
}

// TestTraceHTML: `trace -interval -count 3 -html FILE` writes a heatmap of pipe reads
// and writes, a column per interval, whose cells hold every call it counted.
func TestTraceHTML(t *testing.T) {
	ipctest.RequireRoot(t)
	p := ipctest.Start(t, "pipe-loop")
	p.Await()
	file := filepath.Join(t.TempDir(), "heat.html")
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"trace", "-p", strconv.Itoa(p.Pid()), "-interval", "200ms", "-count", "3", "-format", "table", "-html", file}, &out, &errOut)
	if err != nil && bytes.Contains(errOut.Bytes(), []byte("CAP_BPF")) {
		t.Skip("eBPF probes need CAP_BPF and CAP_PERFMON:", err)
	}
	require.NoError(t, err, errOut.String())
	page, err := os.ReadFile(file)
	require.NoError(t, err)
	for _, op := range []string{"read", "write"} {
		re := regexp.MustCompile(`(?s)<svg class="chart" id="heatmap-\d+" role="img" aria-label="pipe ` + op + `, time in call over time \(eBPF\): (\d+) values in 3 intervals of 200ms".*?</svg>`)
		m := re.FindSubmatch(page)
		require.NotNil(t, m, "no heatmap of pipe %s in\n%s", op, page)
		total, _ := strconv.Atoi(string(m[1]))
		assert.Positive(t, total)
		sum := 0
		xs := map[string]bool{}
		for _, c := range regexp.MustCompile(`<rect class="mark" x="([^"]*)"[^>]*><title>[^<]*: (\d+)</title>`).FindAllSubmatch(m[0], -1) {
			n, _ := strconv.Atoi(string(c[2]))
			sum += n
			xs[string(c[1])] = true
		}
		assert.Equal(t, total, sum, "pipe %s: the cells hold every call", op)
		assert.LessOrEqual(t, len(xs), 3, "a column per interval")
	}

	_, _, err = runCLI(t, "trace", "-p", strconv.Itoa(p.Pid()), "-interval", "0", "-html", file)
	var ue usageError
	assert.ErrorAs(t, err, &ue, "-html without intervals")
}
