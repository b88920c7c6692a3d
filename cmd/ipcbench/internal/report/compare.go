package report

import (
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/ipclab/ipclab/internal/table"
)

// Format selects Compare's output.
type Format string

// The formats Compare writes.
const (
	// FormatText is aligned plain-text tables, one per scenario and size.
	FormatText Format = "text"
	// FormatMarkdown is the same tables in Markdown, for READMEs and issues.
	FormatMarkdown Format = "markdown"
	// FormatBench is Go benchmark format with a "machine: NAME" configuration line
	// before each machine's results, for `benchstat -col machine FILE`.
	FormatBench Format = "bench"
)

// ParseFormat parses a Format name ("text", "markdown" or "bench").
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatText, FormatMarkdown, FormatBench:
		return f, nil
	case "md":
		return FormatMarkdown, nil
	case "benchstat":
		return FormatBench, nil
	}
	return "", fmt.Errorf("unknown compare format %q (want text, markdown or bench)", s)
}

// metric is the one number a comparison table shows for a scenario.
type metric struct {
	title        string // "round-trip time p50"
	higherBetter bool
	get          func(Result) float64
	format       func(float64) string
}

var (
	metricRTT = metric{title: "round-trip time p50", get: func(r Result) float64 { return r.RTT.P50 }, format: formatNs}
	metricBPS = metric{title: "throughput", higherBetter: true, get: func(r Result) float64 { return r.BytesPerSec }, format: formatBytesPerSec}
	metricMPS = metric{title: "messages per second", higherBetter: true, get: func(r Result) float64 { return r.MsgsPerSec }, format: formatRate}
	// metricDelay: a qos result's RTT is its units' one-way delay to play-out.
	metricDelay = metric{title: "delay p50, send to play-out", get: func(r Result) float64 { return r.RTT.P50 }, format: formatNs}
)

// metricFor picks the scenario's headline number: throughput for "stream", the
// round-trip median where one was measured, else the message rate.
func metricFor(scenario string, results []Result) metric {
	if scenario == "stream" {
		return metricBPS
	}
	if scenario == ScenarioQoS {
		return metricDelay
	}
	for _, r := range results {
		if r.RTT.P50 > 0 {
			return metricRTT
		}
	}
	for _, r := range results {
		if r.MsgsPerSec > 0 {
			return metricMPS
		}
	}
	return metricBPS
}

// group is one comparison table: one scenario and size, rows of series, a column per run.
type group struct {
	scenario string
	size     int
	metric   metric
	rows     []Key       // Scenario and Size equal to the group's
	vals     [][]float64 // [row][run]: median of the metric, NaN where not measured
	n        [][]int     // [row][run]: number of samples
}

// buildGroups arranges the runs' results into tables: scenarios in order of first
// appearance, sizes ascending, rows in order of first appearance.
func buildGroups(runs []Run) []group {
	var scenarios []string
	byScenario := map[string][]Result{}
	for _, run := range runs {
		for _, r := range run.Results {
			if _, ok := byScenario[r.Scenario]; !ok {
				scenarios = append(scenarios, r.Scenario)
			}
			byScenario[r.Scenario] = append(byScenario[r.Scenario], r)
		}
	}
	var groups []group
	for _, sc := range scenarios {
		m := metricFor(sc, byScenario[sc])
		var sizes []int
		seenSize := map[int]bool{}
		for _, r := range byScenario[sc] {
			if !seenSize[r.Size] {
				seenSize[r.Size] = true
				sizes = append(sizes, r.Size)
			}
		}
		sort.Ints(sizes)
		for _, size := range sizes {
			g := group{scenario: sc, size: size, metric: m}
			rowIdx := map[Key]int{}
			samples := [][][]float64{} // [row][run][]
			for ri, run := range runs {
				for _, r := range run.Results {
					if r.Scenario != sc || r.Size != size {
						continue
					}
					k := r.Key()
					i, ok := rowIdx[k]
					if !ok {
						i = len(g.rows)
						rowIdx[k] = i
						g.rows = append(g.rows, k)
						samples = append(samples, make([][]float64, len(runs)))
					}
					if v := m.get(r); v > 0 {
						samples[i][ri] = append(samples[i][ri], v)
					}
				}
			}
			for _, row := range samples {
				vals := make([]float64, len(runs))
				ns := make([]int, len(runs))
				for ri, s := range row {
					vals[ri] = median(s)
					ns[ri] = len(s)
				}
				g.vals = append(g.vals, vals)
				g.n = append(g.n, ns)
			}
			groups = append(groups, g)
		}
	}
	return groups
}

// median returns the median of s, NaN if s is empty.
func median(s []float64) float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	c := append([]float64(nil), s...)
	sort.Float64s(c)
	if len(c)%2 == 1 {
		return c[len(c)/2]
	}
	return (c[len(c)/2-1] + c[len(c)/2]) / 2
}

// ratio returns v/base, NaN unless both were measured.
func ratio(v, base float64) float64 {
	if math.IsNaN(v) || math.IsNaN(base) || base <= 0 {
		return math.NaN()
	}
	return v / base
}

// geomean returns the geometric mean of the ratios of column run to column 0 over the
// rows where both were measured, and how many rows that was.
func (g group) geomean(run int) (float64, int) {
	sum, n := 0.0, 0
	for _, row := range g.vals {
		if r := ratio(row[run], row[0]); !math.IsNaN(r) {
			sum += math.Log(r)
			n++
		}
	}
	if n == 0 {
		return math.NaN(), 0
	}
	return math.Exp(sum / float64(n)), n
}

// Compare writes the runs side by side: for every scenario and message size a table
// with a row per primitive, implementation, wait strategy and pinning, a column per
// run, and each value's ratio to the first run's. Where a run holds several results
// for one row (repeated runs), the table shows their median. FormatBench writes the
// results in Go benchmark format instead, for benchstat.
func Compare(w io.Writer, runs []Run, format Format) error {
	if len(runs) == 0 {
		return fmt.Errorf("%w: nothing to compare", ErrInvalid)
	}
	for _, r := range runs {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("%s: %w", r.Name, err)
		}
	}
	switch format {
	case FormatText, "":
		return compareTables(w, runs, false)
	case FormatMarkdown:
		return compareTables(w, runs, true)
	case FormatBench:
		ew := &errWriter{w: w}
		names := labels(runs)
		for i, r := range runs {
			if i > 0 {
				ew.printf("\n")
			}
			ew.printf("machine: %s\n", names[i])
			writeBench(ew, names[i], r)
		}
		return ew.err
	}
	return fmt.Errorf("unknown compare format %q", format)
}

// compareTables writes the machine list and one table per group.
func compareTables(w io.Writer, runs []Run, md bool) error {
	ew := &errWriter{w: w}
	names := labels(runs)
	if md {
		ew.printf("## Machines\n\n")
		var t table.Table
		t.Add("run", "hostname", "kernel", "os", "cpu", "cpus", "virt", "go", "ipclab")
		for i, r := range runs {
			m := r.Machine
			t.Add(names[i], m.Hostname, m.Kernel, m.OS, m.CPUModel, itoa(m.CPUs), m.Virtualization, m.GoVersion, m.IpclabVersion)
		}
		ew.table(&t, true)
	} else {
		ew.printf("machines (ratios are against %s):\n", names[0])
		t := table.Table{Indent: "  "}
		for i, r := range runs {
			m := r.Machine
			host := ""
			if m.Hostname != "" && m.Hostname != names[i] {
				host = "host " + m.Hostname
			}
			t.Add(names[i], "kernel "+dash(m.Kernel), dash(m.OS), itoa(m.CPUs)+" CPUs", dash(m.Virtualization), dash(m.GoVersion), host)
		}
		ew.table(&t, false)
	}
	for _, g := range buildGroups(runs) {
		better := "lower is better"
		if g.metric.higherBetter {
			better = "higher is better"
		}
		title := fmt.Sprintf("%s, %s: %s (%s)", g.scenario, formatSize(g.size), g.metric.title, better)
		if md {
			ew.printf("\n### %s\n\n", title)
		} else {
			ew.printf("\n%s\n", title)
		}
		head := []string{"primitive", "impl", "wait", "pin", names[0]}
		for _, n := range names[1:] {
			head = append(head, n, "ratio")
		}
		t := table.Table{Right: table.RightFrom(4)}
		t.Add(head...)
		for i, k := range g.rows {
			row := []string{k.Primitive, k.Impl, dash(k.Wait), dash(k.Pin)}
			for ri := range runs {
				row = append(row, formatValue(g.metric, g.vals[i][ri], g.n[i][ri]))
				if ri > 0 {
					row = append(row, formatRatio(ratio(g.vals[i][ri], g.vals[i][0])))
				}
			}
			t.Add(row...)
		}
		if len(runs) > 1 && len(g.rows) > 1 {
			row := []string{"geomean", "", "", "", ""}
			for ri := 1; ri < len(runs); ri++ {
				gm, _ := g.geomean(ri)
				row = append(row, "", formatRatio(gm))
			}
			t.Add(row...)
		}
		ew.table(&t, md)
	}
	return ew.err
}

// formatValue formats a table cell, noting the number of samples when there were
// several.
func formatValue(m metric, v float64, n int) string {
	if math.IsNaN(v) {
		return "-"
	}
	s := m.format(v)
	if n > 1 {
		s += fmt.Sprintf(" (n=%d)", n)
	}
	return s
}

func formatRatio(r float64) string {
	if math.IsNaN(r) {
		return "-"
	}
	return fmt.Sprintf("%.2fx", r)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func itoa(n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

// formatSize formats a message size: "64 B", "4 KiB", "1 MiB", "1500 B".
func formatSize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// sig3 formats v with three significant digits (no exponent for v < 1e6).
func sig3(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// formatNs formats nanoseconds with a unit: "850ns", "9.85µs", "1.23ms", "2.50s".
func formatNs(ns float64) string {
	switch {
	case ns < 1e3:
		return sig3(ns) + "ns"
	case ns < 1e6:
		return sig3(ns/1e3) + "µs"
	case ns < 1e9:
		return sig3(ns/1e6) + "ms"
	}
	return sig3(ns/1e9) + "s"
}

// formatBytesPerSec formats a throughput in decimal units, as Go's MB/s is.
func formatBytesPerSec(b float64) string {
	switch {
	case b < 1e3:
		return sig3(b) + " B/s"
	case b < 1e6:
		return sig3(b/1e3) + " kB/s"
	case b < 1e9:
		return sig3(b/1e6) + " MB/s"
	}
	return sig3(b/1e9) + " GB/s"
}

// formatRate formats a count per second: "950/s", "125k/s", "1.20M/s".
func formatRate(v float64) string {
	switch {
	case v < 1e3:
		return sig3(v) + "/s"
	case v < 1e6:
		return sig3(v/1e3) + "k/s"
	}
	return sig3(v/1e6) + "M/s"
}

// errWriter remembers the first write error so that writers can print freely.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err != nil {
		return
	}
	_, e.err = fmt.Fprintf(e.w, format, args...)
}

// table writes t as text, or as Markdown when md is set.
func (e *errWriter) table(t *table.Table, md bool) {
	if e.err != nil {
		return
	}
	if md {
		e.err = t.WriteMarkdown(e.w)
	} else {
		e.err = t.WriteText(e.w)
	}
}

func (e *errWriter) write(s string) {
	if e.err != nil {
		return
	}
	_, e.err = io.WriteString(e.w, s)
}
