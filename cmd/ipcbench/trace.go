package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/cmd/ipcbench/internal/report"
	"github.com/ipclab/ipclab/ebpf"
)

// trace attaches the probes to a running process (and the children it forks) and
// prints what its IPC system calls did, per interval and once more, cumulatively, when
// interrupted or when the process exits.
func trace(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	pid := fs.Int("p", 0, "the process to trace (required)")
	interval := fs.Duration("interval", time.Second, "print what happened in each interval of this length (0: only at the end)")
	format := fs.String("format", "text", "text (histograms), table (side by side), json or prometheus (one exposition of the totals at the end, -interval and -count only say when that is)")
	sample := fs.Int("sample", 0, "trace 1 system call in N, chosen at random in the kernel (0 or 1: every call); counts and histograms are then of the sampled calls")
	count := fs.Int("count", 0, "stop after this many intervals (0: until interrupted or the process exits)")
	htmlFile := fs.String("html", "", "also write a latency heatmap per primitive and operation (time × time-in-call bucket, count as colour) to this HTML file when the trace ends; needs -interval")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: ipcbench trace -p PID [-interval 1s] [-count N] [-sample N] [-format text|table|json|prometheus] [-html FILE]")
		fs.PrintDefaults()
	}
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usageError{fmt.Errorf("unexpected arguments: %q", fs.Args())}
	case *pid <= 0:
		return usageError{fmt.Errorf("trace needs -p PID")}
	case *interval < 0:
		return usageError{fmt.Errorf("-interval %v: must not be negative", *interval)}
	case *sample < 0:
		return usageError{fmt.Errorf("-sample %d: must not be negative", *sample)}
	case *count < 0:
		return usageError{fmt.Errorf("-count %d: must not be negative", *count)}
	case *htmlFile != "" && *interval == 0:
		return usageError{fmt.Errorf("-html needs -interval: a heatmap has one column per interval")}
	case !alive(*pid):
		return usageError{fmt.Errorf("-p %d: no such process", *pid)}
	}
	render, err := renderer(*format)
	if err != nil {
		return usageError{err}
	}
	totalOnly := *format == "prometheus"
	probes, err := ebpf.Load(ebpf.Options{PIDs: []int{*pid}, FollowForks: true, SampleEvery: *sample})
	if err != nil {
		return err
	}
	defer probes.Close()
	fmt.Fprintf(stderr, "tracing pid %d and its children (%s); Ctrl-C to stop\n", *pid, probes.Attach())

	first, err := probes.Snapshot()
	if err != nil {
		return err
	}
	prev := first
	var tick <-chan time.Time
	if *interval > 0 {
		t := time.NewTicker(*interval)
		defer t.Stop()
		tick = t.C
	}
	heat := newHeatmaps(first.Taken, *interval)
	if *htmlFile != "" {
		defer func() {
			if werr := heat.write(*htmlFile); werr != nil && err == nil {
				err = werr
			}
		}()
	}
	gone := processGone(ctx, *pid)
	for n := 0; *count == 0 || n < *count; n++ {
		select {
		case <-ctx.Done():
			return final(stdout, probes, first, render, totalOnly)
		case <-gone:
			fmt.Fprintf(stderr, "pid %d has exited\n", *pid)
			return final(stdout, probes, first, render, totalOnly)
		case <-tick:
		}
		now, err := probes.Snapshot()
		if err != nil {
			return err
		}
		heat.add(now.Sub(prev))
		if !totalOnly {
			if err := render(stdout, now.Sub(prev)); err != nil {
				return err
			}
		}
		prev = now
	}
	return final(stdout, probes, first, render, totalOnly)
}

// final writes the totals since first. Unless totalOnly (the Prometheus exposition,
// which must be one document with each family once), it heads them "=== total" to set
// them apart from the intervals above.
func final(w io.Writer, probes *ebpf.Probes, first *ebpf.Report, render func(io.Writer, *ebpf.Report) error, totalOnly bool) error {
	now, err := probes.Snapshot()
	if err != nil {
		return err
	}
	if !totalOnly {
		fmt.Fprintln(w, "\n=== total")
	}
	return render(w, now.Sub(first))
}

func renderer(format string) (func(io.Writer, *ebpf.Report) error, error) {
	switch format {
	case "text":
		return ebpf.WriteText, nil
	case "table":
		return func(w io.Writer, r *ebpf.Report) error { return ebpf.WriteTable(w, r.Rows) }, nil
	case "json":
		return ebpf.WriteJSON, nil
	case "prometheus":
		return ebpf.WritePrometheus, nil
	}
	return nil, fmt.Errorf("unknown -format %q (want text, table, json or prometheus)", format)
}

// processGone is closed when pid no longer exists.
func processGone(ctx context.Context, pid int) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			if !alive(pid) {
				return
			}
		}
	}()
	return ch
}

// alive reports whether pid exists (a process of another user, which signal 0 may
// not reach, exists too).
func alive(pid int) bool {
	err := syscallKill(pid)
	return err == nil || errors.Is(err, unix.EPERM)
}

// heatmaps collects, interval by interval, the time-in-call histogram of every
// primitive and operation a trace sees, for `trace -html`.
type heatmaps struct {
	start    time.Time
	interval time.Duration
	n        int                   // intervals seen
	cols     map[string][][]uint64 // "primitive op": one column per interval
	order    []string
}

func newHeatmaps(start time.Time, interval time.Duration) *heatmaps {
	return &heatmaps{start: start, interval: interval, cols: map[string][][]uint64{}}
}

// add appends one interval's report: a column to every heatmap, empty where a row
// had no calls.
func (h *heatmaps) add(r *ebpf.Report) {
	for i := range r.Rows {
		row := &r.Rows[i]
		key := row.Primitive + " " + row.Op
		if _, ok := h.cols[key]; !ok {
			h.order = append(h.order, key)
			h.cols[key] = make([][]uint64, h.n)
		}
		hist := &row.Hist[ebpf.MetricCall]
		n := len(hist.Buckets)
		for n > 0 && hist.Buckets[n-1] == 0 {
			n--
		}
		h.cols[key] = append(h.cols[key], append([]uint64(nil), hist.Buckets[:n]...))
	}
	h.n++
	for _, k := range h.order {
		if len(h.cols[k]) < h.n {
			h.cols[k] = append(h.cols[k], nil)
		}
	}
}

// write writes the heatmaps as a self-contained HTML page to path, replacing it.
func (h *heatmaps) write(path string) error {
	if h.n == 0 {
		return fmt.Errorf("-html %s: the trace ended before its first interval; nothing to draw", path)
	}
	page := report.Page{}
	for _, k := range h.order {
		page.Heatmaps = append(page.Heatmaps, report.Heatmap{
			Title: k, Metric: ebpf.MetricCall.String(), Unit: ebpf.MetricCall.Unit(),
			Start: h.start, Interval: h.interval, Columns: h.cols[k],
		})
	}
	if len(page.Heatmaps) == 0 {
		return fmt.Errorf("-html %s: no IPC system calls traced; nothing to draw", path)
	}
	var b bytes.Buffer
	if err := page.WriteHTML(&b); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}
