package report

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Heatmap is a latency distribution over time: for each interval of a trace, the
// log2 histogram of one metric of one primitive and operation. Drawn with time across,
// the buckets up and the count as colour, the form Brendan Gregg made standard for
// latency.
type Heatmap struct {
	// Title names what is drawn, e.g. "pipe read".
	Title string `json:"title"`
	// Metric and Unit are as in Histogram ("call", "ns").
	Metric string `json:"metric"`
	Unit   string `json:"unit"`
	// Start is when the first interval began; Interval is each one's length.
	Start    time.Time     `json:"start"`
	Interval time.Duration `json:"interval_ns"`
	// Rounds, when true, says that the columns are not intervals of equal length
	// but the traced rounds of an ipcbench run, in the order they ran (Start and
	// Interval are then unused).
	Rounds bool `json:"rounds,omitempty"`
	// Columns[i][k] counts the values in log2 bucket k (as in Histogram) recorded in
	// interval i; trailing empty buckets may be left out.
	Columns [][]uint64 `json:"columns"`
}

// validate says what is wrong with h ("" when nothing is).
func (h Heatmap) validate() string {
	switch {
	case h.Interval <= 0 && !h.Rounds:
		return fmt.Sprintf("heatmap %q: interval %v, must be positive", h.Title, h.Interval)
	case len(h.Columns) == 0:
		return fmt.Sprintf("heatmap %q: no intervals", h.Title)
	}
	for i, c := range h.Columns {
		if len(c) > 64 {
			return fmt.Sprintf("heatmap %q: interval %d has %d buckets, at most 64", h.Title, i, len(c))
		}
	}
	return ""
}

// heatColor maps a share of the largest count (0 < f ≤ 1) to a colour from pale
// yellow to dark red.
func heatColor(f float64) string {
	lo := [3]float64{255, 237, 160}
	hi := [3]float64{189, 0, 38}
	var c [3]int
	for i := range c {
		c[i] = int(math.Round(lo[i] + f*(hi[i]-lo[i])))
	}
	return fmt.Sprintf("#%02x%02x%02x", c[0], c[1], c[2])
}

// heatmapChart draws one heatmap: a cell per interval and non-empty bucket, its
// colour the count on a log scale (so that rare slow calls still show).
func heatmapChart(id string, h Heatmap) string {
	const width, left, cellH = 940.0, 70.0, 14.0
	kmin, kmax := math.MaxInt, -1
	var peak, total uint64
	for _, col := range h.Columns {
		for k, c := range col {
			if c > 0 {
				kmin, kmax = min(kmin, k), max(kmax, k)
				peak = max(peak, c)
				total += c
			}
		}
	}
	title := fmt.Sprintf("%s, %s over time (eBPF): %d values in %d intervals of %v", h.Title, metricTitle(h.Metric), total, len(h.Columns), h.Interval)
	if h.Rounds {
		title = fmt.Sprintf("%s, %s round by round (eBPF): %d values in %d traced rounds", h.Title, metricTitle(h.Metric), total, len(h.Columns))
	}
	s := &svgDoc{w: width}
	s.text(8, 18, "start", "ctitle", title)
	top := 40.0
	if kmax < 0 {
		s.text(width/2, top+20, "middle", "tick", "nothing recorded")
		s.h = top + 40
		return s.finish(id, title)
	}
	rows := kmax - kmin + 1
	plotW := width - left - 16
	cellW := plotW / float64(len(h.Columns))
	bottom := top + float64(rows)*cellH
	s.add(`<rect x="%s" y="%s" width="%s" height="%s" class="frame"/>`+"\n", f1(left), f1(top), f1(plotW), f1(bottom-top))
	every := max(1, int(math.Ceil(12/cellH)))
	for k := kmin; k <= kmax; k++ {
		if (k-kmin)%every == 0 {
			s.text(left-4, bottom-float64(k-kmin)*cellH-3, "end", "tick", histLabel(h.Unit, k))
		}
	}
	logPeak := math.Log1p(float64(peak))
	for i, col := range h.Columns {
		for k, c := range col {
			if c == 0 {
				continue
			}
			lo, hi := BucketRange(k)
			t0 := time.Duration(i) * h.Interval
			when := fmt.Sprintf("%v–%v", t0, t0+h.Interval)
			if h.Rounds {
				when = fmt.Sprintf("traced round %d", i+1)
			}
			s.add(`<rect class="mark" x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s</title></rect>`+"\n",
				f1(left+float64(i)*cellW), f1(bottom-float64(k-kmin+1)*cellH), f1(math.Max(cellW, 0.5)), f1(cellH), heatColor(math.Log1p(float64(c))/logPeak),
				esc(fmt.Sprintf("%s: %s–%s: %d", when, histValue(h.Unit, lo), histValue(h.Unit, hi), c)))
		}
	}
	ticks := max(1, len(h.Columns)/8)
	if h.Rounds {
		for i := 0; i < len(h.Columns); i += ticks {
			s.text(left+(float64(i)+0.5)*cellW, bottom+14, "middle", "tick", fmt.Sprint(i+1))
		}
		s.text(left+plotW/2, bottom+30, "middle", "axis-label", "traced round, in the order the rounds ran (each: the case's timed phase with the probes attached)")
	} else {
		for i := 0; i <= len(h.Columns); i += ticks {
			s.text(left+float64(i)*cellW, bottom+14, "middle", "tick", (time.Duration(i) * h.Interval).String())
		}
		s.text(left+plotW/2, bottom+30, "middle", "axis-label", "time since the trace began")
	}
	// The colour scale: ten steps from 1 to the largest count, logarithmic.
	ly := bottom + 42
	s.text(left, ly+10, "end", "tick", "1")
	for j := 0; j < 10; j++ {
		s.add(`<rect x="%s" y="%s" width="16" height="12" fill="%s"/>`+"\n", f1(left+4+float64(j)*16), f1(ly), heatColor(float64(j+1)/10))
	}
	s.text(left+172, ly+10, "start", "tick", fmt.Sprintf("%d per cell (colour: count, log scale)", peak))
	s.h = ly + 24
	return s.finish(id, title)
}

// metricTitle returns the title of a histogram metric, or the metric itself.
func metricTitle(metric string) string {
	for _, m := range HistogramMetrics {
		if m.Metric == metric {
			return m.Title
		}
	}
	return metric
}

// heatmapSection draws every heatmap.
func heatmapSection(hs []Heatmap) string {
	var b strings.Builder
	b.WriteString(`<p>Each column is one interval of the trace, each row a log2 bucket of the time in the system call; a cell's colour is the number of calls of that interval in that bucket, on a log scale, so that a few slow calls still show against many fast ones. Bands show steady latencies, vertical streaks moments when everything slowed down. The times were taken with the probes attached and include their cost.</p>` + "\n")
	for i, h := range hs {
		b.WriteString(heatmapChart(fmt.Sprintf("heatmap-%d", i), h))
	}
	return b.String()
}
