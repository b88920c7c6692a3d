package bench

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/ipclab/ipclab/ebpf"
	"github.com/ipclab/ipclab/internal/report"
)

// Tracer is what the engine needs from eBPF probes (*ebpf.Probes has it).
type Tracer interface {
	RegisterFD(pid, fd int, primitive string) error
	UnregisterFD(pid, fd int) error
	Reset() error
	Snapshot() (*ebpf.Report, error)
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
// mean bytes per call for the size sweep.
func breakdown(rep *ebpf.Report) (*report.Breakdown, float64) {
	var calls, bytes, ok uint64
	var sum [ebpf.NumMetrics]uint64
	for i := range rep.Rows {
		r := &rep.Rows[i]
		if !traceRow(r) {
			continue
		}
		calls += r.Hist[ebpf.MetricCall].Count()
		ok += r.Calls - min(r.Calls, r.Errors)
		bytes += r.Bytes
		for m := range sum {
			sum[m] += r.Hist[m].Sum
		}
	}
	if calls == 0 {
		return nil, 0
	}
	c := float64(calls)
	b := &report.Breakdown{
		SyscallNs:    float64(sum[ebpf.MetricCall]) / c,
		OnCPUNs:      float64(sum[ebpf.MetricOnCPU]) / c,
		OffCPUPeerNs: float64(sum[ebpf.MetricOffPeer]) / c,
		OffCPURunqNs: float64(sum[ebpf.MetricOffCPU]) / c,
	}
	return b, float64(bytes) / float64(max(ok, 1))
}

// Trace measures again, with tracer attached, every case of cfg that Run measured
// into results (untraced: the probes must not be attached yet when Run runs), and
// adds to each result what the probes saw: the per-call breakdown of system-call
// time, the probes' overhead (mean round trip traced over untraced, from the same
// invocation), and, over the sizes of a size sweep, the fit of on-CPU time per call
// to fixed + per-byte cost. The latencies reported stay the untraced ones.
func Trace(ctx context.Context, cfg Config, tracer Tracer, results []report.Result) error {
	cases, _, err := Plan(cfg)
	if err != nil {
		return err
	}
	pw := progress(cfg)
	traced := cfg
	traced.Tracer = tracer
	type key struct {
		prim, impl, wait, scenario string
	}
	points := map[key][]ebpf.CostPoint{}
	for i := range results {
		r := &results[i]
		var c *Case
		for j := range cases {
			p := cases[j].Params
			if p.Primitive == r.Primitive && p.Impl == r.Impl && p.Wait.String() == r.Wait && p.Size == r.Size {
				c = &cases[j]
				break
			}
		}
		if c == nil {
			continue
		}
		fmt.Fprintf(pw, "[traced %d/%d] %s %s/%s %s size=%s ... ", i+1, len(results), r.Scenario, r.Primitive, r.Impl, r.Wait, FormatSize(r.Size))
		tr, err := runCase(ctx, traced, *c)
		if err != nil {
			fmt.Fprintf(pw, "FAILED: %v\n", err)
			continue
		}
		if tr.EBPF == nil {
			fmt.Fprintln(pw, "no system calls seen")
			continue
		}
		e := tr.EBPF
		if r.RTT.Mean > 0 {
			e.OverheadRatio = tr.RTT.Mean / r.RTT.Mean
		}
		r.EBPF = e
		fmt.Fprintf(pw, "overhead %.2fx\n", e.OverheadRatio)
		k := key{r.Primitive, r.Impl, r.Wait, r.Scenario}
		points[k] = append(points[k], ebpf.CostPoint{Bytes: tr.bytesPerCall, Ns: e.Breakdown.OnCPUNs})
	}
	for i := range results {
		r := &results[i]
		if r.EBPF == nil {
			continue
		}
		pts := points[key{r.Primitive, r.Impl, r.Wait, r.Scenario}]
		if cost, err := ebpf.FitCost(pts); err == nil {
			r.EBPF.CopyCostNsPerByte = max(cost.PerByteNs, 0)
			r.EBPF.FixedCostNs = max(cost.FixedNs, 0)
		}
	}
	return nil
}

// tracedResult is a report.Result with what went into it: the latency histogram, the
// time the timed iterations took, and what the probes saw beyond the breakdown.
type tracedResult struct {
	report.Result
	hist         *Histogram
	elapsed      time.Duration
	bytesPerCall float64
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
	fmt.Fprintln(w, "\nwhere the time of the primitive's system calls goes (eBPF, mean per call, measured in a second, traced run):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "primitive\timpl\twait\tsize\tin call\ton-CPU\tblocked on peer\twaiting for CPU\tcopy ns/B\tfixed ns\tprobe overhead\t")
	for _, r := range results {
		e := r.EBPF
		if e == nil || e.Breakdown == nil {
			continue
		}
		b := e.Breakdown
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.3f\t%.0f\t%.2fx\t\n", r.Primitive, r.Impl, r.Wait, FormatSize(r.Size),
			formatNs(b.SyscallNs), formatNs(b.OnCPUNs), formatNs(b.OffCPUPeerNs), formatNs(b.OffCPURunqNs),
			e.CopyCostNsPerByte, e.FixedCostNs, e.OverheadRatio)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "Latencies above are from the untraced run; the overhead column is traced/untraced mean round trip.\n"+
		"Poller-mode waits happen in epoll_wait on another thread and are not in these figures; use --wait kernel to see blocking inside the call.")
	return err
}
