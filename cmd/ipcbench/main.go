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
//	ipcbench report [-o report.html] A.json...  a self-contained HTML report (without
//	                              -o, report.html, which is never overwritten)
//	ipcbench trace -p PID         what a running process's IPC calls do (eBPF)
//	ipcbench inspect              the machine's IPC objects, the threads blocked on
//	                              them and the deadlocks among them (exit status 3
//	                              when there is one)
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
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/cmd/ipcbench/internal/bench"
	"github.com/ipclab/ipclab/cmd/ipcbench/internal/report"
	"github.com/ipclab/ipclab/ebpf"
	"github.com/ipclab/ipclab/internal/table"
	"github.com/ipclab/ipclab/ipc"
)

func main() {
	bench.PeerMain()
	inspectChildMain()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, errDeadlock) {
			os.Exit(3) // (inspect has printed the deadlocks)
		}
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
		return list(args[1:], stdout, stderr)
	case "compare":
		return compare(args[1:], stdout, stderr)
	case "report":
		return htmlReport(args[1:], stdout, stderr)
	case "trace":
		return trace(ctx, args[1:], stdout, stderr)
	case "inspect":
		return inspectCmd(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError{fmt.Errorf("unknown command %q (see the usage above)", args[0])}
}

// parseFlags parses args into fs, whose messages go to stderr. help is true when -h or
// --help asked for the flags' description, which fs has printed: the command then
// does nothing and succeeds.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (help bool, err error) {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		// The flag package quotes values but not flag names: keep the message one line.
		return false, usageError{errors.New(strings.ReplaceAll(err.Error(), "\n", `\n`))}
	}
	return false, nil
}

const usage = `usage:
  ipcbench [flags]                  run the default suite (flags as for run)
  ipcbench run [flags]              run chosen measurements (see ipcbench run -h)
  ipcbench list                     list primitives and whether they work here
  ipcbench compare [-format text|markdown|bench] A.json B.json...
  ipcbench report -o report.html A.json B.json...
  ipcbench trace -p PID [-interval 1s] [-format text|table|json|prometheus]
  ipcbench inspect [-pid P,Q] [-format text|json|dot|svg] [-watch] [-cost]
`

type runFlags struct {
	prims, sizes, waits, impls string
	scenario, pin, format      string
	iters, rounds, peers       int
	duration, warmup           time.Duration
	output                     string
	ebpf                       bool
	sample                     int
}

// runPlan is what the run flags ask for, checked.
type runPlan struct {
	cfg       bench.Config // Scenario unset: see scenarios
	scenarios []string
	format    string
	output    string
	ebpf      bool
	sample    int // --sample: the probes trace 1 call in sample (0: all)
	peers     int
	qosSizes  []int // the sizes of scenario qos: --size if given, else its own default
}

// config returns the configuration of scenario sc.
func (rp runPlan) config(sc string) bench.Config {
	cfg := rp.cfg
	cfg.Scenario = sc
	if sc == bench.ScenarioQoS {
		cfg.Sizes = rp.qosSizes
	}
	return cfg
}

// parseRunFlags parses and checks the flags of run (or of the default suite, whose
// phases are shorter). Nothing runs and no kernel object is made: a bad value is a
// usageError naming the flag. help is true when -h asked for the flags' description.
func parseRunFlags(args []string, stderr io.Writer, defaults bool) (rp runPlan, help bool, err error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.Usage = func() {
		if defaults {
			fmt.Fprintln(fs.Output(), "usage: ipcbench [flags]: the default suite")
		} else {
			fmt.Fprintln(fs.Output(), "usage: ipcbench run [flags]")
		}
		fs.PrintDefaults()
	}
	var f runFlags
	fs.StringVar(&f.prims, "prim", "", "primitives, comma-separated (default: all available; see 'ipcbench list')")
	fs.StringVar(&f.sizes, "size", "64,4K,64K", fmt.Sprintf("message sizes, comma-separated (64, 4K, 1M); a size above a primitive's limit skips it, with the limit named (scenario qos: the units' payload, default %d)", bench.QoSDefaultSize))
	fs.StringVar(&f.scenario, "scenario", bench.ScenarioPingPong, "pingpong (round-trip latency), stream (one-way throughput), fanin (-peers senders, one receiver), fdpass (a descriptor with every message), call (door calls), rpc (remote calls: ONC RPC over a door and TCP, Go net/rpc over a Unix socket, beside a plain door call and a TCP ping-pong), "+
		"qos (a stream shaped to a contract of 1000 units/s with a depth of 8 units, sent in on/off bursts at 10x the contract from a fixed seed and played out 5-20 ms after sending: rate and delay over time, for -duration or -iters units; ipclab only, no warm-up); several: pingpong,stream")
	fs.IntVar(&f.iters, "iters", 0, "timed iterations per measurement (default: as many as fit in -duration; qos: units to send)")
	fs.IntVar(&f.peers, "peers", bench.DefaultPeers, fmt.Sprintf("sender processes in the fanin scenario (1 to %d)", bench.MaxPeers))
	fs.IntVar(&f.rounds, "rounds", 1, "measure everything this many times, interleaved, and merge: a case and its raw baseline then share the machine's drift")
	fs.DurationVar(&f.duration, "duration", time.Second, "length of each timed phase when -iters is not given")
	fs.DurationVar(&f.warmup, "warmup", 200*time.Millisecond, "untimed warm-up before each timed phase")
	fs.StringVar(&f.pin, "pin", bench.PinSame, "same (both processes on one CPU), cross (one CPU each) or none")
	fs.StringVar(&f.waits, "wait", "", "wait strategies for the ipclab runs: poller,kernel,spin (default: all a primitive supports)")
	fs.StringVar(&f.impls, "impl", "", "implementations: ipclab,std,raw (default: all; std, the Go standard library's way, only for pipe, unix-stream and udp)")
	fs.StringVar(&f.format, "format", "table", "output: table, json, csv or bench (Go benchmark format, for benchstat)")
	fs.StringVar(&f.output, "o", "", "write the results to this file instead of standard output")
	fs.IntVar(&f.sample, "sample", 0, "with --ebpf: the probes trace 1 system call in N, chosen at random in the kernel (0 or 1: every call); counts and histograms are then of the sampled calls")
	fs.BoolVar(&f.ebpf, "ebpf", false, "also measure every case with eBPF probes attached: where the time goes, copy cost per byte, probe overhead (needs CAP_BPF and CAP_PERFMON)")
	if defaults {
		// The default suite: short phases so that every primitive fits well inside two
		// minutes on a small machine.
		f.duration, f.warmup = 150*time.Millisecond, 50*time.Millisecond
		fs.Lookup("duration").DefValue = f.duration.String()
		fs.Lookup("warmup").DefValue = f.warmup.String()
	}
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return rp, help, err
	}
	if fs.NArg() > 0 {
		return rp, false, usageError{fmt.Errorf("unexpected arguments: %q", fs.Args())}
	}
	bad := func(format string, a ...any) (runPlan, bool, error) {
		return rp, false, usageError{fmt.Errorf(format, a...)}
	}
	switch {
	case f.iters < 0:
		return bad("--iters %d: must be positive (or 0: as many as fit in --duration)", f.iters)
	case f.duration <= 0 || f.duration > bench.MaxPhase:
		return bad("--duration %v: must be positive and at most %v", f.duration, bench.MaxPhase)
	case f.warmup < 0 || f.warmup > bench.MaxPhase:
		return bad("--warmup %v: must be 0 or positive and at most %v", f.warmup, bench.MaxPhase)
	case f.rounds < 1:
		return bad("--rounds %d: must be 1 or more", f.rounds)
	case f.peers < 1 || f.peers > bench.MaxPeers:
		return bad("--peers %d: must be between 1 and %d", f.peers, bench.MaxPeers)
	}
	rp = runPlan{format: f.format, output: f.output, ebpf: f.ebpf, peers: f.peers, qosSizes: []int{bench.QoSDefaultSize}}
	rp.cfg = bench.Config{
		Iters: f.iters, Rounds: f.rounds, Peers: f.peers, Duration: f.duration, Warmup: f.warmup,
		Pin: f.pin, Progress: stderr,
	}
	if rp.scenarios = split(f.scenario); len(rp.scenarios) == 0 {
		return bad("--scenario: no scenario given")
	}
	for _, sc := range rp.scenarios {
		if !slices.Contains(bench.Scenarios, sc) {
			return bad("--scenario: unknown scenario %q (want %s)", sc, strings.Join(bench.Scenarios, ", "))
		}
	}
	if rp.cfg.Sizes, err = parseSizes(f.sizes); err != nil {
		return bad("--size: %v", err)
	}
	fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "size" {
			rp.qosSizes = rp.cfg.Sizes
		}
	})
	switch {
	case f.sample < 0:
		return bad("--sample %d: must not be negative", f.sample)
	case f.sample > 1 && !f.ebpf:
		return bad("--sample needs --ebpf")
	}
	rp.sample = f.sample
	if f.ebpf && slices.Contains(rp.scenarios, bench.ScenarioQoS) {
		return bad("--ebpf: scenario qos is not traced (its figures are the stream's, not the system calls')")
	}
	rp.cfg.Primitives = split(f.prims)
	rp.cfg.Impls = split(f.impls)
	for _, impl := range rp.cfg.Impls {
		if !slices.Contains(bench.Impls, impl) {
			return bad("--impl: unknown implementation %q (want %s)", impl, strings.Join(bench.Impls, ", "))
		}
	}
	for _, w := range split(f.waits) {
		ws, err := ipc.ParseWaitStrategy(w)
		if err != nil {
			return bad("--wait: %v", err)
		}
		rp.cfg.Waits = append(rp.cfg.Waits, ws)
	}
	switch f.format {
	case "table", "json", "csv", "bench":
	default:
		return bad("--format: unknown format %q (want table, json, csv or bench)", f.format)
	}
	return rp, false, nil
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer, defaults bool) error {
	rp, help, err := parseRunFlags(args, stderr, defaults)
	if help || err != nil {
		return err
	}
	cfg := rp.cfg
	// Plan every scenario before anything runs: a size no chosen primitive can carry,
	// a plan with nothing in it or one that would not fit in memory is refused here.
	for _, sc := range rp.scenarios {
		if _, _, err := bench.Plan(rp.config(sc)); err != nil {
			return usageError{err}
		}
	}

	w := stdout
	var commit func() error
	if fi, err := os.Stat(rp.output); rp.output != "" && err == nil && !fi.Mode().IsRegular() {
		// A device or a FIFO (-o /dev/null, a pipe to another program): write to it
		// as it is. Renaming a file over it would replace /dev/null with a file.
		f, err := os.OpenFile(rp.output, os.O_WRONLY, 0)
		if err != nil {
			return usageError{fmt.Errorf("-o %s: cannot write there: %w", rp.output, err)}
		}
		defer f.Close()
		w = f
		commit = func() error { return nil }
	} else if rp.output != "" {
		// A file beside the output, made now so that a place that cannot be written
		// fails before the run; it replaces the output only once the results are in
		// it, so a failed or interrupted run leaves an earlier file as it was.
		tmp, err := os.CreateTemp(filepath.Dir(rp.output), "."+filepath.Base(rp.output)+".*")
		if err != nil {
			return usageError{fmt.Errorf("-o %s: cannot write there: %w", rp.output, err)}
		}
		defer func() {
			tmp.Close()
			os.Remove(tmp.Name()) // a no-op once renamed
		}()
		w = tmp
		commit = func() error {
			if err := tmp.Chmod(0o644); err != nil {
				return err
			}
			if err := tmp.Close(); err != nil {
				return err
			}
			return os.Rename(tmp.Name(), rp.output)
		}
	}
	probeOpts := ebpf.Options{PIDs: []int{os.Getpid()}, FollowForks: true, SampleEvery: rp.sample}
	var cost ebpf.ProbeCost
	if rp.ebpf {
		// Fail now rather than in the first traced pass. Run attaches the probes for
		// each traced pass and detaches them for each untraced one.
		probes, err := ebpf.Load(probeOpts)
		if err != nil {
			return fmt.Errorf("--ebpf: %w", err)
		}
		fmt.Fprintf(stderr, "eBPF probes attach with %s; every round measures each case untraced and traced (at least %d rounds)\n",
			probes.Attach(), bench.MinTracedRounds)
		cost, err = measureProbeCost(probes)
		probes.Close()
		if err != nil {
			return fmt.Errorf("--ebpf: %w", err)
		}
		fmt.Fprintf(stderr, "eBPF probes cost %.0f ns a run, %.1f runs and %.0f ns per traced system call (BPF run-time statistics, 64 B pipe calibration)\n",
			cost.PerEventNs(), cost.EventsPerCall(), cost.PerCallNs())
		cfg.Probes = func() (bench.TracerCloser, error) { return ebpf.Load(probeOpts) }
	}
	start := time.Now()
	var results []report.Result
	var runErrs []error
	perScenario := make([][]report.Result, len(rp.scenarios))
	for i, sc := range rp.scenarios {
		scfg := rp.config(sc)
		scfg.Probes = cfg.Probes
		rs, err := bench.Run(ctx, scfg)
		perScenario[i] = rs
		if err != nil {
			runErrs = append(runErrs, err)
		}
	}
	for _, rs := range perScenario {
		results = append(results, rs...)
	}
	for i := range results {
		if e := results[i].EBPF; e != nil && cost.Calls > 0 {
			e.ProbeRunNs, e.ProbeRunsPerCall, e.ProbeNsPerCall = cost.PerEventNs(), cost.EventsPerCall(), cost.PerCallNs()
		}
	}
	runErr := errors.Join(runErrs...)
	fmt.Fprintf(stderr, "done in %.1fs\n", time.Since(start).Seconds())
	out := report.File{Machine: bench.Machine(cfg.Pin), Results: results}
	if slices.Contains(rp.scenarios, bench.ScenarioFanIn) {
		out.Machine.Extra = map[string]any{"fanin_peers": rp.peers}
	}
	if err := write(w, rp.format, out); err != nil {
		return err
	}
	if commit != nil {
		if err := commit(); err != nil {
			return err
		}
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

func list(args []string, w, stderr io.Writer) error {
	fs := flag.NewFlagSet("list", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: ipcbench list (no flags): the primitives and whether they work here")
	}
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("list takes no arguments, got %q", fs.Args())}
	}
	var t table.Table
	t.Add("PRIMITIVE", "STATUS", "WAIT STRATEGIES", "NOTES")
	for _, tr := range bench.Transports() {
		var waits []string
		for _, ws := range tr.Waits() {
			waits = append(waits, ws.String())
		}
		status, note := "available", ""
		if err := tr.Available(); err != nil {
			status, note = "unavailable", err.Error()
		}
		if m := tr.MaxSize(); m > 0 {
			note = strings.TrimSpace(note + fmt.Sprintf(" max message %s", bench.FormatSize(m)))
		}
		t.Add(tr.Name(), status, strings.Join(waits, ","), note)
	}
	return t.WriteText(w)
}

func compare(args []string, w, stderr io.Writer) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	format := fs.String("format", "text", "text, markdown or bench (Go benchmark format, one configuration per machine)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: ipcbench compare [-format text|markdown|bench] A.json B.json...")
		fs.PrintDefaults()
	}
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	ff, err := report.ParseFormat(*format)
	if err != nil {
		return usageError{err}
	}
	if fs.NArg() == 0 {
		return usageError{errors.New("compare needs at least one results file (ipcbench run --format json)")}
	}
	runs, err := report.LoadFiles(fs.Args()...)
	if err != nil {
		return err
	}
	return report.Compare(w, runs, ff)
}

// defaultReport is the file report writes when -o is not given; it is never
// overwritten.
const defaultReport = "report.html"

func htmlReport(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	out := fs.String("o", "", "the HTML file to write, replaced if it exists (- for standard output; default "+defaultReport+", which is never replaced)")
	var snapFiles []string
	fs.Func("inspect", "an IPC snapshot to show (ipcbench inspect -json > SNAP.json); may be repeated", func(path string) error {
		snapFiles = append(snapFiles, path)
		return nil
	})
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: ipcbench report [-o report.html] [-inspect SNAP.json]... [A.json B.json...]")
		fs.PrintDefaults()
	}
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	if fs.NArg() == 0 && len(snapFiles) == 0 {
		return usageError{errors.New("report needs at least one results file (ipcbench run --format json) or -inspect snapshot (ipcbench inspect -json)")}
	}
	var page report.Page
	if fs.NArg() > 0 {
		runs, err := report.LoadFiles(fs.Args()...)
		if err != nil {
			return err
		}
		page.Runs = runs
	}
	for _, p := range snapFiles {
		s, err := report.LoadSnapshot(p)
		if err != nil {
			return err
		}
		page.Snapshots = append(page.Snapshots, s)
	}
	if *out == "-" {
		return page.WriteHTML(stdout)
	}
	path, flags := *out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC
	if path == "" {
		path, flags = defaultReport, os.O_WRONLY|os.O_CREATE|os.O_EXCL
	}
	file, err := os.OpenFile(path, flags, 0o666)
	if errors.Is(err, os.ErrExist) {
		return usageError{fmt.Errorf("%s exists: give -o %s to replace it, or another name", path, path)}
	}
	if err != nil {
		return err
	}
	if err := page.WriteHTML(file); err != nil {
		file.Close()
		if *out == "" {
			os.Remove(path) // made here, and incomplete
		}
		return err
	}
	return file.Close()
}

// measureProbeCost measures what the probes cost per run and per traced system call:
// 2000 writes and reads of 64 B through a pipe of this (traced) process under the
// kernel's BPF run-time statistics.
func measureProbeCost(p *ebpf.Probes) (ebpf.ProbeCost, error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return ebpf.ProbeCost{}, fmt.Errorf("calibration pipe: %w", err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	buf := make([]byte, 64)
	return p.MeasureCost(func() error {
		for range 1000 {
			if _, err := unix.Write(fds[1], buf); err != nil {
				return err
			}
			if _, err := unix.Read(fds[0], buf); err != nil {
				return err
			}
		}
		return nil
	})
}
