package report

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// HTML writes a single self-contained HTML page about the runs: round-trip latency by
// primitive and size, throughput against message size, the rate and delay over time
// of streams with quality of service where the runs have any (scenario qos), the
// eBPF breakdown of system call time and the distributions behind it (a chart of
// log2 histograms per traced case, runs side by side) where the runs were traced,
// comparison tables,
// and the machines' details.
// Charts are inline SVG drawn here; the page's small inline script only checks that
// they rendered (it sets data-charts-drawn on <body>) and toggles series from the
// legends. The page loads nothing from the network: its Content-Security-Policy
// forbids it, and violations are recorded in data-csp-violations.
func HTML(w io.Writer, runs []Run) error {
	return Page{Runs: runs}.WriteHTML(w)
}

// A Page is what a report shows: benchmark runs, IPC snapshots, or both.
type Page struct {
	Runs      []Run
	Snapshots []Snapshot
	// Heatmaps are latency distributions over time (ipcbench trace -html), shown
	// in a section of their own.
	Heatmaps []Heatmap
}

// WriteHTML writes the page as HTML does, with a section "IPC snapshots" that
// shows each snapshot's deadlocks, wait-for graph (as inspect.WriteSVG draws it),
// waits and objects, and a section "Latency over time" with the heatmaps. A page
// needs at least one run, snapshot or heatmap.
func (p Page) WriteHTML(w io.Writer) error {
	runs, snaps := p.Runs, p.Snapshots
	if len(runs) == 0 && len(snaps) == 0 && len(p.Heatmaps) == 0 {
		return fmt.Errorf("%w: no runs, snapshots or heatmaps for the report", ErrInvalid)
	}
	for _, h := range p.Heatmaps {
		if why := h.validate(); why != "" {
			return fmt.Errorf("%w: %s", ErrInvalid, why)
		}
	}
	for _, r := range runs {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("%s: %w", r.Name, err)
		}
	}
	for i, s := range snaps {
		if s.Snapshot == nil {
			return fmt.Errorf("%w: snapshot %d (%s) is empty", ErrInvalid, i+1, s.Name)
		}
	}
	names := labels(runs)
	ew := &errWriter{w: w}
	ew.write(pageHead)
	var shown []string
	if len(runs) > 0 {
		shown = append(shown, fmt.Sprintf("%s: %s", counted(len(runs), "run", "runs"), esc(strings.Join(names, ", "))))
	}
	if len(snaps) > 0 {
		snapNames := make([]string, len(snaps))
		for i, s := range snaps {
			snapNames[i] = s.Name
		}
		shown = append(shown, fmt.Sprintf("%s: %s", counted(len(snaps), "IPC snapshot", "IPC snapshots"), esc(strings.Join(snapNames, ", "))))
	}
	if len(p.Heatmaps) > 0 {
		shown = append(shown, counted(len(p.Heatmaps), "latency heatmap", "latency heatmaps"))
	}
	ew.printf("<h1>ipcbench report</h1>\n<p class=\"sub\">%s.</p>\n", strings.Join(shown, "; "))

	var nav []string
	var body strings.Builder
	section := func(id, title, content string) {
		nav = append(nav, fmt.Sprintf(`<a href="#%s">%s</a>`, id, esc(title)))
		fmt.Fprintf(&body, "<section id=\"%s\">\n<h2>%s</h2>\n%s</section>\n", id, esc(title), content)
	}

	if len(runs) > 0 {
		section("latency", "Round-trip latency", latencySection(runs, names))
		section("throughput", "Throughput vs message size", throughputSection(runs, names))
		if hasQoS(runs) {
			section("qos", "Streams with quality of service", qosSection(runs, names))
		}
		section("ebpf", "Where the time goes (eBPF)", ebpfSection(runs, names))
		section("ebpf-histograms", "Latency distributions (eBPF)", histSection(runs, names))
		section("tables", "Comparison tables", tablesSection(runs, names))
	}
	if len(p.Heatmaps) > 0 {
		section("heatmaps", "Latency over time (eBPF)", heatmapSection(p.Heatmaps))
	}
	if len(snaps) > 0 {
		content, err := snapshotSection(snaps)
		if err != nil {
			return err
		}
		section("snapshots", "IPC snapshots", content)
	}
	if len(runs) > 0 {
		section("machines", "Machines", machinesSection(runs, names))
	}

	ew.printf("<nav>%s</nav>\n", strings.Join(nav, " · "))
	ew.write(body.String())
	ew.write(pageTail)
	return ew.err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// latencyResults returns run's ping-pong results that carry a round-trip time.
func latencyResults(run Run) []Result {
	var out []Result
	for _, r := range run.Results {
		if r.Scenario == "pingpong" && r.RTT.P50 > 0 {
			out = append(out, r)
		}
	}
	return out
}

// seriesOrder returns the distinct series of results in order of first appearance and
// the distinct sizes ascending.
func seriesOrder(results []Result) (series []string, sizes []int) {
	seen := map[string]bool{}
	seenSize := map[int]bool{}
	for _, r := range results {
		if s := r.Key().Series(); !seen[s] {
			seen[s] = true
			series = append(series, s)
		}
		if !seenSize[r.Size] {
			seenSize[r.Size] = true
			sizes = append(sizes, r.Size)
		}
	}
	sort.Ints(sizes)
	return series, sizes
}

// bar is one bar of a horizontal grouped bar chart on a log scale.
type bar struct {
	colour int     // index into the legend
	value  float64 // bar length
	whisk  float64 // whisker end (0: none)
	tip    string  // tooltip
}

// barRow is one labelled group of bars.
type barRow struct {
	label string
	bars  []bar
}

// groupedBars draws rows of horizontal bars on a logarithmic axis.
func groupedBars(id, title, axis string, rows []barRow, legend []string, format func(float64) string) string {
	const barH, gap, width = 9.0, 10.0, 920.0
	labelW := 60.0
	min, max := math.Inf(1), 0.0
	for _, r := range rows {
		labelW = math.Max(labelW, textWidth(r.label)+16)
		for _, b := range r.bars {
			min = math.Min(min, b.value)
			max = math.Max(max, math.Max(b.value, b.whisk))
		}
	}
	labelW = math.Min(labelW, 330)
	s := &svgDoc{w: width}
	s.text(8, 18, "start", "ctitle", title)
	y := s.legend(8, 40, width-8, legend, color, nil) + 4
	x := newLogScale(min, max, labelW, width-24)
	top := y + 16
	height := 0.0
	for _, r := range rows {
		height += float64(len(r.bars))*barH + gap
	}
	bottom := top + height
	for _, t := range x.ticks() {
		px := x.pos(t)
		s.add(`<line x1="%s" y1="%s" x2="%s" y2="%s" class="grid"/>`+"\n", f1(px), f1(top-4), f1(px), f1(bottom))
		s.text(px, top-8, "middle", "tick", format(t))
	}
	cy := top
	for _, r := range rows {
		groupH := float64(len(r.bars)) * barH
		s.text(labelW-8, cy+groupH/2+4, "end", "label", r.label)
		for _, b := range r.bars {
			px := x.pos(b.value)
			s.add(`<rect class="mark" data-series="%d" x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s</title></rect>`+"\n",
				b.colour, f1(labelW), f1(cy), f1(math.Max(px-labelW, 1)), f1(barH-1), color(b.colour), esc(b.tip))
			if b.whisk > b.value {
				wx := x.pos(b.whisk)
				s.add(`<line class="whisker" data-series="%d" x1="%s" y1="%s" x2="%s" y2="%s"/>`+"\n", b.colour, f1(px), f1(cy+barH/2-0.5), f1(wx), f1(cy+barH/2-0.5))
			}
			cy += barH
		}
		cy += gap
	}
	s.add(`<line x1="%s" y1="%s" x2="%s" y2="%s" class="axis"/>`+"\n", f1(labelW), f1(top-4), f1(labelW), f1(bottom))
	s.text((labelW+width)/2, bottom+22, "middle", "axis-label", axis)
	s.h = bottom + 32
	return s.finish(id, title)
}

func rttTip(machine string, r Result) string {
	return fmt.Sprintf("%s %s, %s: p50 %s, p90 %s, p99 %s, p99.9 %s, mean %s, min %s, max %s (%d round trips)",
		machine, r.Key().Series(), formatSize(r.Size), formatNs(r.RTT.P50), formatNs(r.RTT.P90), formatNs(r.RTT.P99),
		formatNs(r.RTT.P999), formatNs(r.RTT.Mean), formatNs(r.RTT.Min), formatNs(r.RTT.Max), r.Iterations)
}

func latencySection(runs []Run, names []string) string {
	var b strings.Builder
	b.WriteString(`<p>Ping-pong round-trip time between two processes: bars are the median (p50), whiskers reach the 99th percentile. Logarithmic axis; hover a bar for the full distribution.</p>` + "\n")
	any := false
	for i, run := range runs {
		res := latencyResults(run)
		if len(res) == 0 {
			continue
		}
		any = true
		series, sizes := seriesOrder(res)
		sizeIdx := map[int]int{}
		legend := make([]string, len(sizes))
		for j, sz := range sizes {
			sizeIdx[sz] = j
			legend[j] = formatSize(sz)
		}
		rows := make([]barRow, len(series))
		rowIdx := map[string]int{}
		for j, s := range series {
			rows[j].label = s
			rowIdx[s] = j
		}
		for _, r := range res {
			j := rowIdx[r.Key().Series()]
			rows[j].bars = append(rows[j].bars, bar{colour: sizeIdx[r.Size], value: r.RTT.P50, whisk: r.RTT.P99, tip: rttTip(names[i], r)})
		}
		for j := range rows {
			sort.SliceStable(rows[j].bars, func(a, c int) bool { return rows[j].bars[a].colour < rows[j].bars[c].colour })
		}
		b.WriteString(groupedBars(fmt.Sprintf("latency-%d", i), "Round-trip latency by primitive and size: "+names[i], "round-trip time (p50, whisker to p99), log scale", rows, legend, shortNs))
	}
	if !any {
		return "<p class=\"none\">No ping-pong results in these runs.</p>\n"
	}
	if len(runs) > 1 {
		b.WriteString("<h3>Across machines</h3>\n")
		var all []Result
		for _, run := range runs {
			all = append(all, latencyResults(run)...)
		}
		series, sizes := seriesOrder(all)
		for _, sz := range sizes {
			var rows []barRow
			for _, s := range series {
				row := barRow{label: s}
				for i, run := range runs {
					for _, r := range latencyResults(run) {
						if r.Size == sz && r.Key().Series() == s {
							row.bars = append(row.bars, bar{colour: i, value: r.RTT.P50, whisk: r.RTT.P99, tip: rttTip(names[i], r)})
							break
						}
					}
				}
				if len(row.bars) > 0 {
					rows = append(rows, row)
				}
			}
			b.WriteString(groupedBars(fmt.Sprintf("latency-size-%d", sz), "Round-trip latency across machines, "+formatSize(sz)+" messages", "round-trip time (p50, whisker to p99), log scale", rows, names, shortNs))
		}
	}
	return b.String()
}

// throughputChart draws one line per primitive: bytes per second against message
// size, both logarithmic. results share one implementation, wait strategy and
// pinning; colour[p] is primitive p's colour index, the same in every chart.
func throughputChart(id, title, machine string, results []Result, colour map[string]int) string {
	const width = 920.0
	var prims []string
	seen := map[string]bool{}
	sizeSeen := map[int]bool{}
	var sizes []int
	for _, r := range results {
		if !seen[r.Primitive] {
			seen[r.Primitive] = true
			prims = append(prims, r.Primitive)
		}
		if !sizeSeen[r.Size] {
			sizeSeen[r.Size] = true
			sizes = append(sizes, r.Size)
		}
	}
	sort.Ints(sizes)
	colourOf := func(i int) string { return color(colour[prims[i]]) }
	dashOf := func(i int) string { return dashFor(colour[prims[i]]) }
	s := &svgDoc{w: width}
	s.text(8, 18, "start", "ctitle", title)
	legendY := s.legend(8, 40, width-8, prims, colourOf, dashOf)
	top, left, right := legendY+12, 78.0, width-24
	const plotH = 280.0
	bottom := top + plotH
	min, max := math.Inf(1), 0.0
	for _, r := range results {
		min = math.Min(min, r.BytesPerSec)
		max = math.Max(max, r.BytesPerSec)
	}
	y := newLogScale(min, max, bottom, top)
	lo, hi := math.Log2(float64(max1(sizes[0]))), math.Log2(float64(max1(sizes[len(sizes)-1])))
	xpos := func(size int) float64 {
		if hi == lo {
			return (left + right) / 2
		}
		return left + 12 + (math.Log2(float64(max1(size)))-lo)/(hi-lo)*(right-left-24)
	}
	for _, t := range y.ticks() {
		py := y.pos(t)
		s.add(`<line x1="%s" y1="%s" x2="%s" y2="%s" class="grid"/>`+"\n", f1(left), f1(py), f1(right), f1(py))
		s.text(left-6, py+4, "end", "tick", shortBps(t))
	}
	for _, sz := range sizes {
		px := xpos(sz)
		s.add(`<line x1="%s" y1="%s" x2="%s" y2="%s" class="grid"/>`+"\n", f1(px), f1(top), f1(px), f1(bottom))
		s.text(px, bottom+16, "middle", "tick", formatSize(sz))
	}
	s.add(`<rect x="%s" y="%s" width="%s" height="%s" class="frame"/>`+"\n", f1(left), f1(top), f1(right-left), f1(plotH))
	for i, prim := range prims {
		var pts []string
		var marks strings.Builder
		for _, r := range results {
			if r.Primitive != prim || r.BytesPerSec <= 0 {
				continue
			}
			px, py := xpos(r.Size), y.pos(r.BytesPerSec)
			pts = append(pts, f1(px)+","+f1(py))
			fmt.Fprintf(&marks, `<circle class="mark" data-series="%d" cx="%s" cy="%s" r="3.5" fill="%s"><title>%s</title></circle>`+"\n",
				i, f1(px), f1(py), colourOf(i), esc(fmt.Sprintf("%s %s, %s: %s, %s messages/s (%d messages)", machine, r.Key().Series(), formatSize(r.Size), formatBytesPerSec(r.BytesPerSec), formatRate(r.MsgsPerSec), r.Iterations)))
		}
		if len(pts) > 1 {
			s.add(`<polyline class="line" data-series="%d" fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`+"\n", i, colourOf(i), dashOf(i), strings.Join(pts, " "))
		}
		s.add("%s", marks.String())
	}
	s.text((left+right)/2, bottom+36, "middle", "axis-label", "message size (log scale)")
	s.add(`<text x="14" y="%s" text-anchor="middle" class="axis-label" transform="rotate(-90 14 %s)">bytes per second (log scale)</text>`+"\n", f1((top+bottom)/2), f1((top+bottom)/2))
	s.h = bottom + 46
	return s.finish(id, title)
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

func throughputSection(runs []Run, names []string) string {
	var b strings.Builder
	b.WriteString(`<p>One-way payload throughput of the stream scenario: the writer sends back to back, the reader drains. One chart per implementation and wait strategy; a primitive has the same colour in every chart. Click a legend entry to hide or show its line.</p>` + "\n")
	colour := map[string]int{}
	for _, run := range runs {
		for _, r := range run.Results {
			if _, ok := colour[r.Primitive]; !ok && r.Scenario == "stream" {
				colour[r.Primitive] = len(colour)
			}
		}
	}
	any := false
	for i, run := range runs {
		var variants []string
		byVariant := map[string][]Result{}
		for _, r := range run.Results {
			if r.Scenario != "stream" || r.BytesPerSec <= 0 {
				continue
			}
			k := r.Key()
			k.Primitive = ""
			v := strings.TrimPrefix(k.Series(), "/")
			if _, ok := byVariant[v]; !ok {
				variants = append(variants, v)
			}
			byVariant[v] = append(byVariant[v], r)
		}
		for j, v := range variants {
			any = true
			b.WriteString(throughputChart(fmt.Sprintf("throughput-%d-%d", i, j), "Throughput vs message size: "+names[i]+", "+v, names[i], byVariant[v], colour))
		}
	}
	if !any {
		return "<p class=\"none\">No stream results in these runs.</p>\n"
	}
	return b.String()
}

// segment names for the eBPF breakdown, in stacking order.
var ebpfSegments = []string{
	"copying data (fitted per-byte cost × size)",
	"other on-CPU time (entry, locks, wake-ups)",
	"blocked, waiting for the peer",
	"blocked, waiting for a CPU",
	"readiness wait (poller mode: after EAGAIN, outside the call)",
}

// ebpfParts splits a result's system call time into the segments above, the last
// one, the readiness wait of poller-mode I/O, being time outside the calls that the
// caller waited all the same.
func ebpfParts(r Result) []float64 {
	bd := r.EBPF.Breakdown
	copyNs := math.Min(r.EBPF.CopyCostNsPerByte*float64(r.Size), bd.OnCPUNs)
	return []float64{copyNs, bd.OnCPUNs - copyNs, bd.OffCPUPeerNs, bd.OffCPURunqNs, bd.ReadyWaitNs}
}

func ebpfChart(id, title, machine string, results []Result) string {
	const barH, gap, width = 14.0, 6.0, 920.0
	labelW := 60.0
	max := 0.0
	for _, r := range results {
		labelW = math.Max(labelW, textWidth(r.Key().Series()+" "+formatSize(r.Size))+16)
		sum := 0.0
		for _, p := range ebpfParts(r) {
			sum += p
		}
		max = math.Max(max, math.Max(sum, r.EBPF.Breakdown.SyscallNs))
	}
	labelW = math.Min(labelW, 360)
	s := &svgDoc{w: width}
	s.text(8, 18, "start", "ctitle", title)
	y := s.legend(8, 40, width-8, ebpfSegments, color, nil) + 4
	top := y + 16
	x := newLinScale(max, labelW, width-24)
	bottom := top + float64(len(results))*(barH+gap)
	for _, t := range x.ticks() {
		px := x.pos(t)
		s.add(`<line x1="%s" y1="%s" x2="%s" y2="%s" class="grid"/>`+"\n", f1(px), f1(top-4), f1(px), f1(bottom))
		s.text(px, top-8, "middle", "tick", shortNs(t))
	}
	cy := top
	for _, r := range results {
		s.text(labelW-8, cy+barH-3, "end", "label", r.Key().Series()+" "+formatSize(r.Size))
		px := labelW
		parts := ebpfParts(r)
		for i, p := range parts {
			if p <= 0 {
				continue
			}
			w := x.pos(p) - labelW
			s.add(`<rect class="mark" data-series="%d" x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s</title></rect>`+"\n",
				i, f1(px), f1(cy), f1(math.Max(w, 0.5)), f1(barH), color(i),
				esc(fmt.Sprintf("%s %s, %s: %s %s per operation", machine, r.Key().Series(), formatSize(r.Size), ebpfSegments[i], formatNs(p))))
			px += w
		}
		cy += barH + gap
	}
	s.add(`<line x1="%s" y1="%s" x2="%s" y2="%s" class="axis"/>`+"\n", f1(labelW), f1(top-4), f1(labelW), f1(bottom))
	s.text((labelW+width)/2, bottom+22, "middle", "axis-label", "time in the primitive's system calls per call (mean), then the readiness wait")
	s.h = bottom + 32
	return s.finish(id, title)
}

func ebpfSection(runs []Run, names []string) string {
	var b strings.Builder
	b.WriteString(`<p>With <code>--ebpf</code>, tracepoints split the time spent inside the primitive's system calls into running (on-CPU: copying the payload, entry, locks, wake-ups) and blocked (off-CPU: waiting for the peer, then for a CPU). The copy share is the per-byte cost fitted over the size sweep times the message size; without a sweep it stays in the other on-CPU time. In poller mode (Go's runtime poller) a call that would block returns EAGAIN at once and the wait happens in epoll_wait, often on another thread: the <em>readiness wait</em> segment is the time from such an EAGAIN to the next successful call on the same descriptor and operation, per call. It lies outside the system call and is not in its time, but the caller waited for it; it is not a measure of epoll itself (epoll_wait also waits for other descriptors), and it includes the runtime's scheduling of the waiting goroutine. Probes cost time themselves; each chart states the measured overhead.</p>` + "\n")
	any := false
	for i, run := range runs {
		var res []Result
		var overhead []float64
		lo, hi := math.Inf(1), math.Inf(-1) // the per-round spread, when recorded
		for _, r := range run.Results {
			if r.EBPF != nil && r.EBPF.Breakdown != nil {
				res = append(res, r)
				if r.EBPF.OverheadRatio > 0 {
					overhead = append(overhead, r.EBPF.OverheadRatio)
				}
				if r.EBPF.OverheadRounds > 0 {
					lo, hi = math.Min(lo, r.EBPF.OverheadMin), math.Max(hi, r.EBPF.OverheadMax)
				}
			}
		}
		if len(res) == 0 {
			continue
		}
		any = true
		// Group a scenario's rows together, sizes ascending within a series.
		sort.SliceStable(res, func(a, c int) bool {
			if res[a].Scenario != res[c].Scenario {
				return scenarioRank(run, res[a].Scenario) < scenarioRank(run, res[c].Scenario)
			}
			return false
		})
		byScenario := map[string][]Result{}
		var scenarios []string
		for _, r := range res {
			if _, ok := byScenario[r.Scenario]; !ok {
				scenarios = append(scenarios, r.Scenario)
			}
			byScenario[r.Scenario] = append(byScenario[r.Scenario], r)
		}
		note := "probes on, overhead not measured"
		if len(overhead) > 0 {
			note = fmt.Sprintf("probes on, median overhead ×%.2f", median(overhead))
			if lo <= hi {
				note += fmt.Sprintf(", ×%.2f–×%.2f within single rounds", lo, hi)
			}
		}
		if e := res[0].EBPF; e.ProbeRunNs > 0 {
			note += fmt.Sprintf("; probes' own cost %s per traced call (%.1f runs of %s), included", formatNs(e.ProbeNsPerCall), e.ProbeRunsPerCall, formatNs(e.ProbeRunNs))
		}
		for _, sc := range scenarios {
			b.WriteString(ebpfChart(fmt.Sprintf("ebpf-%d-%s", i, sc), fmt.Sprintf("System call time, %s: %s (%s)", sc, names[i], note), names[i], byScenario[sc]))
		}
	}
	if !any {
		return "<p class=\"none\">No eBPF data in these runs (run ipcbench with --ebpf as root on a kernel that allows it).</p>\n"
	}
	return b.String()
}

func scenarioRank(run Run, sc string) int {
	for i, r := range run.Results {
		if r.Scenario == sc {
			return i
		}
	}
	return len(run.Results)
}

func tablesSection(runs []Run, names []string) string {
	var b strings.Builder
	if len(runs) > 1 {
		fmt.Fprintf(&b, "<p>Ratios are against %s (the first run); the geomean row summarises them.</p>\n", esc(names[0]))
	}
	for _, g := range buildGroups(runs) {
		better := "lower is better"
		if g.metric.higherBetter {
			better = "higher is better"
		}
		fmt.Fprintf(&b, "<details><summary>%s, %s: %s (%s)</summary>\n<table>\n<tr><th>primitive</th><th>impl</th><th>wait</th><th>pin</th><th>%s</th>",
			esc(g.scenario), esc(formatSize(g.size)), esc(g.metric.title), better, esc(names[0]))
		for _, n := range names[1:] {
			fmt.Fprintf(&b, "<th>%s</th><th>ratio</th>", esc(n))
		}
		b.WriteString("</tr>\n")
		for i, k := range g.rows {
			fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td>", esc(k.Primitive), esc(k.Impl), esc(dash(k.Wait)), esc(dash(k.Pin)))
			for ri := range runs {
				fmt.Fprintf(&b, "<td class=\"num\">%s</td>", esc(formatValue(g.metric, g.vals[i][ri], g.n[i][ri])))
				if ri > 0 {
					r := ratio(g.vals[i][ri], g.vals[i][0])
					class := "num"
					if !math.IsNaN(r) && (r < 0.95) != g.metric.higherBetter && math.Abs(r-1) > 0.05 {
						class += " better"
					} else if !math.IsNaN(r) && math.Abs(r-1) > 0.05 {
						class += " worse"
					}
					fmt.Fprintf(&b, "<td class=\"%s\">%s</td>", class, esc(formatRatio(r)))
				}
			}
			b.WriteString("</tr>\n")
		}
		if len(runs) > 1 && len(g.rows) > 1 {
			b.WriteString("<tr class=\"geomean\"><td>geomean</td><td></td><td></td><td></td><td></td>")
			for ri := 1; ri < len(runs); ri++ {
				gm, _ := g.geomean(ri)
				fmt.Fprintf(&b, "<td></td><td class=\"num\">%s</td>", esc(formatRatio(gm)))
			}
			b.WriteString("</tr>\n")
		}
		b.WriteString("</table>\n</details>\n")
	}
	return b.String()
}

func machinesSection(runs []Run, names []string) string {
	var b strings.Builder
	b.WriteString("<table class=\"machines\">\n<tr><th></th>")
	for _, n := range names {
		fmt.Fprintf(&b, "<th>%s</th>", esc(n))
	}
	b.WriteString("</tr>\n")
	row := func(label string, get func(Machine) string) {
		fmt.Fprintf(&b, "<tr><th>%s</th>", esc(label))
		for _, r := range runs {
			fmt.Fprintf(&b, "<td>%s</td>", esc(dash(get(r.Machine))))
		}
		b.WriteString("</tr>\n")
	}
	counts := func(r Run) string {
		scen := map[string]int{}
		var order []string
		traced := 0
		for _, res := range r.Results {
			if scen[res.Scenario] == 0 {
				order = append(order, res.Scenario)
			}
			scen[res.Scenario]++
			if res.EBPF != nil && res.EBPF.Probes {
				traced++
			}
		}
		parts := make([]string, 0, len(order)+1)
		for _, sc := range order {
			parts = append(parts, fmt.Sprintf("%d %s", scen[sc], sc))
		}
		if traced > 0 {
			parts = append(parts, fmt.Sprintf("%d traced with eBPF", traced))
		}
		return strings.Join(parts, ", ")
	}
	row("hostname", func(m Machine) string { return m.Hostname })
	row("kernel", func(m Machine) string { return m.Kernel })
	row("os", func(m Machine) string { return m.OS })
	row("cpu", func(m Machine) string { return m.CPUModel })
	row("cpus", func(m Machine) string { return itoa(m.CPUs) })
	row("virtualization", func(m Machine) string { return m.Virtualization })
	row("go", func(m Machine) string { return m.GoVersion })
	row("ipclab", func(m Machine) string { return m.IpclabVersion })
	row("pinning", func(m Machine) string { return m.Pin })
	row("started", func(m Machine) string {
		if m.Timestamp.IsZero() {
			return ""
		}
		return m.Timestamp.UTC().Format("2006-01-02 15:04:05 UTC")
	})
	extra := map[string]bool{}
	var keys []string
	for _, r := range runs {
		for _, k := range r.Machine.ExtraKeys() {
			if !extra[k] {
				extra[k] = true
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		row(k, func(m Machine) string {
			v, ok := m.Extra[k]
			if !ok {
				return ""
			}
			if s, ok := v.(string); ok {
				return s
			}
			return fmt.Sprint(v)
		})
	}
	b.WriteString("<tr><th>results</th>")
	for _, r := range runs {
		fmt.Fprintf(&b, "<td>%s</td>", esc(dash(counts(r))))
	}
	b.WriteString("</tr>\n")
	b.WriteString("</table>\n")
	return b.String()
}

// pageHead opens the page: styles, and a first script that records errors and
// blocked loads before anything else runs.
const pageHead = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ipcbench report</title>
<script>
(function () {
  var errors = 0, blocked = 0;
  window.addEventListener("error", function () {
    errors++;
    document.documentElement.setAttribute("data-js-errors", String(errors));
  }, true);
  document.addEventListener("securitypolicyviolation", function () {
    blocked++;
    document.documentElement.setAttribute("data-csp-violations", String(blocked));
  });
})();
</script>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 0 auto; max-width: 960px; padding: 16px 20px 48px; }
h1 { font-size: 24px; margin: 8px 0 2px; }
h2 { font-size: 19px; margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 16px; margin-top: 24px; }
.sub, .none { color: #666; }
nav { margin: 8px 0 16px; }
nav a { color: #2a5d8f; }
svg.chart { display: block; max-width: 100%; height: auto; margin: 12px 0 20px; font-family: system-ui, sans-serif; }
svg .ctitle { font-size: 14px; font-weight: 600; fill: #222; }
svg .legend, svg .label, svg .tick { font-size: 12px; fill: #333; }
svg .tick { fill: #666; font-size: 11px; }
svg .axis-label { font-size: 12px; fill: #555; }
svg .grid { stroke: #e6e6e6; stroke-width: 1; }
svg .axis { stroke: #888; stroke-width: 1; }
svg .frame { fill: none; stroke: #bbb; }
svg .whisker { stroke: #333; stroke-width: 1; }
svg .legend-item { cursor: pointer; }
svg .legend-item.off { opacity: 0.35; }
svg .off-series { display: none; }
svg .mark:hover { opacity: 0.75; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.better { color: #1a7f37; }
td.worse { color: #b42318; }
tr.geomean td { font-weight: 600; }
details { margin: 6px 0; }
summary { cursor: pointer; }
code { background: #f3f3f3; padding: 0 3px; }
</style>
</head>
<body>
`

// pageTail closes the page with the script that checks the charts and wires the
// legends.
const pageTail = `<script>
(function () {
  var charts = document.querySelectorAll("svg.chart");
  var drawn = 0;
  for (var i = 0; i < charts.length; i++) {
    var svg = charts[i], box = svg.getBoundingClientRect(), marks = svg.querySelectorAll(".mark"), visible = 0;
    for (var j = 0; j < marks.length; j++) {
      var r = marks[j].getBoundingClientRect();
      if (r.width > 0 && r.height > 0) { visible++; }
    }
    if (box.width > 0 && box.height > 0 && visible > 0) { drawn++; }
    svg.setAttribute("data-marks-drawn", String(visible));
  }
  document.body.setAttribute("data-charts", String(charts.length));
  document.body.setAttribute("data-charts-drawn", String(drawn));
  document.addEventListener("click", function (ev) {
    var item = ev.target.closest && ev.target.closest(".legend-item");
    if (!item) { return; }
    var svg = item.closest("svg"), s = item.getAttribute("data-series");
    var off = item.classList.toggle("off");
    var els = svg.querySelectorAll('[data-series="' + s + '"]:not(.legend-item)');
    for (var k = 0; k < els.length; k++) { els[k].classList.toggle("off-series", off); }
  });
})();
</script>
</body>
</html>
`
