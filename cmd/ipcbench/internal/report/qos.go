package report

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// The report's section on streams with quality of service (scenario "qos"): per run a
// table of the streams, and per stream its rate and its delay over time. It is there
// only when a run has qos results, so that a report without any is unchanged.

// qosResults returns run's qos results.
func qosResults(run Run) []Result {
	var out []Result
	for _, r := range run.Results {
		if r.Scenario == ScenarioQoS && r.QoS != nil {
			out = append(out, r)
		}
	}
	return out
}

// hasQoS reports whether any run has a qos result.
func hasQoS(runs []Run) bool {
	for _, run := range runs {
		if len(qosResults(run)) > 0 {
			return true
		}
	}
	return false
}

func qosSection(runs []Run, names []string) string {
	var b strings.Builder
	b.WriteString(`<p>A stream with quality of service (package <code>ipc/stream</code>) from the peer, its source, to ipcbench, its sink. The source shapes what it sends with a token bucket, its contract: a rate and a depth (the largest burst). Its workload is bursty on purpose: on/off bursts offered at ten times the contract rate, which the shaper holds back to the depth and then to the rate. The sink plays each unit out between the minimum and the maximum delay after it was sent (isochronous play-out) and reports every interval. Per stream, the rate played out in each interval against the contract rate, and the delay from sending to play-out (the interval's median and 99th percentile) against the minimum and maximum delay. Rates and depths count units on the wire, headers included; long-run rate, largest burst and the token-bucket check are measured on the send times. Click a legend entry to hide or show its line.</p>` + "\n")
	for i, run := range runs {
		res := qosResults(run)
		if len(res) == 0 {
			continue
		}
		if len(runs) > 1 {
			fmt.Fprintf(&b, "<h3>%s</h3>\n", esc(names[i]))
		}
		b.WriteString(qosTable(res))
		for j, r := range res {
			what := fmt.Sprintf("%s %s, %s", names[i], r.Key().Series(), formatSize(r.Size))
			b.WriteString(qosRateChart(fmt.Sprintf("qos-rate-%d-%d", i, j), what, r))
			b.WriteString(qosDelayChart(fmt.Sprintf("qos-delay-%d-%d", i, j), what, r))
		}
	}
	return b.String()
}

// unitsPerSec formats a rate in bytes per second as units of unit bytes a second:
// "1000/s", "825/s", "125k/s".
func unitsPerSec(bps float64, unit int) string {
	if v := bps / float64(unit); v < 1e5 {
		return fmt.Sprintf("%.0f/s", v)
	}
	return formatRate(bps / float64(unit))
}

// contractOf describes q's contract and workload in a sentence.
func contractOf(q *QoS) string {
	return fmt.Sprintf("token bucket of %s units/s with a depth of %.0f units, %s play-out %s to %s after sending; workload %s, %s offered on average (seed %d)",
		strings.TrimSuffix(unitsPerSec(q.ContractRate, q.UnitBytes), "/s"), float64(q.Depth)/float64(q.UnitBytes), q.Mode, formatNs(q.MinDelayNs), formatNs(q.MaxDelayNs),
		q.Workload, unitsPerSec(q.OfferedRate, q.UnitBytes), q.Seed)
}

func qosTable(res []Result) string {
	var b strings.Builder
	// The contracts, once each (a run's streams usually share one).
	var contracts []string
	for _, r := range res {
		c := contractOf(r.QoS)
		if !slices.Contains(contracts, c) {
			contracts = append(contracts, c)
		}
	}
	for _, c := range contracts {
		fmt.Fprintf(&b, "<p>Contract: %s.</p>\n", esc(c))
	}
	b.WriteString("<table>\n<tr><th>stream</th><th>size</th><th>sent</th><th>lost</th><th>late</th><th>long-run rate</th><th>max burst</th>" +
		"<th>breaches (bucket, play-out)</th><th>delay p50</th><th>delay p99</th><th>jitter p99</th></tr>\n")
	for _, r := range res {
		q := r.QoS
		unit := float64(q.UnitBytes)
		fmt.Fprintf(&b, "<tr><td>%s</td>", esc(r.Key().Series()))
		cell := func(class, v string) { fmt.Fprintf(&b, "<td class=\"%s\">%s</td>", class, esc(v)) }
		cell("num", formatSize(r.Size))
		cell("num", strconv.Itoa(q.Sent))
		cell("num", strconv.Itoa(q.Lost))
		cell("num", strconv.Itoa(q.Late))
		cell("num", fmt.Sprintf("%s (×%.3f)", unitsPerSec(q.LongRunRate, q.UnitBytes), q.RateRatio))
		cell("num", fmt.Sprintf("%.1f of %.0f units", q.MaxBurst/unit, float64(q.Depth)/unit))
		class := "num"
		if q.BucketBreaches > 0 || q.PlayoutBreaches > 0 {
			class += " worse"
		}
		cell(class, fmt.Sprintf("%d, %d", q.BucketBreaches, q.PlayoutBreaches))
		cell("num", formatNs(q.DelayP50Ns))
		cell("num", formatNs(q.DelayP99Ns))
		cell("num", formatNs(q.JitterP99Ns))
		b.WriteString("</tr>\n")
	}
	b.WriteString("</table>\n")
	return b.String()
}

// tsLine is one line of a time chart: a value per interval, with a tooltip each.
type tsLine struct {
	label  string
	colour int
	t, v   []float64
	tips   []string
	gaps   []bool // gaps[k]: no line from point k−1 to point k
}

// refLine is a horizontal reference line (a contract's bound).
type refLine struct {
	label  string
	colour int
	v      float64
	tip    string
}

// niceAxis returns an axis from 0 to at least max in four to eight round steps.
func niceAxis(max float64) (hi, step float64) {
	if !(max > 0) {
		max = 1
	}
	raw := max / 8
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	step = 10 * p
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= raw {
			step = m * p
			break
		}
	}
	return math.Ceil(max/step-1e-9) * step, step
}

// timeChart draws lines over time (seconds, linear) with horizontal reference lines,
// on a linear axis from 0 that holds them all. The lines' points are its marks.
func timeChart(id, title, axis string, lines []tsLine, refs []refLine, tEnd float64, format func(float64) string) string {
	const width, plotH = 920.0, 220.0
	labels := make([]string, 0, len(lines)+len(refs))
	colours := make([]int, 0, len(lines)+len(refs))
	for _, l := range lines {
		labels = append(labels, l.label)
		colours = append(colours, l.colour)
	}
	for _, r := range refs {
		labels = append(labels, r.label)
		colours = append(colours, r.colour)
	}
	s := &svgDoc{w: width}
	s.text(8, 18, "start", "ctitle", title)
	legendY := s.legend(8, 40, width-8, labels, func(i int) string { return color(colours[i]) }, func(i int) string {
		if i >= len(lines) {
			return ` stroke-dasharray="6 3"`
		}
		return ""
	})
	top, left, right := legendY+12, 78.0, width-24
	bottom := top + plotH
	ymax := 0.0
	for _, l := range lines {
		for _, v := range l.v {
			ymax = math.Max(ymax, v)
		}
	}
	for _, r := range refs {
		ymax = math.Max(ymax, r.v)
	}
	yhi, ystep := niceAxis(ymax * 1.08)
	thi, tstep := niceAxis(tEnd)
	ypos := func(v float64) float64 { return bottom - v/yhi*plotH }
	xpos := func(t float64) float64 { return left + t/thi*(right-left) }
	for k := 0; float64(k)*ystep <= yhi*1.0001; k++ {
		v := float64(k) * ystep
		py := ypos(v)
		s.add(`<line x1="%s" y1="%s" x2="%s" y2="%s" class="grid"/>`+"\n", f1(left), f1(py), f1(right), f1(py))
		s.text(left-6, py+4, "end", "tick", format(v))
	}
	for k := 0; float64(k)*tstep <= thi*1.0001; k++ {
		t := float64(k) * tstep
		px := xpos(t)
		s.add(`<line x1="%s" y1="%s" x2="%s" y2="%s" class="grid"/>`+"\n", f1(px), f1(top), f1(px), f1(bottom))
		s.text(px, bottom+16, "middle", "tick", tickNumber(t)+" s")
	}
	s.add(`<rect x="%s" y="%s" width="%s" height="%s" class="frame"/>`+"\n", f1(left), f1(top), f1(right-left), f1(plotH))
	for k, r := range refs {
		i := len(lines) + k
		py := ypos(r.v)
		s.add(`<line class="ref" data-series="%d" x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1.5" stroke-dasharray="6 3"><title>%s</title></line>`+"\n",
			i, f1(left), f1(py), f1(right), f1(py), color(r.colour), esc(r.tip))
	}
	for i, l := range lines {
		var pts []string
		flush := func() {
			if len(pts) > 1 {
				s.add(`<polyline class="line" data-series="%d" fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", i, color(l.colour), strings.Join(pts, " "))
			}
			pts = pts[:0]
		}
		for k := range l.t {
			if k < len(l.gaps) && l.gaps[k] {
				flush()
			}
			pts = append(pts, f1(xpos(l.t[k]))+","+f1(ypos(l.v[k])))
		}
		flush()
		for k := range l.t {
			s.add(`<circle class="mark" data-series="%d" cx="%s" cy="%s" r="2.5" fill="%s"><title>%s</title></circle>`+"\n",
				i, f1(xpos(l.t[k])), f1(ypos(l.v[k])), color(l.colour), esc(l.tips[k]))
		}
	}
	s.text((left+right)/2, bottom+36, "middle", "axis-label", "time since the first unit was sent")
	s.add(`<text x="14" y="%s" text-anchor="middle" class="axis-label" transform="rotate(-90 14 %s)">%s</text>`+"\n", f1((top+bottom)/2), f1((top+bottom)/2), esc(axis))
	s.h = bottom + 46
	return s.finish(id, title)
}

// qosEnd is the time the chart of q's series covers: its last interval's end.
func qosEnd(q *QoS) float64 {
	end := 0.0
	for _, p := range q.Series {
		end = math.Max(end, p.TS)
	}
	return end
}

func qosRateChart(id, what string, r Result) string {
	q := r.QoS
	unit := float64(q.UnitBytes)
	interval := formatNs(q.IntervalNs)
	l := tsLine{label: "rate played out, per " + interval, colour: 0}
	for _, p := range q.Series {
		l.t = append(l.t, p.TS)
		l.v = append(l.v, p.Rate/unit)
		l.tips = append(l.tips, fmt.Sprintf("%s: interval ending at %.2f s: %d units, %s (%s), contract %s",
			what, p.TS, p.Units, formatRate(p.Rate/unit), formatBytesPerSec(p.Rate), unitsPerSec(q.ContractRate, q.UnitBytes)))
	}
	ref := refLine{label: "contract rate " + unitsPerSec(q.ContractRate, q.UnitBytes), colour: 2, v: q.ContractRate / unit,
		tip: fmt.Sprintf("contract: %s (%s), depth %.0f units; the workload's bursts offer %s", unitsPerSec(q.ContractRate, q.UnitBytes),
			formatBytesPerSec(q.ContractRate), float64(q.Depth)/unit, unitsPerSec(q.PeakRate, q.UnitBytes))}
	title := fmt.Sprintf("Rate over time: %s (long-run ×%.3f of the contract)", what, q.RateRatio)
	return timeChart(id, title, "units per second", []tsLine{l}, []refLine{ref}, qosEnd(q), shortUnitsRate)
}

func qosDelayChart(id, what string, r Result) string {
	q := r.QoS
	p50 := tsLine{label: "delay p50", colour: 0}
	p99 := tsLine{label: "delay p99", colour: 1}
	gap := false
	for _, p := range q.Series {
		if p.Units == 0 {
			gap = true // no unit played out: no delay to show
			continue
		}
		tip := fmt.Sprintf("%s: interval ending at %.2f s: %d units, delay p50 %s, p99 %s", what, p.TS, p.Units, formatNs(p.DelayP50Ns), formatNs(p.DelayP99Ns))
		if p.Late > 0 || p.Lost > 0 {
			tip += fmt.Sprintf(", %d late, %d lost", p.Late, p.Lost)
		}
		for _, x := range []struct {
			l *tsLine
			v float64
		}{{&p50, p.DelayP50Ns}, {&p99, p.DelayP99Ns}} {
			x.l.t = append(x.l.t, p.TS)
			x.l.v = append(x.l.v, x.v)
			x.l.tips = append(x.l.tips, tip)
			x.l.gaps = append(x.l.gaps, gap)
		}
		gap = false
	}
	refs := []refLine{
		{label: "minimum delay " + formatNs(q.MinDelayNs), colour: 4, v: q.MinDelayNs, tip: "play-out starts this long after sending"},
		{label: "maximum delay " + formatNs(q.MaxDelayNs), colour: 2, v: q.MaxDelayNs, tip: "a unit that arrives, or is played out, later than this after sending is late"},
	}
	title := fmt.Sprintf("Delay over time: %s (%d late, %d lost of %d)", what, q.Late, q.Lost, q.Sent)
	return timeChart(id, title, "delay, send to play-out", []tsLine{p50, p99}, refs, qosEnd(q), shortDelay)
}

// shortUnitsRate formats an axis label in units per second: "1200/s".
func shortUnitsRate(v float64) string {
	if v < 1e5 {
		return tickNumber(v) + "/s"
	}
	return strings.Replace(strings.Replace(formatRate(v), ".00", "", 1), ".0", "", 1)
}

// tickNumber formats an axis value without the float noise of k × step (0.3, not
// 0.30000000000000004).
func tickNumber(v float64) string {
	return strconv.FormatFloat(math.Round(v*1e6)/1e6, 'f', -1, 64)
}

// shortDelay formats an axis label of a delay: "0", "5ms".
func shortDelay(v float64) string {
	if v == 0 {
		return "0"
	}
	return shortNs(v)
}
