// Command ipcbench measures the latency and throughput of Linux IPC primitives between
// two real processes: this program and a re-executed copy of itself as the peer.
//
// Usage:
//
//	ipcbench                      the default suite: every available primitive at 64 B,
//	                              4 KiB and 64 KiB, ping-pong, both processes on one CPU
//	ipcbench run [flags]          a chosen measurement (ipcbench run -h for the flags)
//	ipcbench list                 the primitives and whether they work here
//	ipcbench compare A.json B.json...   results of several machines side by side
//	ipcbench report -o report.html A.json...   a self-contained HTML report
//
// Every measurement runs the primitive through ipclab ("impl ipclab", in each wait
// strategy it offers) and through bare system calls ("impl raw"), so the library's own
// overhead is always shown next to the kernel's cost. Latencies are full round trips
// (a message there and one back), never halved.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ipclab/ipclab/ebpf"
	"github.com/ipclab/ipclab/internal/bench"
	"github.com/ipclab/ipclab/internal/report"
	"github.com/ipclab/ipclab/ipc"
)

func main() {
	bench.PeerMain()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "ipcbench:", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ error }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "--help" {
		// The default suite, whose settings the same flags as run's may change.
		return runBench(ctx, args, stdout, stderr, true)
	}
	switch args[0] {
	case "run":
		return runBench(ctx, args[1:], stdout, stderr, false)
	case "list":
		return list(stdout)
	case "compare":
		return compare(args[1:], stdout)
	case "report":
		return htmlReport(args[1:], stdout)
	case "trace":
		return trace(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usageError{fmt.Errorf("unknown command %q\n%s", args[0], usage)}
}

const usage = `usage:
  ipcbench [flags]                  run the default suite (flags as for run)
  ipcbench run [flags]              run chosen measurements (see ipcbench run -h)
  ipcbench list                     list primitives and whether they work here
  ipcbench compare [-format text|markdown|bench] A.json B.json...
  ipcbench report -o report.html A.json B.json...
  ipcbench trace -p PID [-interval 1s] [-format text|table|json|prometheus]
`

type runFlags struct {
	prims, sizes, waits, impls string
	scenario, pin, format      string
	iters, rounds, peers       int
	duration, warmup           time.Duration
	output                     string
	ebpf                       bool
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer, defaults bool) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f runFlags
	fs.StringVar(&f.prims, "prim", "", "primitives, comma-separated (default: all available; see 'ipcbench list')")
	fs.StringVar(&f.sizes, "size", "64,4K,64K", "message sizes, comma-separated (64, 4K, 1M)")
	fs.StringVar(&f.scenario, "scenario", bench.ScenarioPingPong, "pingpong (round-trip latency), stream (one-way throughput), fanin (-peers senders, one receiver), fdpass (a descriptor with every message), call (door calls); several: pingpong,stream")
	fs.IntVar(&f.iters, "iters", 0, "timed iterations per measurement (default: as many as fit in -duration)")
	fs.IntVar(&f.peers, "peers", bench.DefaultPeers, "sender processes in the fanin scenario")
	fs.IntVar(&f.rounds, "rounds", 1, "measure everything this many times, interleaved, and merge: a case and its raw baseline then share the machine's drift")
	fs.DurationVar(&f.duration, "duration", time.Second, "length of each timed phase when -iters is not given")
	fs.DurationVar(&f.warmup, "warmup", 200*time.Millisecond, "untimed warm-up before each timed phase")
	fs.StringVar(&f.pin, "pin", bench.PinSame, "same (both processes on one CPU), cross (one CPU each) or none")
	fs.StringVar(&f.waits, "wait", "", "wait strategies for the ipclab runs: poller,kernel,spin (default: all a primitive supports)")
	fs.StringVar(&f.impls, "impl", "", "implementations: ipclab,std,raw (default: all; std, the Go standard library's way, only for pipe, unix-stream and udp)")
	fs.StringVar(&f.format, "format", "table", "output: table, json, csv or bench (Go benchmark format, for benchstat)")
	fs.StringVar(&f.output, "o", "", "write the results to this file instead of standard output")
	fs.BoolVar(&f.ebpf, "ebpf", false, "also measure every case with eBPF probes attached: where the time goes, copy cost per byte, probe overhead (needs CAP_BPF and CAP_PERFMON)")
	if defaults {
		// The default suite: short phases so that every primitive fits well inside two
		// minutes on a small machine.
		f.duration, f.warmup = 150*time.Millisecond, 50*time.Millisecond
		fs.Lookup("duration").DefValue = f.duration.String()
		fs.Lookup("warmup").DefValue = f.warmup.String()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	cfg := bench.Config{
		Iters: f.iters, Rounds: f.rounds, Peers: f.peers, Duration: f.duration, Warmup: f.warmup,
		Pin: f.pin, Progress: stderr,
	}
	scenarios := split(f.scenario)
	if len(scenarios) == 0 {
		return usageError{errors.New("no scenario given")}
	}
	var err error
	if cfg.Sizes, err = parseSizes(f.sizes); err != nil {
		return usageError{err}
	}
	cfg.Primitives = split(f.prims)
	cfg.Impls = split(f.impls)
	for _, impl := range cfg.Impls {
		if !slices.Contains(bench.Impls, impl) {
			return usageError{fmt.Errorf("unknown -impl %q (want %s)", impl, strings.Join(bench.Impls, ", "))}
		}
	}
	for _, w := range split(f.waits) {
		ws, err := ipc.ParseWaitStrategy(w)
		if err != nil {
			return usageError{err}
		}
		cfg.Waits = append(cfg.Waits, ws)
	}
	switch f.format {
	case "table", "json", "csv", "bench":
	default:
		return usageError{fmt.Errorf("unknown -format %q (want table, json, csv or bench)", f.format)}
	}
	for _, sc := range scenarios {
		cfg.Scenario = sc
		if _, _, err := bench.Plan(cfg); err != nil {
			return usageError{err}
		}
	}

	probeOpts := ebpf.Options{PIDs: []int{os.Getpid()}, FollowForks: true}
	if f.ebpf {
		// Fail now rather than in the first traced pass. Run attaches the probes for
		// each traced pass and detaches them for each untraced one.
		probes, err := ebpf.Load(probeOpts)
		if err != nil {
			return fmt.Errorf("--ebpf: %w", err)
		}
		fmt.Fprintf(stderr, "eBPF probes attach with %s; every round measures each case untraced and traced (at least %d rounds)\n",
			probes.Attach(), bench.MinTracedRounds)
		probes.Close()
		cfg.Probes = func() (bench.TracerCloser, error) { return ebpf.Load(probeOpts) }
	}
	start := time.Now()
	var results []report.Result
	var runErrs []error
	perScenario := make([][]report.Result, len(scenarios))
	for i, sc := range scenarios {
		cfg.Scenario = sc
		rs, err := bench.Run(ctx, cfg)
		perScenario[i] = rs
		if err != nil {
			runErrs = append(runErrs, err)
		}
	}
	for _, rs := range perScenario {
		results = append(results, rs...)
	}
	runErr := errors.Join(runErrs...)
	fmt.Fprintf(stderr, "done in %.1fs\n", time.Since(start).Seconds())
	out := report.File{Machine: bench.Machine(cfg.Pin), Results: results}
	if slices.Contains(scenarios, bench.ScenarioFanIn) {
		out.Machine.Extra = map[string]any{"fanin_peers": f.peers}
	}
	w := stdout
	if f.output != "" {
		file, err := os.Create(f.output)
		if err != nil {
			return err
		}
		defer file.Close()
		w = file
	}
	if err := write(w, f.format, out); err != nil {
		return err
	}
	return runErr
}

func write(w io.Writer, format string, f report.File) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(f)
	case "csv":
		return bench.WriteCSV(w, f)
	case "bench":
		return report.WriteBench(w, report.Run{Name: f.Machine.Hostname, File: f})
	}
	if err := bench.WriteTable(w, f); err != nil {
		return err
	}
	return bench.WriteEBPFTable(w, f.Results)
}

func parseSizes(s string) ([]int, error) {
	var sizes []int
	for _, part := range split(s) {
		n, err := bench.ParseSize(part)
		if err != nil {
			return nil, err
		}
		sizes = append(sizes, n)
	}
	if len(sizes) == 0 {
		return nil, errors.New("no sizes given")
	}
	return sizes, nil
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func list(w io.Writer) error {
	fmt.Fprintf(w, "%-16s %-10s %-22s %s\n", "PRIMITIVE", "STATUS", "WAIT STRATEGIES", "NOTES")
	for _, t := range bench.Transports() {
		var waits []string
		for _, ws := range t.Waits() {
			waits = append(waits, ws.String())
		}
		status, note := "available", ""
		if err := t.Available(); err != nil {
			status, note = "unavailable", err.Error()
		}
		if m := t.MaxSize(); m > 0 {
			note = strings.TrimSpace(note + fmt.Sprintf(" max message %s", bench.FormatSize(m)))
		}
		fmt.Fprintf(w, "%-16s %-10s %-22s %s\n", t.Name(), status, strings.Join(waits, ","), note)
	}
	return nil
}

func compare(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	format := fs.String("format", "text", "text, markdown or bench (Go benchmark format, one configuration per machine)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	ff, err := report.ParseFormat(*format)
	if err != nil {
		return usageError{err}
	}
	runs, err := report.LoadFiles(fs.Args()...)
	if err != nil {
		return err
	}
	return report.Compare(w, runs, ff)
}

func htmlReport(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	out := fs.String("o", "report.html", "the HTML file to write (- for standard output)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	runs, err := report.LoadFiles(fs.Args()...)
	if err != nil {
		return err
	}
	if *out == "-" {
		return report.HTML(stdout, runs)
	}
	file, err := os.Create(*out)
	if err != nil {
		return err
	}
	if err := report.HTML(file, runs); err != nil {
		file.Close()
		return err
	}
	return file.Close()
}
