package bench

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/ipclab/ipclab/cmd/ipcbench/internal/report"
	"github.com/ipclab/ipclab/ebpf"
	"github.com/ipclab/ipclab/internal/table"
)

// Tracer is what the engine needs from eBPF probes (*ebpf.Probes has it).
type Tracer interface {
	RegisterFD(pid, fd int, primitive string) error
	UnregisterFD(pid, fd int) error
	Reset() error
	Snapshot() (*ebpf.Report, error)
}

// TracerCloser is a Tracer whose Close detaches its probes (*ebpf.Probes is one).
type TracerCloser interface {
	Tracer
	Close() error
}

// controlLabel marks the engine's own control pipe, so that its traffic is not
// counted as the primitive's.
const controlLabel = "control"

// traceRow reports whether a probe row belongs to the measured primitive: not the
// engine's control pipe and not the runtime's epoll waits (which the probes cannot
// attribute to a descriptor; they are shown separately by `ipcbench trace`).
func traceRow(r *ebpf.Row) bool {
	return r.Primitive != controlLabel && r.Primitive != "epoll"
}

// breakdown turns a snapshot of the timed phase into per-call means, and returns the
// number of calls and the mean bytes per call for the size sweep.
func breakdown(rep *ebpf.Report) (*report.Breakdown, float64, float64) {
	var calls, bytes, ok, waits uint64
	var sum [ebpf.NumMetrics]uint64
	for i := range rep.Rows {
		r := &rep.Rows[i]
		if !traceRow(r) {
			continue
		}
		calls += r.Hist[ebpf.MetricCall].Count()
		ok += r.Calls - min(r.Calls, r.Errors)
		bytes += r.Bytes
		waits += r.Hist[ebpf.MetricReadyWait].Count()
		for m := range sum {
			sum[m] += r.Hist[m].Sum
		}
	}
	if calls == 0 {
		return nil, 0, 0
	}
	c := float64(calls)
	b := &report.Breakdown{
		SyscallNs:    float64(sum[ebpf.MetricCall]) / c,
		OnCPUNs:      float64(sum[ebpf.MetricOnCPU]) / c,
		OffCPUPeerNs: float64(sum[ebpf.MetricOffPeer]) / c,
		OffCPURunqNs: float64(sum[ebpf.MetricOffCPU]) / c,
		ReadyWaitNs:  float64(sum[ebpf.MetricReadyWait]) / c,
		ReadyWaits:   waits,
	}
	return b, c, float64(bytes) / float64(max(ok, 1))
}

// caseHists adds up the histograms of the rows that belong to the measured primitive.
func caseHists(rep *ebpf.Report) (h [ebpf.NumMetrics]ebpf.Histogram) {
	for i := range rep.Rows {
		r := &rep.Rows[i]
		if !traceRow(r) {
			continue
		}
		for m := range h {
			h[m].Add(&r.Hist[m])
		}
	}
	return h
}

// histograms turns the probes' histograms into the report's, in the report's order,
// leaving out the empty ones and each one's trailing empty buckets.
func histograms(h *[ebpf.NumMetrics]ebpf.Histogram) []report.Histogram {
	var out []report.Histogram
	for _, hm := range report.HistogramMetrics {
		m := ebpf.Metric(0)
		for m < ebpf.NumMetrics && m.String() != hm.Metric {
			m++
		}
		if m == ebpf.NumMetrics || h[m].Count() == 0 {
			continue
		}
		src := &h[m]
		n := len(src.Buckets)
		for n > 0 && src.Buckets[n-1] == 0 {
			n--
		}
		out = append(out, report.Histogram{
			Metric: hm.Metric, Unit: m.Unit(), Buckets: slices.Clone(src.Buckets[:n]),
			Count: src.Count(), Sum: src.Sum,
			P50: float64(src.Quantile(0.5)), P99: float64(src.Quantile(0.99)),
		})
	}
	return out
}

// callBuckets returns the time-in-call buckets of hs without the trailing empty
// ones, as a new slice.
func callBuckets(hs *[ebpf.NumMetrics]ebpf.Histogram) []uint64 {
	h := &hs[ebpf.MetricCall]
	n := len(h.Buckets)
	for n > 0 && h.Buckets[n-1] == 0 {
		n--
	}
	return slices.Clone(h.Buckets[:n])
}

// tracing gathers what Run's traced passes saw, per case: the traced results merged
// over the rounds, and each round's overhead (traced over untraced p50 of that
// round). The overhead reported is the median of the rounds' ratios, with their
// lowest and highest as its spread.
type tracing struct {
	traced []*tracedResult
	ratios [][]float64
}

func newTracing(n int) *tracing {
	return &tracing{traced: make([]*tracedResult, n), ratios: make([][]float64, n)}
}

// add merges a traced result of case i: its histogram, and its breakdown and bytes
// per call weighted by the calls the probes counted.
func (t *tracing) add(i int, r tracedResult) {
	if r.EBPF == nil || r.EBPF.Breakdown == nil {
		return
	}
	m := t.traced[i]
	if m == nil {
		t.traced[i] = &r
		return
	}
	m.hist.Merge(r.hist)
	m.elapsed += r.elapsed
	m.finish(m.Iterations + r.Iterations)
	a, b := m.EBPF.Breakdown, r.EBPF.Breakdown
	wa, wb := m.calls/(m.calls+r.calls), r.calls/(m.calls+r.calls)
	a.SyscallNs = a.SyscallNs*wa + b.SyscallNs*wb
	a.OnCPUNs = a.OnCPUNs*wa + b.OnCPUNs*wb
	a.OffCPUPeerNs = a.OffCPUPeerNs*wa + b.OffCPUPeerNs*wb
	a.OffCPURunqNs = a.OffCPURunqNs*wa + b.OffCPURunqNs*wb
	a.ReadyWaitNs = a.ReadyWaitNs*wa + b.ReadyWaitNs*wb
	a.ReadyWaits += b.ReadyWaits
	m.bytesPerCall = m.bytesPerCall*wa + r.bytesPerCall*wb
	for k := range m.probeHists {
		m.probeHists[k].Add(&r.probeHists[k])
	}
	m.roundCols = append(m.roundCols, r.roundCols...)
	m.calls += r.calls
}

// pair records one round's overhead for every case measured both ways in it.
func (t *tracing) pair(untraced, traced []float64) {
	for i := range untraced {
		if untraced[i] > 0 && traced[i] > 0 {
			t.ratios[i] = append(t.ratios[i], traced[i]/untraced[i])
		}
	}
}

// attach gives each untraced result its traced breakdown and overhead, and, over the
// sizes of a size sweep, the fit of on-CPU time per call to fixed + per-byte cost.
func (t *tracing) attach(results []*tracedResult) {
	type key struct {
		prim, impl, wait, scenario string
	}
	points := map[key][]ebpf.CostPoint{}
	for i, r := range results {
		tr := t.traced[i]
		if r == nil || tr == nil {
			continue
		}
		e := tr.EBPF
		if rs := slices.Sorted(slices.Values(t.ratios[i])); len(rs) > 0 {
			// The median of the rounds' ratios, not the ratio of the merged p50s:
			// it always lies within the spread reported beside it.
			e.OverheadRatio = (rs[(len(rs)-1)/2] + rs[len(rs)/2]) / 2
			e.OverheadMin, e.OverheadMax, e.OverheadRounds = rs[0], rs[len(rs)-1], len(rs)
		}
		e.Histograms = histograms(&tr.probeHists)
		if len(tr.roundCols) > 1 {
			e.RoundHeatmap = &report.Heatmap{
				Title:  fmt.Sprintf("%s %s", r.Key().Series(), FormatSize(r.Size)),
				Metric: ebpf.MetricCall.String(), Unit: ebpf.MetricCall.Unit(), Rounds: true, Columns: tr.roundCols,
			}
		}
		r.EBPF = e
		k := key{r.Primitive, r.Impl, r.Wait, r.Scenario}
		points[k] = append(points[k], ebpf.CostPoint{Bytes: tr.bytesPerCall, Ns: e.Breakdown.OnCPUNs})
	}
	for _, r := range results {
		if r == nil || r.EBPF == nil {
			continue
		}
		if cost, err := ebpf.FitCost(points[key{r.Primitive, r.Impl, r.Wait, r.Scenario}]); err == nil {
			r.EBPF.CopyCostNsPerByte = max(cost.PerByteNs, 0)
			r.EBPF.FixedCostNs = max(cost.FixedNs, 0)
		}
	}
}

// tracedResult is a report.Result with what went into it: the latency histogram, the
// time the timed iterations took, and what the probes saw beyond the breakdown.
type tracedResult struct {
	report.Result
	hist         *Histogram
	elapsed      time.Duration
	calls        float64 // system calls the probes attributed to the primitive
	bytesPerCall float64
	probeHists   [ebpf.NumMetrics]ebpf.Histogram // of the calls attributed to the primitive
	roundCols    [][]uint64                      // each traced round's time-in-call buckets
}

// WriteEBPFTable prints the breakdown of the results that have one.
func WriteEBPFTable(w io.Writer, results []report.Result) error {
	any := false
	for _, r := range results {
		any = any || r.EBPF != nil
	}
	if !any {
		return nil
	}
	fmt.Fprintln(w, "\nwhere the time of the primitive's system calls goes (eBPF, mean per call, from the traced rounds):")
	t := table.Table{Right: table.RightFrom(0), Indent: "  "}
	t.Add("primitive", "impl", "wait", "size", "in call", "on-CPU", "blocked on peer", "waiting for CPU", "readiness wait", "copy ns/B", "fixed ns", "probe overhead (p50)", "spread over rounds")
	for _, r := range results {
		e := r.EBPF
		if e == nil || e.Breakdown == nil {
			continue
		}
		b := e.Breakdown
		spread := ""
		if e.OverheadRounds > 0 {
			spread = fmt.Sprintf("%.2fx-%.2fx in %d", e.OverheadMin, e.OverheadMax, e.OverheadRounds)
		}
		t.Add(r.Primitive, r.Impl, r.Wait, FormatSize(r.Size),
			formatNs(b.SyscallNs), formatNs(b.OnCPUNs), formatNs(b.OffCPUPeerNs), formatNs(b.OffCPURunqNs), readyWait(b),
			fmt.Sprintf("%.3f", e.CopyCostNsPerByte), fmt.Sprintf("%.0f", e.FixedCostNs), fmt.Sprintf("%.2fx", e.OverheadRatio), spread)
	}
	if err := t.WriteText(w); err != nil {
		return err
	}
	for _, r := range results {
		if e := r.EBPF; e != nil && e.ProbeRunNs > 0 {
			fmt.Fprintf(w, "The probes' own cost, measured at load (BPF run-time statistics over 64 B pipe writes and reads): %.0f ns a run,\n"+
				"%.1f runs and %.0f ns per traced system call; the times above include it (not subtracted).\n", e.ProbeRunNs, e.ProbeRunsPerCall, e.ProbeNsPerCall)
			break
		}
	}
	_, err := fmt.Fprintln(w, "Latencies above are from the untraced rounds. Every round measured each case untraced and traced (probes attached only\n"+
		"for the traced pass; the order alternates by round): probe overhead is the median over the rounds of traced/untraced p50\n"+
		"within a round, and the spread is the lowest and highest of those ratios.\n"+
		"Readiness wait (poller mode): after a call returned EAGAIN, the time until the next successful call on the same\n"+
		"descriptor and operation, per call. It is spent outside the system call (in epoll_wait, often on another thread),\n"+
		"so it is not part of \"in call\"; it is the poller's counterpart of \"blocked on peer\". \"-\": the calls never waited\n"+
		"for readiness (kernel-wait rows block inside the call instead).")
	return err
}

// readyWait formats a breakdown's readiness wait for the table: "-" when the calls
// never found their descriptor unready.
func readyWait(b *report.Breakdown) string {
	if b.ReadyWaits == 0 {
		return "-"
	}
	return formatNs(b.ReadyWaitNs)
}
