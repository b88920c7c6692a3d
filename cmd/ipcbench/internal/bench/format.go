package bench

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/ipclab/ipclab/cmd/ipcbench/internal/report"
	"github.com/ipclab/ipclab/internal/table"
)

// ParseSize parses "64", "4K", "64KiB", "1M" (binary multiples).
func ParseSize(s string) (int, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "IB"), "B")
	mult := 1
	switch {
	case strings.HasSuffix(t, "K"):
		mult, t = 1<<10, t[:len(t)-1]
	case strings.HasSuffix(t, "M"):
		mult, t = 1<<20, t[:len(t)-1]
	case strings.HasSuffix(t, "G"):
		mult, t = 1<<30, t[:len(t)-1]
	}
	n, err := strconv.Atoi(t)
	switch {
	case errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(t, "-"), err == nil && n > math.MaxInt/mult:
		return 0, fmt.Errorf("size %q is too large", s)
	case err != nil || n <= 0:
		return 0, fmt.Errorf("bad size %q (want e.g. 64, 4K, 1M)", s)
	}
	return n * mult, nil
}

// FormatSize prints a size the way ParseSize reads it: 64, 4K, 1M, 2G.
func FormatSize(n int) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dG", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dK", n>>10)
	}
	return strconv.Itoa(n)
}

func formatNs(ns float64) string {
	switch {
	case ns >= 1e9:
		return fmt.Sprintf("%.2fs", ns/1e9)
	case ns >= 1e6:
		return fmt.Sprintf("%.2fms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.2fµs", ns/1e3)
	}
	return fmt.Sprintf("%.0fns", ns)
}

func formatRate(bps float64) string {
	switch {
	case bps >= 1e9:
		return fmt.Sprintf("%.2f GB/s", bps/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.1f MB/s", bps/1e6)
	case bps >= 1e3:
		return fmt.Sprintf("%.1f kB/s", bps/1e3)
	}
	return fmt.Sprintf("%.0f B/s", bps)
}

// WriteTable prints results as an aligned table for people. Each row with a raw
// baseline beside it also shows the library's overhead against that baseline.
func WriteTable(w io.Writer, f report.File) error {
	m := f.Machine
	fmt.Fprintf(w, "ipcbench on %s: kernel %s, %s, %d CPUs (%s), %s\n", m.Hostname, m.Kernel, m.CPUModel, m.CPUs, m.Virtualization, m.GoVersion)
	if len(f.Results) == 0 {
		_, err := fmt.Fprintln(w, "no results")
		return err
	}
	var order []string
	for _, r := range f.Results {
		if !slices.Contains(order, r.Scenario) {
			order = append(order, r.Scenario)
		}
	}
	for _, sc := range order {
		var rs []report.Result
		for _, r := range f.Results {
			if r.Scenario == sc {
				rs = append(rs, r)
			}
		}
		if err := writeScenario(w, rs); err != nil {
			return err
		}
	}
	return nil
}

func writeScenario(w io.Writer, results []report.Result) error {
	r0 := results[0]
	if r0.Scenario == ScenarioQoS {
		return writeQoS(w, results)
	}
	what := "round trip (send + reply), not halved"
	switch r0.Scenario {
	case ScenarioStream:
		what = "time per message in back-to-back batches; throughput one way"
	case ScenarioFanIn:
		what = "several sender processes, one receiver: time per message received, in batches; throughput into the receiver"
	case ScenarioFdPass:
		what = "round trip, each message out carrying one descriptor, not halved"
	case ScenarioCall:
		what = "call round trip (request + reply), not halved"
	case ScenarioRPC:
		what = "remote call round trip (argument and result of the size), not halved; door and tcp are the baselines"
	}
	fmt.Fprintf(w, "\nscenario %s: %s; pin=%s (%s)\n\n", r0.Scenario, what, r0.Pin, pinMeaning(r0.Pin))
	withStd := slices.ContainsFunc(results, func(r report.Result) bool { return r.Impl == ImplStd })
	t := table.Table{Right: table.RightFrom(0), Indent: "  "}
	head := []string{"primitive", "impl", "wait", "size", "iters", "min", "p50", "p90", "p99", "max", "msgs/s", "throughput", "vs raw (p50)"}
	if withStd {
		head = append(head, "vs std (p50)")
	}
	t.Add(head...)
	for _, r := range results {
		row := []string{r.Primitive, r.Impl, r.Wait, FormatSize(r.Size), strconv.Itoa(r.Iterations),
			formatNs(r.RTT.Min), formatNs(r.RTT.P50), formatNs(r.RTT.P90), formatNs(r.RTT.P99), formatNs(r.RTT.Max),
			fmt.Sprintf("%.0f", r.MsgsPerSec), formatRate(r.BytesPerSec), versus(results, r, ImplRaw)}
		if withStd && r.Impl == ImplIpclab {
			row = append(row, versus(results, r, ImplStd))
		}
		t.Add(row...)
	}
	if err := t.WriteText(w); err != nil {
		return err
	}
	if withStd {
		_, err := fmt.Fprintln(w, "std is the Go standard library's way (os.Pipe, net.UnixConn, net.UDPConn), waiting in the runtime's poller like ipclab's poller rows.")
		return err
	}
	return nil
}

// writeQoS prints the results of scenario qos: per stream the contract, how the
// source kept it (its long-run rate and largest burst on the units' send times, and a
// replay of its token bucket) and how the sink played it out.
func writeQoS(w io.Writer, results []report.Result) error {
	r0 := results[0]
	fmt.Fprintf(w, "\nscenario %s: a shaped stream from the peer (source) to this process (sink); pin=%s (%s)\n", r0.Scenario, r0.Pin, pinMeaning(r0.Pin))
	if q := r0.QoS; q != nil {
		fmt.Fprintf(w, "  contract: token bucket of %.0f units/s, depth %s; %s play-out %s to %s after sending\n",
			q.ContractRate/float64(q.UnitBytes), units(float64(q.Depth), q.UnitBytes), q.Mode, formatNs(q.MinDelayNs), formatNs(q.MaxDelayNs))
		fmt.Fprintf(w, "  workload: %s (seed %d): %s offered on average\n", q.Workload, q.Seed, unitRate(q.OfferedRate, q.UnitBytes))
	}
	fmt.Fprintln(w)
	t := table.Table{Right: table.RightFrom(2), Indent: "  "}
	t.Add("primitive", "wait", "size", "sent", "lost", "late", "contract", "long-run rate", "max burst/depth", "bucket breaches", "delay p50", "delay p99", "jitter p99")
	for _, r := range results {
		q := r.QoS
		if q == nil {
			continue
		}
		t.Add(r.Primitive, r.Wait, FormatSize(r.Size), strconv.Itoa(q.Sent), strconv.Itoa(q.Lost), strconv.Itoa(q.Late),
			unitRate(q.ContractRate, q.UnitBytes), fmt.Sprintf("%s ×%.3f", unitRate(q.LongRunRate, q.UnitBytes), q.RateRatio),
			fmt.Sprintf("%.1f/%d", q.MaxBurst/float64(q.UnitBytes), q.Depth/q.UnitBytes), strconv.Itoa(q.BucketBreaches),
			formatNs(q.DelayP50Ns), formatNs(q.DelayP99Ns), formatNs(q.JitterP99Ns))
	}
	if err := t.WriteText(w); err != nil {
		return err
	}
	_, err := fmt.Fprint(w, "Rates and depths count units on the wire, headers included. Long-run rate and max burst (in units) are measured on\n"+
		"the send times; bucket breaches: units a replay of the token bucket over the send times finds without tokens (0 for a\n"+
		"shaped stream). Delays run from sending to play-out; late: arrived or played out after the maximum delay; lost: sent, never received.\n")
	return err
}

// unitRate formats a rate in bytes per second of units of unit bytes: "1000 units/s".
func unitRate(bps float64, unit int) string {
	return fmt.Sprintf("%.0f/s", bps/float64(unit))
}

// units formats bytes as a number of units of unit bytes.
func units(b float64, unit int) string {
	if n := b / float64(unit); n == math.Trunc(n) {
		return fmt.Sprintf("%.0f units", n)
	}
	return fmt.Sprintf("%.1f units", b/float64(unit))
}

// versus returns r's p50 against the baseline of implementation impl measured beside
// it ("+12.3%"), or "" when r is that implementation or there is none.
func versus(results []report.Result, r report.Result, impl string) string {
	if r.Impl == impl {
		return ""
	}
	if base, ok := baseFor(results, r, impl); ok && base.RTT.P50 > 0 {
		return fmt.Sprintf("%+.1f%%", (r.RTT.P50/base.RTT.P50-1)*100)
	}
	return ""
}

func pinMeaning(pin string) string {
	switch pin {
	case PinSame:
		return "both processes on one CPU"
	case PinCross:
		return "one CPU each: every hand-off wakes the other CPU"
	}
	return "not pinned: the scheduler decides"
}

// baseFor finds the result of implementation impl measured beside r.
func baseFor(results []report.Result, r report.Result, impl string) (report.Result, bool) {
	for _, b := range results {
		if b.Impl == impl && b.Primitive == r.Primitive && b.Size == r.Size && b.Scenario == r.Scenario && b.Pin == r.Pin {
			return b, true
		}
	}
	return report.Result{}, false
}

// WriteCSV prints one row per result with a header row.
func WriteCSV(w io.Writer, f report.File) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"primitive", "impl", "scenario", "size", "wait", "pin", "iterations",
		"rtt_min_ns", "rtt_p50_ns", "rtt_p90_ns", "rtt_p99_ns", "rtt_p999_ns", "rtt_max_ns", "rtt_mean_ns",
		"bytes_per_sec", "msgs_per_sec", "kernel", "cpu_model"})
	g := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	for _, r := range f.Results {
		_ = cw.Write([]string{r.Primitive, r.Impl, r.Scenario, strconv.Itoa(r.Size), r.Wait, r.Pin, strconv.Itoa(r.Iterations),
			g(r.RTT.Min), g(r.RTT.P50), g(r.RTT.P90), g(r.RTT.P99), g(r.RTT.P999), g(r.RTT.Max), g(r.RTT.Mean),
			g(r.BytesPerSec), g(r.MsgsPerSec), f.Machine.Kernel, f.Machine.CPUModel})
	}
	cw.Flush()
	return cw.Error()
}
