package report

import (
	"fmt"
	"math"
	"math/bits"
	"strings"
)

// tracedCase is one case (a Key) that some runs traced, with each run's result (nil
// where a run did not trace it).
type tracedCase struct {
	key     Key
	results []*Result
}

// tracedCases returns the cases with eBPF histograms in any run, in the order they
// first appear.
func tracedCases(runs []Run) []tracedCase {
	var out []tracedCase
	index := map[Key]int{}
	for i, run := range runs {
		for j := range run.Results {
			r := &run.Results[j]
			if r.EBPF == nil || len(r.EBPF.Histograms) == 0 {
				continue
			}
			n, ok := index[r.Key()]
			if !ok {
				n = len(out)
				index[r.Key()] = n
				out = append(out, tracedCase{key: r.Key(), results: make([]*Result, len(runs))})
			}
			out[n].results[i] = r
		}
	}
	return out
}

// findHist returns r's histogram of metric, or nil.
func findHist(r *Result, metric string) *Histogram {
	if r == nil || r.EBPF == nil {
		return nil
	}
	for i := range r.EBPF.Histograms {
		if r.EBPF.Histograms[i].Metric == metric {
			return &r.EBPF.Histograms[i]
		}
	}
	return nil
}

// bucketOf returns the log2 bucket that holds v.
func bucketOf(v float64) int {
	if !(v >= 1) {
		return 0
	}
	return max(bits.Len64(uint64(math.Min(v, math.MaxInt64)))-1, 0)
}

// histLabel formats a bucket's lower bound for an axis: a duration or a size.
func histLabel(unit string, k int) string {
	lo, _ := BucketRange(k)
	switch {
	case unit == "bytes":
		return formatSize(int(lo))
	case lo < 1000:
		return fmt.Sprintf("%.0fns", lo)
	case lo < 1e6:
		return fmt.Sprintf("%.3gµs", lo/1e3)
	case lo < 1e9:
		return fmt.Sprintf("%.3gms", lo/1e6)
	}
	return fmt.Sprintf("%.3gs", lo/1e9)
}

// histValue formats a value of the metric's unit.
func histValue(unit string, v float64) string {
	if unit == "bytes" {
		return formatSize(int(v))
	}
	return formatNs(v)
}

// histChart draws one case's distributions: a panel per metric, the runs' bars side
// by side in each log2 bucket, as shares of the run's values so that runs of
// different lengths compare, with each run's p50 and p99 marked.
func histChart(id string, c tracedCase, names []string) string {
	const width, panelW, panelH, cols = 940.0, 450.0, 120.0, 2
	k := c.key
	title := fmt.Sprintf("%s %s, %s: distributions of its system calls (eBPF, log2 buckets)", k.Series(), formatSize(k.Size), k.Scenario)
	s := &svgDoc{w: width}
	s.text(8, 18, "start", "ctitle", title)
	var legend []string
	var runIdx []int
	for i, r := range c.results {
		if r != nil {
			legend = append(legend, names[i])
			runIdx = append(runIdx, i)
		}
	}
	top := s.legend(8, 40, width-8, legend, func(i int) string { return color(runIdx[i]) }, nil) + 8
	rowH := panelH + 64
	for p, m := range HistogramMetrics {
		x0 := 8 + float64(p%cols)*(panelW+24)
		y0 := top + float64(p/cols)*rowH
		s.histPanel(x0+44, y0, panelW-44, panelH, m.Metric, m.Title, c, names, runIdx)
	}
	s.h = top + float64((len(HistogramMetrics)+cols-1)/cols)*rowH
	return s.finish(id, title)
}

// histPanel draws one metric's panel with its plot area at (x, y), w × h.
func (s *svgDoc) histPanel(x, y, w, h float64, metric, title string, c tracedCase, names []string, runIdx []int) {
	s.text(x-44, y+12, "start", "label", title)
	y += 24
	kmin, kmax, unit := math.MaxInt, -1, "ns"
	share := 0.0
	for _, i := range runIdx {
		hh := findHist(c.results[i], metric)
		if hh == nil || hh.Count == 0 {
			continue
		}
		unit = hh.Unit
		for b, n := range hh.Buckets {
			if n > 0 {
				kmin, kmax = min(kmin, b), max(kmax, b)
				share = math.Max(share, float64(n)/float64(hh.Count))
			}
		}
	}
	s.add(`<rect x="%s" y="%s" width="%s" height="%s" class="frame"/>`+"\n", f1(x), f1(y), f1(w), f1(h))
	if kmax < 0 {
		s.text(x+w/2, y+h/2+4, "middle", "tick", "none recorded")
		return
	}
	ys := newLinScale(share*100, y+h, y)
	for _, t := range ys.ticks() {
		py := ys.pos(t)
		s.add(`<line x1="%s" y1="%s" x2="%s" y2="%s" class="grid"/>`+"\n", f1(x), f1(py), f1(x+w), f1(py))
		s.text(x-4, py+4, "end", "tick", fmt.Sprintf("%g%%", t))
	}
	n := kmax - kmin + 1
	slot := w / float64(n)
	barW := slot * 0.8 / float64(len(runIdx))
	every := max(1, int(math.Ceil(float64(n)*34/w)))
	for b := kmin; b <= kmax; b++ {
		sx := x + float64(b-kmin)*slot
		if (b-kmin)%every == 0 {
			s.text(sx, y+h+13, "middle", "tick", histLabel(unit, b))
		}
	}
	for j, i := range runIdx {
		hh := findHist(c.results[i], metric)
		if hh == nil || hh.Count == 0 {
			continue
		}
		for b, cnt := range hh.Buckets {
			if cnt == 0 {
				continue
			}
			lo, hi := BucketRange(b)
			frac := float64(cnt) / float64(hh.Count)
			bx := x + float64(b-kmin)*slot + slot*0.1 + float64(j)*barW
			by := ys.pos(frac * 100)
			s.add(`<rect class="mark" data-series="%d" x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s</title></rect>`+"\n",
				j, f1(bx), f1(by), f1(math.Max(barW, 0.5)), f1(math.Max(y+h-by, 0.5)), color(i),
				esc(fmt.Sprintf("%s, %s %s–%s: %d of %d (%.1f%%)", names[i], title, histValue(unit, lo), histValue(unit, hi), cnt, hh.Count, frac*100)))
		}
		for qi, q := range []string{"p50", "p99"} {
			v := []float64{hh.P50, hh.P99}[qi]
			px := x + float64(bucketOf(v)-kmin+1)*slot
			ly := y + 10 + float64(j)*11
			if qi == 1 {
				ly += float64(len(runIdx)) * 11
			}
			s.add(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1.5" stroke-dasharray="4 2" data-series="%d" class="quantile"><title>%s</title></line>`+"\n",
				f1(px), f1(y), f1(px), f1(y+h), color(i), j, esc(fmt.Sprintf("%s, %s %s ≤ %s", names[i], title, q, histValue(unit, v))))
			s.add(`<text x="%s" y="%s" text-anchor="end" class="tick" data-series="%d" fill="%s">%s</text>`+"\n", f1(px-2), f1(ly), j, color(i), q)
		}
	}
	axis := "time, log2 buckets"
	if unit == "bytes" {
		axis = "bytes, log2 buckets"
	}
	s.text(x+w/2, y+h+28, "middle", "axis-label", axis+"; bar height: share of the run's "+plural(len(runIdx), "values", "values, run by run"))
}

// histSection draws the histogram chart of every traced case.
func histSection(runs []Run, names []string) string {
	cases := tracedCases(runs)
	if len(cases) == 0 {
		return "<p class=\"none\">No eBPF histograms in these runs (run ipcbench with --ebpf as root on a kernel that allows it).</p>\n"
	}
	var b strings.Builder
	b.WriteString(`<p>For every case traced with <code>--ebpf</code>, the log2 distributions the probes recorded for the primitive's system calls over the traced rounds: time in the call, its on-CPU part, the time blocked waiting for the peer, the time waiting for a CPU, the readiness wait after EAGAIN (poller mode; outside the call) and the bytes per call. Bars are each run's share of its values per bucket, so runs of different lengths share the axes; dashed lines mark each run's p50 and p99 (the upper bound of the bucket that holds them: a log2 histogram knows no more). The times were taken with the probes attached and include their cost (see the overhead above). Under each, for runs of several rounds, a heatmap of the time in call round by round (a column per traced round, count as colour): how the distribution moved during the run.</p>` + "\n")
	for n, c := range cases {
		b.WriteString(histChart(fmt.Sprintf("hist-%d", n), c, names))
		for i, r := range c.results {
			if r != nil && r.EBPF.RoundHeatmap != nil {
				h := *r.EBPF.RoundHeatmap
				h.Title = fmt.Sprintf("%s %s %s", names[i], c.key.Series(), formatSize(c.key.Size))
				b.WriteString(heatmapChart(fmt.Sprintf("round-heatmap-%d-%d", n, i), h))
			}
		}
	}
	return b.String()
}
