package report

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestHTMLReadyWait checks that a poller-mode row's breakdown shows its readiness
// wait as a segment of its own, labelled as such, and a kernel-wait row does not.
func TestHTMLReadyWait(t *testing.T) {
	poller := ping("pipe", 64, 1000)
	poller.Impl, poller.Wait = "std", "poller"
	poller.EBPF = &EBPF{Probes: true, Breakdown: &Breakdown{SyscallNs: 300, OnCPUNs: 300, ReadyWaitNs: 4200, ReadyWaits: 900}}
	kernel := ping("pipe", 64, 1000)
	kernel.Impl, kernel.Wait = "ipclab", "kernel"
	kernel.EBPF = &EBPF{Probes: true, Breakdown: &Breakdown{SyscallNs: 1500, OnCPUNs: 500, OffCPUPeerNs: 1000}}
	var b bytes.Buffer
	if err := HTML(&b, []Run{run("vm", poller, kernel)}); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	marks := regexp.MustCompile(`<title>vm ([^,]*), 64 B: readiness wait \(poller mode: after EAGAIN, outside the call\) ([^<]*) per operation</title>`).FindAllStringSubmatch(s, -1)
	if len(marks) != 1 {
		t.Fatalf("%d readiness-wait segments, want 1 (the poller row's)", len(marks))
	}
	if !strings.HasPrefix(marks[0][1], "pipe/std/poller") || marks[0][2] != formatNs(4200) {
		t.Errorf("readiness-wait segment %q, want pipe/std/poller's %s", marks[0][0], formatNs(4200))
	}
	if !strings.Contains(s, "readiness wait</em> segment") {
		t.Error("the section does not explain the readiness wait")
	}
}

// ebpfRuns loads two real `ipcbench run --ebpf` results (pipe and unix-stream, 64 B
// and 4 KiB, poller and kernel waits, on this project's 2-CPU VM, one after the other).
func ebpfRuns(t *testing.T) []Run {
	t.Helper()
	runs, err := LoadFiles("testdata/ebpf-run1.json", "testdata/ebpf-run2.json")
	if err != nil {
		t.Fatal(err)
	}
	return runs
}

// checkHistograms checks that page has a histogram chart for every case traced in
// runs, with a panel per metric, a bar per non-empty bucket of every run's histogram
// and each run's p50 and p99 marked; it returns the number of histogram charts.
func checkHistograms(t *testing.T, page string, runs []Run) int {
	t.Helper()
	names := labels(runs)
	charts := regexp.MustCompile(`(?s)<svg class="chart" id="hist-\d+" role="img" aria-label="([^"]*)".*?</svg>`).FindAllStringSubmatch(page, -1)
	byLabel := map[string]string{}
	for _, c := range charts {
		byLabel[c[1]] = c[0]
	}
	traced := 0
	seen := map[Key]bool{}
	for i, run := range runs {
		for _, r := range run.Results {
			if r.EBPF == nil || r.EBPF.Breakdown == nil {
				continue
			}
			if len(r.EBPF.Histograms) == 0 {
				t.Errorf("%s: traced case %s %s has no histograms", names[i], r.Key().Series(), formatSize(r.Size))
				continue
			}
			if !seen[r.Key()] {
				seen[r.Key()] = true
				traced++
			}
			label := fmt.Sprintf("%s %s, %s: distributions of its system calls (eBPF, log2 buckets)", r.Key().Series(), formatSize(r.Size), r.Scenario)
			chart, ok := byLabel[label]
			if !ok {
				t.Errorf("no histogram chart for %q", label)
				continue
			}
			for _, m := range HistogramMetrics {
				if !strings.Contains(chart, `class="label">`+esc(m.Title)+`</text>`) {
					t.Errorf("%s: no panel %q", label, m.Title)
				}
			}
			for _, h := range r.EBPF.Histograms {
				title := ""
				for _, m := range HistogramMetrics {
					if m.Metric == h.Metric {
						title = m.Title
					}
				}
				bars := 0
				for _, c := range h.Buckets {
					if c > 0 {
						bars++
					}
				}
				prefix := esc(names[i] + ", " + title + " ")
				if got := strings.Count(chart, `<title>`+prefix) - 2; got != bars {
					t.Errorf("%s, %s %s: %d bars, want %d (the non-empty buckets)", label, names[i], h.Metric, got, bars)
				}
				for _, q := range []string{"p50 ≤ " + histValue(h.Unit, h.P50), "p99 ≤ " + histValue(h.Unit, h.P99)} {
					if !strings.Contains(chart, prefix+esc(q)+"</title>") {
						t.Errorf("%s, %s %s: %s not marked", label, names[i], h.Metric, q)
					}
				}
			}
		}
	}
	if len(charts) != traced {
		t.Errorf("%d histogram charts, want one per traced case (%d)", len(charts), traced)
	}
	return len(charts)
}

// TestHTMLHistograms checks the histogram section for two real --ebpf runs side by
// side, and that a case traced in one run only is drawn with that run alone.
func TestHTMLHistograms(t *testing.T) {
	runs := ebpfRuns(t)
	var b bytes.Buffer
	if err := HTML(&b, runs); err != nil {
		t.Fatal(err)
	}
	if n := checkHistograms(t, b.String(), runs); n == 0 {
		t.Fatal("no histogram charts")
	}
	// Every traced case of these 3-round runs has its round-by-round heatmap.
	for i, run := range runs {
		for _, r := range run.Results {
			if r.EBPF == nil || r.EBPF.Breakdown == nil {
				continue
			}
			if r.EBPF.RoundHeatmap == nil {
				t.Errorf("%s: %s %s has no round heatmap", run.Name, r.Key().Series(), formatSize(r.Size))
				continue
			}
			label := fmt.Sprintf(`aria-label="%s %s %s, time in call round by round (eBPF): `, labels(runs)[i], r.Key().Series(), formatSize(r.Size))
			if !strings.Contains(b.String(), label) {
				t.Errorf("no round heatmap %s", label)
			}
		}
	}

	one := runs[1]
	one.Results = one.Results[:1]
	b.Reset()
	if err := HTML(&b, []Run{runs[0], one}); err != nil {
		t.Fatal(err)
	}
	checkHistograms(t, b.String(), []Run{runs[0], one})

	b.Reset()
	if err := HTML(&b, loadFixtures(t)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "No eBPF histograms in these runs") {
		t.Error("runs without histograms: the section does not say so")
	}
}

// TestDecodeRejectsBadHistograms checks that a histogram whose buckets do not add up
// to its count, or of an unknown metric, is rejected.
func TestDecodeRejectsBadHistograms(t *testing.T) {
	for name, h := range map[string]string{
		"count":    `{"metric": "call", "unit": "ns", "buckets": [1, 2], "count": 4, "p50": 3, "p99": 7}`,
		"metric":   `{"metric": "nope", "unit": "ns", "buckets": [1], "count": 1}`,
		"quantile": `{"metric": "call", "unit": "ns", "buckets": [1], "count": 1, "p50": 7, "p99": 3}`,
	} {
		t.Run(name, func(t *testing.T) {
			in := `{"results": [{"primitive": "pipe", "impl": "raw", "scenario": "s", "ebpf": {"histograms": [` + h + `]}}]}`
			if _, err := Decode(strings.NewReader(in)); !errors.Is(err, ErrInvalid) {
				t.Fatalf("decoded %s: %v", h, err)
			}
		})
	}
}

// heatmapFixture is a trace of 4 intervals: fast calls throughout, a slow streak in
// the third.
func heatmapFixture() Heatmap {
	return Heatmap{Title: "pipe read", Metric: "call", Unit: "ns", Start: time.Unix(0, 0), Interval: 100 * time.Millisecond,
		Columns: [][]uint64{{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 900, 3}, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1000}, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 500}, nil}}
}

// TestHTMLHeatmap checks a heatmap's cells: one per interval and non-empty bucket,
// holding its count, darker for larger counts, at the column of its interval.
func TestHTMLHeatmap(t *testing.T) {
	var b bytes.Buffer
	if err := (Page{Heatmaps: []Heatmap{heatmapFixture()}}).WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	if !strings.Contains(s, `aria-label="pipe read, time in call over time (eBPF): 2413 values in 4 intervals of 100ms"`) {
		t.Fatalf("no heatmap titled with its total:\n%s", s)
	}
	cells := regexp.MustCompile(`<rect class="mark" x="([^"]*)" y="[^"]*" width="[^"]*" height="[^"]*" fill="([^"]*)"><title>([^<]*)</title>`).FindAllStringSubmatch(s, -1)
	want := []string{"0s–100ms: 1.02µs–2.05µs: 900", "0s–100ms: 2.05µs–4.09µs: 3", "100ms–200ms: 1.02µs–2.05µs: 1000",
		"200ms–300ms: 1.02µs–2.05µs: 10", "200ms–300ms: 1.05ms–2.10ms: 500"}
	if len(cells) != len(want) {
		t.Fatalf("%d cells, want %d", len(cells), len(want))
	}
	fill := map[string]string{}
	for i, c := range cells {
		if c[3] != want[i] {
			t.Errorf("cell %d: %q, want %q", i, c[3], want[i])
		}
		fill[c[3][strings.LastIndex(c[3], " ")+1:]] = c[2]
	}
	if fill["1000"] != heatColor(1) {
		t.Errorf("the largest count's colour %s, want %s", fill["1000"], heatColor(1))
	}
	if fill["3"] == fill["900"] || fill["10"] == fill["500"] {
		t.Error("different counts share a colour")
	}
	if cells[0][1] != cells[1][1] || cells[0][1] == cells[2][1] {
		t.Error("cells not in their interval's column")
	}

	bad := heatmapFixture()
	bad.Interval = 0
	if err := (Page{Heatmaps: []Heatmap{bad}}).WriteHTML(&b); !errors.Is(err, ErrInvalid) {
		t.Errorf("a heatmap without an interval: %v", err)
	}
}

// TestHTMLProbeCost checks that the breakdown chart states the probes' own cost
// measured at load, beside the overhead.
func TestHTMLProbeCost(t *testing.T) {
	r := ping("pipe", 64, 1000)
	r.EBPF = &EBPF{Probes: true, OverheadRatio: 1.2, Breakdown: &Breakdown{SyscallNs: 900, OnCPUNs: 900},
		ProbeRunNs: 200, ProbeRunsPerCall: 2.9, ProbeNsPerCall: 580}
	var b bytes.Buffer
	if err := HTML(&b, []Run{run("vm", r)}); err != nil {
		t.Fatal(err)
	}
	want := esc("probes' own cost " + formatNs(580) + " per traced call (2.9 runs of " + formatNs(200) + "), included")
	if !strings.Contains(b.String(), want) {
		t.Errorf("the breakdown chart does not state the probes' cost %q", want)
	}
}
