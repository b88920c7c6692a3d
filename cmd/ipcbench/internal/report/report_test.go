package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestDecodeKeepsUnknownMachineFields(t *testing.T) {
	in := `{"machine": {"hostname": "h", "kernel": "6.1.0", "cpus": 4, "timestamp": "2026-11-20T14:02:11Z",
		"arch": "x86_64", "numa": {"nodes": 1}, "new_field": [1, 2]},
		"results": [{"primitive": "pipe", "impl": "raw", "scenario": "pingpong", "size": 64, "wait": "kernel",
		"pin": "same", "iterations": 10, "rtt_ns": {"p50": 1000, "future_percentile": 5}, "unknown_result_field": true}],
		"unknown_top": 1}`
	f, err := Decode(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	m := f.Machine
	if m.Hostname != "h" || m.Kernel != "6.1.0" || m.CPUs != 4 || !m.Timestamp.Equal(time.Date(2026, 11, 20, 14, 2, 11, 0, time.UTC)) {
		t.Errorf("known fields: %+v", m)
	}
	if got := strings.Join(m.ExtraKeys(), ","); got != "arch,new_field,numa" {
		t.Errorf("extra keys %q", got)
	}
	if len(f.Results) != 1 || f.Results[0].RTT.P50 != 1000 || f.Results[0].Key().Series() != "pipe/raw/kernel/same" {
		t.Errorf("results: %+v", f.Results)
	}

	// Marshalling keeps the extra fields, and decoding that gives the same machine.
	out, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"arch":"x86_64"`, `"numa":{"nodes":1}`, `"new_field":[1,2]`, `"timestamp":"2026-11-20T14:02:11Z"`} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("marshalled %s lacks %s", out, want)
		}
	}
	f2, err := Decode(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	out2, _ := json.Marshal(f2)
	if !bytes.Equal(out, out2) {
		t.Errorf("round trip changed the document:\n%s\n%s", out, out2)
	}
}

func TestMachineMarshalOmitsZeroTimestamp(t *testing.T) {
	out, err := json.Marshal(Machine{Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("timestamp")) {
		t.Errorf("zero timestamp marshalled: %s", out)
	}
	// An Extra key naming a known field must not produce a duplicate key.
	out, err = json.Marshal(Machine{Hostname: "h", Extra: map[string]any{"hostname": "other", "x": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(out, []byte(`"hostname"`)) != 1 || !bytes.Contains(out, []byte(`"x":1`)) {
		t.Errorf("got %s", out)
	}
}

func TestDecodeRejects(t *testing.T) {
	for name, in := range map[string]string{
		"not-json":       `not json`,
		"wrong-type":     `{"machine": {"cpus": "two"}, "results": []}`,
		"no-primitive":   `{"results": [{"impl": "raw", "scenario": "pingpong"}]}`,
		"no-impl":        `{"results": [{"primitive": "pipe", "scenario": "pingpong"}]}`,
		"no-scenario":    `{"results": [{"primitive": "pipe", "impl": "raw"}]}`,
		"negative-size":  `{"results": [{"primitive": "pipe", "impl": "raw", "scenario": "s", "size": -1}]}`,
		"negative-value": `{"results": [{"primitive": "pipe", "impl": "raw", "scenario": "s", "rtt_ns": {"p50": -3}}]}`,
		"negative-ebpf":  `{"results": [{"primitive": "pipe", "impl": "raw", "scenario": "s", "ebpf": {"breakdown": {"oncpu_ns": -1}}}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Decode(strings.NewReader(in)); err == nil {
				t.Fatal("decoded without error")
			}
		})
	}
	_, err := Decode(strings.NewReader(`{"results": [{"primitive": "pipe"}]}`))
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("validation error %v does not wrap ErrInvalid", err)
	}
}

func TestLoad(t *testing.T) {
	if _, err := LoadFiles(); !errors.Is(err, ErrInvalid) {
		t.Errorf("LoadFiles(): %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"results": [{}]}`), 0o644)
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("bad file: %v", err)
	}
	runs := loadFixtures(t)
	if runs[0].Name != "fixture-debian12" || runs[2].Name != "fixture-almalinux9" {
		t.Errorf("names %q %q", runs[0].Name, runs[2].Name)
	}
}

func TestLabels(t *testing.T) {
	runs := []Run{
		{Name: "a"}, {Name: "a"}, {Name: "a#2"},
		{File: File{Machine: Machine{Hostname: "host"}}}, {},
	}
	got := strings.Join(labels(runs), ",")
	if want := "a,a#2,a#2#2,host,run 5"; got != want {
		t.Errorf("labels %q, want %q", got, want)
	}
}

// run builds a one-machine run from results.
func run(name string, results ...Result) Run {
	return Run{Name: name, File: File{Machine: Machine{Hostname: name, Kernel: "k-" + name}, Results: results}}
}

func ping(prim string, size int, p50 float64) Result {
	return Result{Primitive: prim, Impl: "ipclab", Scenario: "pingpong", Size: size, Wait: "kernel", Pin: "same",
		Iterations: 1000, RTT: Latency{P50: p50, P99: 2 * p50, Mean: 1.1 * p50}, MsgsPerSec: 1e9 / p50}
}

func TestCompareTables(t *testing.T) {
	a := run("a", ping("pipe", 64, 1000), ping("fifo", 64, 2000), ping("pipe", 64, 3000))
	b := run("b", ping("pipe", 64, 500), ping("door", 64, 900))
	var out bytes.Buffer
	if err := Compare(&out, []Run{a, b}, FormatText); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	// Two samples for pipe in a: the median (2µs) with n=2; b is half of that.
	for _, re := range []string{
		`pingpong, 64 B: round-trip time p50 \(lower is better\)`,
		`pipe\s+ipclab\s+kernel\s+same\s+2.00µs \(n=2\)\s+500ns\s+0.25x`,
		`fifo\s+ipclab\s+kernel\s+same\s+2.00µs\s+-\s+-`,
		`door\s+ipclab\s+kernel\s+same\s+-\s+900ns\s+-`,
		`geomean\s+0.25x`,
	} {
		if !regexp.MustCompile(re).MatchString(s) {
			t.Errorf("output lacks %s:\n%s", re, s)
		}
	}

	if err := Compare(&out, nil, FormatText); !errors.Is(err, ErrInvalid) {
		t.Errorf("no runs: %v", err)
	}
	if err := Compare(&out, []Run{a}, "xml"); err == nil {
		t.Error("unknown format accepted")
	}
	bad := run("bad", Result{Primitive: "pipe"})
	if err := Compare(&out, []Run{bad}, FormatText); !errors.Is(err, ErrInvalid) {
		t.Errorf("invalid run: %v", err)
	}
	if err := Compare(failWriter{}, []Run{a, b}, FormatText); err == nil {
		t.Error("write error not returned")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"text": FormatText, "markdown": FormatMarkdown, "md": FormatMarkdown, "bench": FormatBench, "benchstat": FormatBench} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseFormat("yaml"); err == nil {
		t.Error("ParseFormat(yaml) succeeded")
	}
}

// benchLine is the Go benchmark format: name, iterations, then value-unit pairs.
var benchLine = regexp.MustCompile(`^Benchmark[^a-z\s]\S* \t\d+( \t[0-9.]+(e[-+]?\d+)? \S+)+$`)

func TestBenchFormat(t *testing.T) {
	runs := loadFixtures(t)
	runs = append(runs, run("odd name", Result{Primitive: "a b/c=d", Impl: "raw", Scenario: "fan-in", Size: 8, Iterations: 0, MsgsPerSec: 10}))
	var b bytes.Buffer
	if err := Compare(&b, runs, FormatBench); err != nil {
		t.Fatal(err)
	}
	lines, machines := 0, 0
	for _, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		switch {
		case l == "" || strings.HasPrefix(l, "# "):
		case strings.HasPrefix(l, "machine: "):
			machines++
		case benchLine.MatchString(l):
			lines++
		default:
			t.Errorf("not Go benchmark format: %q", l)
		}
	}
	want := 0
	for _, r := range runs {
		want += len(r.Results)
	}
	if lines != want || machines != len(runs) {
		t.Errorf("%d benchmark lines for %d results, %d machine lines for %d runs", lines, want, machines, len(runs))
	}
	if !strings.Contains(b.String(), "BenchmarkFan-in/prim=a_b_c_d/impl=raw/size=8 \t1 \t100000000 ns/op \t10 msgs/s\n") {
		t.Errorf("odd names not sanitised:\n%s", b.String())
	}
}

// TestBenchstat feeds the bench output to benchstat, when it is installed, and checks
// that it compares the machines in one table.
func TestBenchstat(t *testing.T) {
	bs, err := exec.LookPath("benchstat")
	if err != nil {
		t.Skip("benchstat is not installed (go install golang.org/x/perf/cmd/benchstat@latest)")
	}
	runs := loadFixtures(t)
	dir := t.TempDir()
	var all bytes.Buffer
	if err := Compare(&all, runs, FormatBench); err != nil {
		t.Fatal(err)
	}
	allPath := filepath.Join(dir, "all.txt")
	os.WriteFile(allPath, all.Bytes(), 0o644)
	out, err := exec.Command(bs, "-col", "machine", allPath).CombinedOutput()
	if err != nil {
		t.Fatalf("benchstat: %v\n%s", err, out)
	}
	header := regexp.MustCompile(`│\s+fixture-debian12\s+│\s+fixture-ubuntu2404\s+│\s+fixture-almalinux9\s+│`)
	if !header.Match(out) || !strings.Contains(string(out), "Pingpong/prim=pipe/impl=ipclab/wait=poller/pin=same/size=64") {
		t.Errorf("benchstat -col machine did not compare the machines:\n%.3000s", out)
	}

	// Per-machine files, as benchstat A.txt B.txt expects.
	var paths []string
	for _, r := range runs {
		var b bytes.Buffer
		if err := WriteBench(&b, r); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, r.Name+".txt"), b.Bytes(), 0o644)
		paths = append(paths, r.Name+".txt")
	}
	cmd := exec.Command(bs, paths...)
	cmd.Dir = dir
	out, err = cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("benchstat: %v\n%s", err, out)
	}
	header = regexp.MustCompile(`│\s+fixture-debian12.txt\s+│\s+fixture-ubuntu2404.txt\s+│\s+fixture-almalinux9.txt\s+│`)
	if !header.Match(out) {
		t.Errorf("benchstat A.txt B.txt C.txt did not compare the files in one table:\n%.3000s", out)
	}
}

func TestHTMLEscapesAndDegrades(t *testing.T) {
	evil := `<script>alert(1)</script>`
	r := run(evil, ping(evil, 64, 1000))
	r.Machine.OS = evil
	r.Machine.Extra = map[string]any{"note": evil}
	var b bytes.Buffer
	if err := HTML(&b, []Run{r}); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	if strings.Contains(s, evil) {
		t.Error("unescaped input in the page")
	}
	if n := strings.Count(s, "<script>"); n != 2 {
		t.Errorf("%d <script> elements, want the page's own 2", n)
	}
	// No stream or eBPF results: the sections say so instead of drawing nothing.
	for _, want := range []string{"No stream results", "No eBPF data", `<svg class="chart" id="latency-0"`} {
		if !strings.Contains(s, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if err := HTML(&b, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("HTML(nil): %v", err)
	}
}

// TestHTMLSelfContained checks that the page references nothing outside itself.
func TestHTMLSelfContained(t *testing.T) {
	var b bytes.Buffer
	if err := HTML(&b, loadFixtures(t)); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	for _, re := range []string{`(?i)(src|href)\s*=\s*["']?(https?:)?//`, `(?i)@import`, `(?i)url\(`, `(?i)<link\b`, `(?i)<iframe\b`} {
		if m := regexp.MustCompile(re).FindString(s); m != "" {
			t.Errorf("page references an outside resource: %q", m)
		}
	}
	if !strings.Contains(s, `Content-Security-Policy" content="default-src 'none'`) {
		t.Error("page lacks its Content-Security-Policy")
	}
	// Latency: 3 machines + 3 sizes across machines; throughput: 3 machines × 4
	// implementation/wait variants; eBPF: the 2 traced machines.
	if got, want := strings.Count(s, `<svg class="chart"`), 3+3+12+2; got != want {
		t.Errorf("%d charts, want %d", got, want)
	}
}

func TestFormatting(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{formatNs(850), "850ns"}, {formatNs(9850), "9.85µs"}, {formatNs(12345), "12.3µs"}, {formatNs(1.5e6), "1.50ms"}, {formatNs(2e9), "2.00s"},
		{formatBytesPerSec(12.2e6), "12.2 MB/s"}, {formatBytesPerSec(3.456e9), "3.46 GB/s"}, {formatBytesPerSec(500), "500 B/s"},
		{formatRate(125000), "125k/s"}, {formatRate(1.2e6), "1.20M/s"},
		{formatSize(64), "64 B"}, {formatSize(4096), "4 KiB"}, {formatSize(1 << 20), "1 MiB"}, {formatSize(1500), "1500 B"},
		{formatRatio(math.NaN()), "-"}, {formatRatio(0.5), "0.50x"},
		{shortNs(2000), "2µs"}, {shortNs(20000), "20µs"}, {shortNs(500), "500ns"}, {shortBps(1e8), "100 MB/s"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestScales(t *testing.T) {
	s := newLogScale(300, 45000, 0, 300)
	if s.lo != 100 || s.hi != 1e5 {
		t.Errorf("log scale [%v, %v], want [100, 1e5]", s.lo, s.hi)
	}
	if p := s.pos(1000); math.Abs(p-100) > 1e-9 {
		t.Errorf("pos(1000) = %v, want 100", p)
	}
	if n := len(s.ticks()); n != 10 { // 100..1e5: 1,2,5 per decade, 3 decades, plus 1e5
		t.Errorf("%d ticks: %v", n, s.ticks())
	}
	l := newLinScale(37, 0, 100)
	if l.hi != 50 || l.pos(25) != 50 {
		t.Errorf("lin scale hi %v pos(25) %v", l.hi, l.pos(25))
	}
}
