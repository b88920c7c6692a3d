package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/cmd/ipcbench/internal/bench"
	"github.com/ipclab/ipclab/inspect"
	"github.com/ipclab/ipclab/internal/table"
	"github.com/ipclab/ipclab/ipc"
)

// The environment variables that make this program, re-executed, one of the
// processes of inspect -cost instead of ipcbench.
const (
	envHolder    = "IPCBENCH_INSPECT_HOLDER"    // "PIPES,SOCKETPAIRS": hold them open
	envInspector = "IPCBENCH_INSPECT_INSPECTOR" // a load: what the other process does
)

// The loads a ping-pong is measured under in inspect -cost, besides none.
const (
	loadLoop  = "inspect-loop" // whole-machine snapshots back to back
	loadWatch = "inspect-1s"   // one snapshot a second, as inspect -watch -interval 1s
	loadBurn  = "cpu-burn"     // a process spinning on the CPU: the control
)

var costLoads = []string{loadLoop, loadWatch, loadBurn}

// costOptions size inspect -cost; zero fields take the defaults.
type costOptions struct {
	pipes, socketPairs int           // held open while snapshots are timed (1000, 500)
	snapshots          int           // snapshots timed (5)
	rounds             int           // ping-pong rounds, each with and without inspect (4)
	duration           time.Duration // timed phase of one ping-pong pass (1 s)
	pins               []string      // placements measured (same, cross)
}

func (o *costOptions) defaults() {
	if o.pipes == 0 {
		o.pipes = 1000
	}
	if o.socketPairs == 0 {
		o.socketPairs = 500
	}
	if o.snapshots == 0 {
		o.snapshots = 5
	}
	if o.rounds == 0 {
		o.rounds = 4
	}
	if o.duration == 0 {
		o.duration = time.Second
	}
	if len(o.pins) == 0 {
		o.pins = []string{bench.PinSame, bench.PinCross}
	}
}

// inspectCost measures what inspect costs: how long a whole-machine snapshot takes
// while one process holds o.pipes pipes and 2×o.socketPairs sockets, and how much a
// pipe ping-pong between two pinned processes slows while another process takes
// snapshots back to back, or one a second as -watch does, or (the control) while
// another process only burns CPU: on a small machine a busy inspector slows a
// ping-pong as any busy process does. Every round measures the ping-pong without
// and with the load, in alternating order, so that a drift of the machine hits both
// alike.
func inspectCost(ctx context.Context, stdout, stderr io.Writer, o costOptions) error {
	o.defaults()
	exe, err := os.Executable()
	if err != nil {
		return err
	}

	// 1. Snapshot time with many objects open.
	holder := exec.CommandContext(ctx, exe)
	holder.Env = append(os.Environ(), envHolder+"="+strconv.Itoa(o.pipes)+","+strconv.Itoa(o.socketPairs))
	holder.Stderr = stderr
	holderIn, err := holder.StdinPipe()
	if err != nil {
		return err
	}
	holderOut, err := holder.StdoutPipe()
	if err != nil {
		return err
	}
	if err := holder.Start(); err != nil {
		return err
	}
	defer func() {
		holderIn.Close() // the holder exits at end of input
		holder.Wait()
	}()
	// The holder lists the descriptors it opened.
	line, err := bufio.NewReader(holderOut).ReadString('\n')
	fds := map[int]bool{}
	for _, f := range strings.Fields(strings.TrimPrefix(line, "ready")) {
		n, perr := strconv.Atoi(f)
		err = errors.Join(err, perr)
		fds[n] = true
	}
	if err != nil || !strings.HasPrefix(line, "ready") || len(fds) != o.pipes*2+o.socketPairs*2 {
		return fmt.Errorf("inspect -cost: the process holding the objects did not start: %.40q %v", line, err)
	}
	fmt.Fprintf(stderr, "process %d holds %d pipes and %d sockets; timing %d snapshots\n", holder.Process.Pid, o.pipes, 2*o.socketPairs, o.snapshots)
	var whole, one []time.Duration
	var objects, pipes, sockets int
	for range o.snapshots {
		s, err := inspect.Take(ctx, inspect.Options{})
		if err != nil {
			return err
		}
		whole = append(whole, s.Took)
		objects = len(s.Objects)
		pipes, sockets = 0, 0
		for _, ob := range s.Objects {
			if !slices.ContainsFunc(ob.Holders, func(h inspect.Holder) bool { return h.PID == holder.Process.Pid && fds[h.FD] }) {
				continue
			}
			switch ob.Kind {
			case inspect.KindPipe:
				pipes++
			case inspect.KindUnixStream:
				sockets++
			}
		}
		s, err = inspect.Take(ctx, inspect.Options{PIDs: []int{holder.Process.Pid}})
		if err != nil {
			return err
		}
		one = append(one, s.Took)
	}
	if pipes != o.pipes || sockets != 2*o.socketPairs {
		return fmt.Errorf("inspect -cost: the snapshot saw %d pipes and %d sockets of the holder, not %d and %d", pipes, sockets, o.pipes, 2*o.socketPairs)
	}
	var t table.Table
	t.Right = table.RightFrom(2)
	t.Add("SNAPSHOT", "OBJECTS", "P50", "MAX")
	t.Add("whole machine", strconv.Itoa(objects), fmtDur(median(whole)), fmtDur(slices.Max(whole)))
	t.Add("-pid holder", strconv.Itoa(o.pipes+2*o.socketPairs), fmtDur(median(one)), fmtDur(slices.Max(one)))
	fmt.Fprintf(stdout, "Snapshot time, %d snapshots each, with %d pipes and %d Unix sockets held by pid %d:\n", o.snapshots, pipes, sockets, holder.Process.Pid)
	if err := t.WriteText(stdout); err != nil {
		return err
	}

	// 2. Ping-pong latency with and without an inspector running.
	fmt.Fprintf(stdout, "\nPipe ping-pong, 64 B, p50 round trip without and with a load in another (unpinned) process: %s = snapshots back to back, %s = one a second, %s = a CPU spinner (the control); %d rounds each, alternating order:\n",
		loadLoop, loadWatch, loadBurn, o.rounds)
	var lt table.Table
	lt.Right = table.RightFrom(3)
	lt.Add("IMPL", "PIN", "LOAD", "WITHOUT P50", "WITH P50", "RATIO (MEDIAN)", "RATIO RANGE", "SNAPSHOTS")
	for _, pin := range o.pins {
		for _, load := range costLoads {
			if err := measureLoad(ctx, exe, stderr, o, pin, load, &lt); err != nil {
				return err
			}
		}
	}
	return lt.WriteText(stdout)
}

// measureLoad measures the pipe ping-pong with pin placement, without and with load
// running in another process, and adds a row per implementation to lt.
func measureLoad(ctx context.Context, exe string, stderr io.Writer, o costOptions, pin, load string, lt *table.Table) error {
	cfg := bench.Config{
		Primitives: []string{"pipe"}, Sizes: []int{64}, Scenario: bench.ScenarioPingPong,
		Duration: o.duration, Warmup: o.duration / 5, Pin: pin,
		Waits: []ipc.WaitStrategy{ipc.WaitKernel}, Impls: []string{bench.ImplRaw, bench.ImplIpclab},
	}
	type acc struct{ without, with, ratio []float64 }
	byImpl := map[string]*acc{}
	var order []string
	snapshots := 0
	for round := range o.rounds {
		var p50 [2]map[string]float64
		for _, with := range []bool{round%2 == 1, round%2 == 0} {
			var stop func() (int, error)
			if with {
				var err error
				if stop, err = startLoad(ctx, exe, load, stderr); err != nil {
					return err
				}
			}
			rs, err := bench.Run(ctx, cfg)
			if stop != nil {
				n, serr := stop()
				snapshots += n
				err = errors.Join(err, serr)
			}
			if err != nil {
				return err
			}
			m := map[string]float64{}
			for _, r := range rs {
				m[r.Impl] = r.RTT.P50
			}
			p50[b2i(with)] = m
		}
		for impl, without := range p50[0] {
			a := byImpl[impl]
			if a == nil {
				a = &acc{}
				byImpl[impl] = a
				order = append(order, impl)
			}
			with := p50[1][impl]
			a.without, a.with = append(a.without, without), append(a.with, with)
			a.ratio = append(a.ratio, with/without)
		}
	}
	slices.Sort(order)
	for _, impl := range order {
		a := byImpl[impl]
		n := "-"
		if load != loadBurn {
			n = strconv.Itoa(snapshots)
		}
		lt.Add(impl, pin, load, fmtNs(medianF(a.without)), fmtNs(medianF(a.with)),
			fmt.Sprintf("%.3f×", medianF(a.ratio)),
			fmt.Sprintf("%.3f–%.3f", slices.Min(a.ratio), slices.Max(a.ratio)), n)
	}
	return nil
}

// startLoad starts a process running load; stop ends it and returns how many
// snapshots it took (for the CPU spinner, how many millions of spins).
func startLoad(ctx context.Context, exe, load string, stderr io.Writer) (stop func() (int, error), err error) {
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), envInspector+"="+load)
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := bufio.NewReader(out)
	if line, err := r.ReadString('\n'); err != nil || line != "ready\n" {
		in.Close()
		cmd.Wait()
		return nil, fmt.Errorf("inspect -cost: the inspector did not start: %q %v", line, err)
	}
	return func() (int, error) {
		in.Close()
		line, rerr := r.ReadString('\n')
		werr := cmd.Wait()
		n, perr := strconv.Atoi(strings.TrimSpace(line))
		if rerr != nil || perr != nil {
			return 0, errors.Join(fmt.Errorf("inspect -cost: the inspector's count %q", line), rerr, werr)
		}
		return n, werr
	}, nil
}

// inspectChildMain runs this process as a holder or an inspector of inspect -cost
// when the environment says so, and exits; otherwise it returns at once.
func inspectChildMain() {
	if spec := os.Getenv(envHolder); spec != "" {
		if err := holdObjects(spec); err != nil {
			fmt.Fprintln(os.Stderr, "ipcbench inspect holder:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if load := os.Getenv(envInspector); load != "" {
		if err := runLoad(load); err != nil {
			fmt.Fprintln(os.Stderr, "ipcbench inspector:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// holdObjects opens the pipes and socket pairs spec asks for, says "ready" and the
// descriptors, and keeps them until its standard input ends.
func holdObjects(spec string) error {
	var pipes, pairs int
	if _, err := fmt.Sscanf(spec, "%d,%d", &pipes, &pairs); err != nil {
		return fmt.Errorf("%s=%q: %w", envHolder, spec, err)
	}
	var b strings.Builder
	b.WriteString("ready")
	opened := func(fds ...int) {
		for _, fd := range fds {
			b.WriteString(" " + strconv.Itoa(fd))
		}
	}
	for range pipes {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			return err
		}
		opened(p[:]...)
	}
	for range pairs {
		p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		opened(p[:]...)
	}
	b.WriteString("\n")
	os.Stdout.WriteString(b.String())
	_, err := io.Copy(io.Discard, os.Stdin)
	return err // (the descriptors close as the process exits)
}

// runLoad runs load until its standard input ends, then prints how many snapshots
// it took (for the CPU spinner, millions of spins).
func runLoad(load string) error {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	os.Stdout.WriteString("ready\n")
	n := 0
	switch load {
	case loadLoop, loadWatch:
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for ctx.Err() == nil {
			if _, err := inspect.Take(ctx, inspect.Options{}); err != nil && ctx.Err() == nil {
				return err
			}
			n++
			if load == loadWatch {
				select {
				case <-tick.C:
				case <-ctx.Done():
				}
			}
		}
	case loadBurn:
		for spins := 1; ctx.Err() == nil; spins++ {
			if spins%1_000_000 == 0 {
				n++
			}
		}
	default:
		return fmt.Errorf("%s=%q: not a load", envInspector, load)
	}
	_, err := fmt.Println(n)
	return err
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianF(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

func fmtDur(d time.Duration) string { return d.Round(100 * time.Microsecond).String() }

func fmtNs(ns float64) string { return strconv.FormatFloat(ns/1000, 'f', 2, 64) + " µs" }
