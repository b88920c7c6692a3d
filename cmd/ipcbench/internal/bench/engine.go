package bench

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/cmd/ipcbench/internal/report"
	"github.com/ipclab/ipclab/ipc"
)

// Scenarios.
const (
	// ScenarioPingPong: the parent sends a message, the peer sends one of the same
	// size back; each round trip is timed (the full round trip, never halved).
	ScenarioPingPong = "pingpong"
	// ScenarioStream: the parent sends messages back to back and the peer
	// acknowledges each batch once it has received all of it; the time per message
	// within a batch is recorded and throughput is total bytes over total time.
	ScenarioStream = "stream"
	// ScenarioCall is a request/reply call through a call-oriented transport (a door):
	// timed like pingpong, one call per round trip. Only transports that list it in
	// Scenarios() run it.
	ScenarioCall = "call"
	// ScenarioFdPass is pingpong in which every message to the peer carries one
	// descriptor (SCM_RIGHTS), which the peer closes on receipt: the cost of passing
	// a descriptor. Transports whose endpoints are FdEndpoints list it.
	ScenarioFdPass = "fdpass"
	// ScenarioRPC is a remote procedure call, argument and result of the message
	// size, timed like pingpong: ONC RPC (package ipc/rpc) over a door and TCP, Go's
	// net/rpc, and the plain door call and TCP ping-pong they build on (see rpc.go).
	ScenarioRPC = "rpc"
	// ScenarioFanIn: Config.Peers sender processes send back to back to one receiver,
	// the parent, which times batches of all their messages: throughput into one
	// receiver, and the time per message received. Transports whose endpoint can be
	// opened by several peers at once list it.
	ScenarioFanIn = "fanin"
)

// DefaultPeers is the number of senders in ScenarioFanIn unless Config.Peers says.
const DefaultPeers = 4

// Scenarios lists the scenarios Run understands.
var Scenarios = []string{ScenarioPingPong, ScenarioStream, ScenarioCall, ScenarioFdPass, ScenarioFanIn, ScenarioQoS, ScenarioRPC}

// ScenarioLister is implemented by transports that support other scenarios than
// pingpong and stream (or only some of them).
type ScenarioLister interface {
	Scenarios() []string
}

// PayloadFree is implemented by transports that signal without moving a payload
// (a semaphore): they run at one size only and report no byte throughput.
type PayloadFree interface {
	PayloadFree() bool
}

func payloadFree(t Transport) bool {
	pf, ok := t.(PayloadFree)
	return ok && pf.PayloadFree()
}

// supports reports whether t runs scenario.
func supports(t Transport, scenario string) bool {
	if sl, ok := t.(ScenarioLister); ok {
		return slices.Contains(sl.Scenarios(), scenario)
	}
	return scenario == ScenarioPingPong || scenario == ScenarioStream
}

// Connector is implemented by endpoints that must finish connecting once the peer
// runs (a FIFO's open waits for the other side). Run calls Connect after starting the
// peer and before the first message.
type Connector interface {
	Connect(ctx context.Context) error
}

// Config says what Run measures.
type Config struct {
	Primitives []string           // empty: every available transport
	Sizes      []int              // message sizes in bytes
	Scenario   string             // one of Scenarios
	Iters      int                // timed iterations; 0: as many as fit in Duration
	Duration   time.Duration      // timed phase length when Iters is 0
	Warmup     time.Duration      // untimed phase before it
	Pin        string             // PinSame, PinCross or PinNone
	Waits      []ipc.WaitStrategy // empty: every strategy a transport supports
	Impls      []string           // empty: all of Impls (std only where a primitive has one)
	Progress   io.Writer          // progress lines (nil: none)
	// Exe is the program started as the peer; it must call PeerMain first thing.
	// Default: this program (os.Executable).
	Exe string
	// Timeout bounds one measurement (default: 30s + 5×(Warmup+Duration), plus time
	// for large messages; see defaultTimeout).
	Timeout time.Duration
	// Peers is the number of sender processes in ScenarioFanIn (default DefaultPeers).
	Peers int
	// Rounds measures the plan this many times, interleaved, merging each case's
	// rounds (default 1).
	Rounds int
	// Tracer, when set, is reset before each timed phase and read after it, and the
	// result carries the breakdown. Run sets it for its traced passes (see Probes).
	Tracer Tracer
	// Probes, when set, makes Run measure the probes' overhead and where the time
	// goes: every round measures the plan twice, once untraced and once with the
	// probes Probes attaches (closed again before the next untraced pass), in
	// alternating order, so that a drift of the machine hits both alike. Each result
	// then carries its traced breakdown and the overhead: the median over the rounds
	// of its traced over its untraced p50, with the lowest and highest of those
	// ratios as the spread (report.EBPF.OverheadMin, OverheadMax). The latencies
	// stay the untraced ones. With Probes, Run measures at least MinTracedRounds
	// rounds.
	Probes func() (TracerCloser, error)
	// QoS parameterises ScenarioQoS (zero: the defaults).
	QoS QoSConfig
}

// MinTracedRounds is the fewest rounds Run measures when it traces: the probes'
// overhead is reported with its spread over the rounds.
const MinTracedRounds = 3

// Case is one measurement to make.
type Case struct {
	Transport Transport
	Params    Params
}

// Plan expands cfg into the cases Run measures, in order, and what was skipped, with
// the reason: transports not available here, transports chosen in cfg.Primitives that
// do not run the scenario, and sizes above a transport's MaxSize. It refuses, before
// anything runs, a configuration with a bad value, a size that no chosen transport can
// carry, a plan with no case at all, and a plan whose buffers would need more than half
// of this machine's available memory.
func Plan(cfg Config) ([]Case, map[string]error, error) {
	if err := validate(cfg); err != nil {
		return nil, nil, err
	}
	if !slices.Contains(Scenarios, cfg.Scenario) {
		return nil, nil, fmt.Errorf("unknown scenario %q (want %s)", cfg.Scenario, strings.Join(Scenarios, " or "))
	}
	if _, _, err := cpusFor(cfg.Pin); err != nil {
		return nil, nil, err
	}
	if cfg.Scenario == ScenarioQoS {
		if err := cfg.QoS.validate(); err != nil {
			return nil, nil, err
		}
		if cfg.Probes != nil {
			return nil, nil, errors.New("scenario qos is not traced with eBPF probes: its figures are the stream's, not the system calls'")
		}
	}
	var ts []Transport
	if len(cfg.Primitives) == 0 {
		ts = Transports()
	} else {
		for _, name := range cfg.Primitives {
			t, err := Lookup(name)
			if err != nil {
				return nil, nil, fmt.Errorf("%w (see 'ipcbench list')", err)
			}
			ts = append(ts, t)
		}
	}
	impls := cfg.Impls
	if len(impls) == 0 {
		impls = Impls
	}
	for _, impl := range impls {
		if !slices.Contains(Impls, impl) {
			return nil, nil, fmt.Errorf("unknown implementation %q (want %s)", impl, strings.Join(Impls, ", "))
		}
	}
	skipped := map[string]error{}
	cuts := sizeCuts{}
	perSize := map[int]int{}
	var cases []Case
	for _, t := range ts {
		if err := t.Available(); err != nil {
			skipped[t.Name()] = err
			continue
		}
		if !supports(t, cfg.Scenario) {
			if len(cfg.Primitives) > 0 {
				skipped[t.Name()] = unsupported(t, cfg.Scenario)
			}
			continue
		}
		sizes := cfg.Sizes
		if payloadFree(t) && len(sizes) > 1 {
			var rest []string
			for _, s := range sizes[1:] {
				rest = append(rest, FormatSize(s))
			}
			skipped[t.Name()+" at "+strings.Join(rest, ",")] = fmt.Errorf("moves no payload; measured at %s only", FormatSize(sizes[0]))
			sizes = sizes[:1]
		}
		for _, size := range sizes {
			var why error
			if cfg.Scenario == ScenarioQoS {
				why = qosSizeCut(t, size) // a unit carries a header too
			} else if m := t.MaxSize(); m > 0 && size > m {
				why = sizeCut(t, size, m)
			}
			if why != nil {
				skipped[t.Name()+" at "+FormatSize(size)] = why
				cuts.add(t, size, why)
				continue
			}
			for _, impl := range impls {
				if !hasImpl(t, impl, cfg.Scenario) {
					if len(cfg.Impls) > 0 && len(cfg.Primitives) > 0 {
						skipped[t.Name()+"/"+impl] = fmt.Errorf("has no %s implementation in scenario %s", impl, cfg.Scenario)
					}
					continue
				}
				waits := []ipc.WaitStrategy{ipc.WaitKernel}
				if impl == ImplStd {
					waits = []ipc.WaitStrategy{ipc.WaitPoller}
				}
				if impl == ImplIpclab {
					waits = nil
					for _, w := range t.Waits() {
						if len(cfg.Waits) == 0 || slices.Contains(cfg.Waits, w) {
							waits = append(waits, w)
						}
					}
					if len(waits) == 0 {
						skipped[t.Name()+"/"+impl] = waitsMissing(t, cfg.Waits)
					}
					if cfg.Scenario == ScenarioQoS && len(cfg.Waits) == 0 && len(waits) > 1 {
						// A stream's timing is the shaper's and the play-out's: one
						// wait strategy is enough unless others are asked for.
						waits = waits[:1]
					}
				}
				for _, w := range waits {
					perSize[size]++
					cases = append(cases, Case{Transport: t, Params: Params{
						Primitive: t.Name(), Impl: impl, Scenario: cfg.Scenario, Size: size, Wait: w,
					}})
				}
			}
		}
	}
	if err := cuts.refuse(cfg.Sizes, perSize); err != nil {
		return nil, skipped, err
	}
	if len(cases) == 0 {
		return nil, skipped, nothingToRun(cfg, skipped)
	}
	if err := checkMemory(cfg, cases); err != nil {
		return nil, skipped, err
	}
	return cases, skipped, nil
}

func progress(cfg Config) io.Writer {
	if cfg.Progress == nil {
		return io.Discard
	}
	return cfg.Progress
}

// Run measures every case of cfg's plan and returns the results in plan order. With
// Rounds > 1 it measures the whole plan that many times, interleaved, and merges each
// case's rounds, so that a slow drift of the machine hits a case and its raw baseline
// alike. With Probes it also traces (see Config.Probes). A case that fails is
// reported on Progress and left out; the error lists the failures.
func Run(ctx context.Context, cfg Config) ([]report.Result, error) {
	cases, skipped, err := Plan(cfg)
	if err != nil {
		return nil, err
	}
	pw := progress(cfg)
	reportSkips(pw, skipped)
	rounds := max(cfg.Rounds, 1)
	if cfg.Probes != nil {
		rounds = max(rounds, MinTracedRounds)
	}
	merged := make([]*tracedResult, len(cases))
	failed := make([]error, len(cases))
	tr := newTracing(len(cases))
	for round := 1; round <= rounds; round++ {
		passes := []bool{false}
		if cfg.Probes != nil {
			// untraced first in odd rounds, traced first in even ones
			passes = []bool{round%2 == 0, round%2 == 1}
		}
		p50 := [2][]float64{make([]float64, len(cases)), make([]float64, len(cases))}
		for _, traced := range passes {
			var err error
			if traced {
				probes, perr := cfg.Probes()
				if perr != nil {
					// Keep what the rounds before have measured.
					res, err := collect(merged, failed, cases, rounds)
					return res, ipc.Join(fmt.Errorf("attach probes in round %d: %w", round, perr), err)
				}
				pcfg := cfg
				pcfg.Tracer = probes
				err = runPass(ctx, pcfg, cases, round, rounds, "traced ", failed, func(i int, r tracedResult) {
					p50[1][i] = r.RTT.P50
					tr.add(i, r)
				})
				probes.Close()
			} else {
				err = runPass(ctx, cfg, cases, round, rounds, "", failed, func(i int, r tracedResult) {
					p50[0][i] = r.RTT.P50
					if merged[i] == nil {
						merged[i] = &r
						return
					}
					m := merged[i]
					m.hist.Merge(r.hist)
					m.elapsed += r.elapsed
					m.finish(m.Iterations + r.Iterations)
					mergeQoS(m.QoS, r.QoS, m.RTT)
				})
			}
			if err != nil {
				return collect(merged, failed, cases, rounds)
			}
		}
		tr.pair(p50[0], p50[1])
	}
	if cfg.Probes != nil {
		tr.attach(merged)
	}
	return collect(merged, failed, cases, rounds)
}

// runPass measures every case that has not failed once, reporting each result to
// done; a case that fails is marked in failed. It returns ctx's error if ctx ends.
func runPass(ctx context.Context, cfg Config, cases []Case, round, rounds int, label string, failed []error, done func(int, tracedResult)) error {
	pw := progress(cfg)
	for i, c := range cases {
		if err := ctx.Err(); err != nil {
			return err
		}
		if failed[i] != nil {
			continue
		}
		prefix := label
		if rounds > 1 {
			prefix = fmt.Sprintf("round %d/%d %s", round, rounds, label)
		}
		fmt.Fprintf(pw, "%s[%d/%d] %s %s/%s %s size=%s pin=%s ... ", prefix, i+1, len(cases), c.Params.Scenario,
			c.Params.Primitive, c.Params.Impl, c.Params.Wait, FormatSize(c.Params.Size), cfg.Pin)
		r, err := runCase(ctx, cfg, c)
		if err != nil {
			fmt.Fprintf(pw, "FAILED: %v\n", err)
			if cfg.Tracer == nil {
				failed[i] = err
			}
			continue
		}
		if q := r.QoS; q != nil {
			fmt.Fprintf(pw, "rate ×%.3f of the contract, max burst %.1f of %d units, delay p50 %s p99 %s, late %d, lost %d, bucket breaches %d\n",
				q.RateRatio, q.MaxBurst/float64(q.UnitBytes), q.Depth/q.UnitBytes, formatNs(q.DelayP50Ns), formatNs(q.DelayP99Ns), q.Late, q.Lost, q.BucketBreaches)
		} else {
			fmt.Fprintf(pw, "p50 %s\n", formatNs(r.RTT.P50))
		}
		done(i, r)
	}
	return nil
}

// collect returns the measured results in plan order and an error naming the failures.
func collect(merged []*tracedResult, failed []error, cases []Case, rounds int) ([]report.Result, error) {
	var results []report.Result
	var failures []string
	for i, m := range merged {
		if failed[i] != nil {
			p := cases[i].Params
			failures = append(failures, fmt.Sprintf("%s/%s/%s size %d: %v", p.Primitive, p.Impl, p.Wait, p.Size, failed[i]))
			continue
		}
		if m != nil {
			results = append(results, m.Result)
		}
	}
	if len(failures) > 0 {
		return results, fmt.Errorf("%d of %d measurements failed:\n  %s", len(failures), len(cases), strings.Join(failures, "\n  "))
	}
	return results, nil
}

// envPeer carries a peer's parameters to the re-executed program.
const envPeer = "IPCLAB_BENCH_PEER"

type peerSpec struct {
	Params Params   `json:"params"`
	CPU    int      `json:"cpu"`
	Files  int      `json:"files"`
	QoS    *qosPeer `json:"qos,omitempty"` // ScenarioQoS: the stream to send
}

// RunCase measures one case: it sets up the transport, starts the peer process, runs
// the warm-up and the timed phase, and tears everything down.
func RunCase(ctx context.Context, cfg Config, c Case) (report.Result, error) {
	r, err := runCase(ctx, cfg, c)
	return r.Result, err
}

func runCase(ctx context.Context, cfg Config, c Case) (tracedResult, error) {
	out := &tracedResult{hist: new(Histogram)}
	res := &out.Result
	*res = report.Result{Primitive: c.Params.Primitive, Impl: c.Params.Impl, Scenario: c.Params.Scenario,
		Size: c.Params.Size, Wait: c.Params.Wait.String(), Pin: cfg.Pin}
	if res.Pin == "" {
		res.Pin = PinNone
	}
	parentCPU, peerCPU, err := cpusFor(cfg.Pin)
	if err != nil {
		return *out, err
	}
	p := c.Params
	ep, files, err := c.Transport.Setup(&p)
	if err != nil {
		return *out, fmt.Errorf("setup: %w", err)
	}
	defer func() { _ = c.Transport.Cleanup(p) }()
	defer ep.Close()

	exe := cfg.Exe
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return *out, err
		}
	}
	npeers := 1
	if p.Scenario == ScenarioFanIn {
		npeers = cfg.Peers
		if npeers <= 0 {
			npeers = DefaultPeers
		}
	}
	ps := peerSpec{Params: p, CPU: peerCPU, Files: len(files)}
	if p.Scenario == ScenarioQoS {
		ps.QoS = newQoSPeer(cfg)
	}
	spec, _ := json.Marshal(ps)
	peers, anyExited, err := startPeers(exe, spec, files, npeers)
	for _, f := range files {
		f.Close()
	}
	defer stopPeers(peers)
	if err != nil {
		return *out, err
	}
	ctrls := make([]*os.File, len(peers))
	for i, pp := range peers {
		ctrls[i] = pp.ctrl
		if cfg.Tracer != nil {
			// The control pipes are the engine's, not the primitive's; the labels go
			// with the case, or a later case's descriptor reusing the number would
			// be taken for a control pipe.
			self, fd, peer := os.Getpid(), int(pp.ctrl.Fd()), pp.cmd.Process.Pid
			_ = cfg.Tracer.RegisterFD(self, fd, controlLabel)
			_ = cfg.Tracer.RegisterFD(peer, 3, controlLabel)
			defer func() {
				_ = cfg.Tracer.UnregisterFD(self, fd)
				_ = cfg.Tracer.UnregisterFD(peer, 3)
			}()
		}
	}
	restore, err := pinProcess(parentCPU)
	if err != nil {
		return *out, err
	}
	defer restore()

	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = defaultTimeout(cfg, p.Size)
		if p.Scenario == ScenarioQoS {
			timeout += qosTimeout(cfg)
		}
	}
	done := make(chan error, 1)
	go func() {
		if lockThread(p.Wait) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
		}
		done <- measure(ctx, cfg, p, ep, ctrls, out)
	}()
	abandon := func() {
		// Wake a measurement blocked on a kernel object, and give it a moment.
		_ = c.Transport.Cleanup(p)
		ep.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	}
	select {
	case err = <-done:
	case <-anyExited:
		for _, pp := range peers {
			pp.kill()
		}
		abandon()
		return *out, fmt.Errorf("peer exited early: %s", peersErr(peers))
	case <-time.After(timeout):
		for _, pp := range peers {
			pp.kill()
		}
		abandon()
		return *out, fmt.Errorf("timed out after %v", timeout)
	}
	if err != nil {
		return *out, err
	}
	for _, pp := range peers {
		if _, werr := pp.ctrl.Write(make([]byte, 8)); werr != nil {
			return *out, werr
		}
	}
	deadline := time.After(10 * time.Second)
	for _, pp := range peers {
		select {
		case <-pp.exited:
			if pp.err != nil {
				return *out, fmt.Errorf("peer: %s", peersErr(peers))
			}
		case <-deadline:
			return *out, errors.New("peer did not exit")
		}
	}
	return *out, nil
}

// lockThread reports whether the goroutine that drives a case (in the parent and in
// the peer) must own its OS thread. Only the modes that wait on the thread itself do:
// WaitKernel (and raw, which is WaitKernel), where the thread blocks inside the system
// call, and WaitSpin, which spins on it. A poller-mode goroutine (ipclab's WaitPoller
// and std) runs unlocked, as in any Go program. Locked, every park in the poller
// hands its P away and every wake-up has to wake that one thread again: in a 64 B
// pipe ping-pong pinned to one CPU, 2.7 instead of 1.1 voluntary context switches per
// round trip on each side (TestPollerRowsRunUnlocked), and 1.8-2.7x the p50 in the
// std and ipclab poller rows of pipe, unix-stream and udp. CPU pinning does not need
// the lock: pinProcess pins every thread of the process, and threads the runtime
// starts later inherit the mask from the thread that creates them.
func lockThread(w ipc.WaitStrategy) bool { return w != ipc.WaitPoller }

// peerProc is one running peer.
type peerProc struct {
	cmd    *exec.Cmd
	ctrl   *os.File // the write end of its control pipe
	stderr strings.Builder
	exited chan struct{}
	err    error // from Wait, once exited is closed
}

func (pp *peerProc) kill() {
	select {
	case <-pp.exited:
	default:
		_ = pp.cmd.Process.Kill()
	}
}

// startPeers starts n peers, each with its own control pipe and the same transport
// files. anyExited is closed as soon as one of them exits.
func startPeers(exe string, spec []byte, files []*os.File, n int) ([]*peerProc, <-chan struct{}, error) {
	anyExited := make(chan struct{})
	var once sync.Once
	var peers []*peerProc
	for i := 0; i < n; i++ {
		ctrlR, ctrlW, err := os.Pipe()
		if err != nil {
			return peers, anyExited, err
		}
		pp := &peerProc{ctrl: ctrlW, exited: make(chan struct{})}
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), envPeer+"="+string(spec))
		cmd.ExtraFiles = append([]*os.File{ctrlR}, files...)
		cmd.Stdout = os.Stderr
		cmd.Stderr = &pp.stderr
		// SIGTERM, not SIGKILL: the peer cleans up for a parent that died (watchParent).
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
		pp.cmd = cmd
		err = cmd.Start()
		ctrlR.Close()
		if err != nil {
			ctrlW.Close()
			return peers, anyExited, fmt.Errorf("start peer: %w", err)
		}
		peers = append(peers, pp)
		go func() {
			pp.err = cmd.Wait()
			close(pp.exited)
			once.Do(func() { close(anyExited) })
		}()
	}
	return peers, anyExited, nil
}

// stopPeers kills the peers still running, waits for them and closes their control
// pipes.
func stopPeers(peers []*peerProc) {
	for _, pp := range peers {
		pp.kill()
		<-pp.exited
		pp.ctrl.Close()
	}
}

func peersErr(peers []*peerProc) string {
	var msgs []string
	for _, pp := range peers {
		select {
		case <-pp.exited:
			if pp.err != nil {
				msgs = append(msgs, fmt.Sprintf("%v: %s", pp.err, strings.TrimSpace(pp.stderr.String())))
			}
		default:
		}
	}
	return strings.Join(msgs, "; ")
}

// measure runs the phases on the parent's side and fills res.
func measure(ctx context.Context, cfg Config, p Params, ep Endpoint, ctrls []*os.File, out *tracedResult) error {
	if c, ok := ep.(Connector); ok {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := c.Connect(cctx)
		cancel()
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
	}
	if p.Scenario == ScenarioQoS {
		return measureQoS(ctx, cfg, p, ep, ctrls[0], out)
	}
	msg := make([]byte, p.Size)
	for i := range msg {
		msg[i] = byte(i)
	}
	buf := make([]byte, p.Size)
	h := out.hist
	var fds []int
	if p.Scenario == ScenarioFdPass {
		null, err := os.Open(os.DevNull)
		if err != nil {
			return err
		}
		defer null.Close()
		fds = []int{int(null.Fd())}
	}
	phase := func(n int, record bool) (time.Duration, error) {
		var hdr [8]byte
		binary.LittleEndian.PutUint64(hdr[:], uint64(n))
		for _, ctrl := range ctrls {
			if _, err := ctrl.Write(hdr[:]); err != nil {
				return 0, err
			}
		}
		return runPhase(p.Scenario, ep, msg, buf, fds, n*len(ctrls), record, h)
	}

	// Warm up in growing batches until Warmup has passed; the last batch gives the
	// rate used to size the timed phase. The first batch is one message, so that a
	// huge message (a round trip of seconds) does not spend minutes warming up.
	n, perOp := 1, time.Duration(0)
	for start := time.Now(); ; {
		d, err := phase(n, false)
		if err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		perOp = d / time.Duration(n*len(ctrls))
		if time.Since(start) >= cfg.Warmup {
			break
		}
		n = min(n*2, 1<<20)
	}
	iters := cfg.Iters
	if iters <= 0 {
		iters = int(cfg.Duration / max(perOp, time.Nanosecond))
		iters = min(max(iters, minIters(cfg.Duration, perOp)), 50_000_000)
	}
	h.Reset()
	if cfg.Tracer != nil {
		if err := cfg.Tracer.Reset(); err != nil {
			return fmt.Errorf("reset probes: %w", err)
		}
	}
	var total time.Duration
	if p.Scenario == ScenarioStream || p.Scenario == ScenarioFanIn {
		// Ten batches, each acknowledged or counted, so that the per-message time has
		// a spread. In fan-in every peer sends per messages a batch.
		iters /= len(ctrls)
		batches := min(10, max(iters, 1))
		per := max(iters/batches, 1)
		iters = per * batches * len(ctrls)
		for b := 0; b < batches; b++ {
			d, err := phase(per, true)
			if err != nil {
				return err
			}
			total += d
		}
	} else {
		d, err := phase(iters, true)
		if err != nil {
			return err
		}
		total = d
	}
	if cfg.Tracer != nil {
		snap, err := cfg.Tracer.Snapshot()
		if err != nil {
			return fmt.Errorf("read probes: %w", err)
		}
		if b, calls, bpc := breakdown(snap); b != nil {
			out.EBPF = &report.EBPF{Probes: true, Breakdown: b}
			out.calls, out.bytesPerCall = calls, bpc
			out.probeHists = caseHists(snap)
			out.roundCols = [][]uint64{callBuckets(&out.probeHists)}
		}
	}
	out.elapsed = total
	out.finish(iters)
	return nil
}

// minIters is the fewest timed iterations of a measurement: 100, or as many as fit in
// twice the Duration when a message takes that long, but never fewer than 10.
func minIters(d, perOp time.Duration) int {
	if perOp <= 0 || 100*perOp <= 2*d {
		return 100
	}
	return max(int(2*d/perOp), 10)
}

// defaultTimeout bounds one measurement: 30 s, five times the warm-up and timed
// phases, and for large messages the time to move 40 round trips' bytes at 20 MB/s
// (warm-up batches and the shortest timed phase on a slow, busy machine), at most 15
// minutes more.
func defaultTimeout(cfg Config, size int) time.Duration {
	const slow = 20e6 // bytes per second
	large := min(time.Duration(40*2*float64(size)/slow*float64(time.Second)), 15*time.Minute)
	return 30*time.Second + 5*(cfg.Warmup+cfg.Duration) + large
}

// finish fills the result's figures from the histogram and the time taken for iters
// timed iterations.
func (r *tracedResult) finish(iters int) {
	r.Iterations = iters
	r.RTT = r.hist.Latency()
	secs := r.elapsed.Seconds()
	r.MsgsPerSec = float64(iters) / secs
	r.BytesPerSec = float64(iters) * float64(r.Size) / secs
	if t, err := Lookup(r.Primitive); err == nil && payloadFree(t) {
		r.BytesPerSec = 0
	}
}

// runPhase does n operations of the scenario on the parent's side.
func runPhase(scenario string, ep Endpoint, msg, buf []byte, fds []int, n int, record bool, h *Histogram) (time.Duration, error) {
	start := time.Now()
	switch scenario {
	case ScenarioFanIn:
		// n is the total the peers send: receive them all.
		for i := 0; i < n; i++ {
			if err := ep.Recv(buf); err != nil {
				return 0, fmt.Errorf("receive: %w", err)
			}
		}
		d := time.Since(start)
		if record {
			h.Record(d / time.Duration(n))
		}
		return d, nil
	case ScenarioFdPass:
		fe, ok := ep.(FdEndpoint)
		if !ok {
			return 0, fmt.Errorf("%T cannot pass descriptors", ep)
		}
		for i := 0; i < n; i++ {
			t0 := time.Now()
			if err := fe.SendFds(msg, fds); err != nil {
				return 0, fmt.Errorf("send with descriptor: %w", err)
			}
			if err := ep.Recv(buf); err != nil {
				return 0, fmt.Errorf("receive: %w", err)
			}
			if record {
				h.Record(time.Since(t0))
			}
		}
		return time.Since(start), nil
	case ScenarioStream:
		for i := 0; i < n; i++ {
			if err := ep.Send(msg); err != nil {
				return 0, fmt.Errorf("send: %w", err)
			}
		}
		if err := ep.Recv(buf[:1]); err != nil {
			return 0, fmt.Errorf("receive acknowledgement: %w", err)
		}
		d := time.Since(start)
		if record {
			h.Record(d / time.Duration(n))
		}
		return d, nil
	default:
		for i := 0; i < n; i++ {
			t0 := time.Now()
			if err := ep.Send(msg); err != nil {
				return 0, fmt.Errorf("send: %w", err)
			}
			if err := ep.Recv(buf); err != nil {
				return 0, fmt.Errorf("receive: %w", err)
			}
			if record {
				h.Record(time.Since(t0))
			}
		}
		return time.Since(start), nil
	}
}

// PeerMain runs this process as a benchmark peer if it was started as one, and then
// exits; otherwise it returns at once. Programs that run benchmarks (ipcbench, test
// binaries) call it first thing.
func PeerMain() {
	spec := os.Getenv(envPeer)
	if spec == "" {
		return
	}
	err := runPeer(spec)
	// A cleanup for a dead parent (watchParent) may be removing the objects — which
	// is what just ended runPeer with EIDRM: let it finish; it exits the process.
	peerCleanup.Lock()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ipcbench peer:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// peerCleanup is held by a peer's cleanup for its dead parent until the process exits.
var peerCleanup sync.Mutex

func runPeer(specJSON string) error {
	var spec peerSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return err
	}
	if _, err := pinProcess(spec.CPU); err != nil {
		return err
	}
	if lockThread(spec.Params.Wait) {
		runtime.LockOSThread()
	}
	t, err := Lookup(spec.Params.Primitive)
	if err != nil {
		return err
	}
	ctrl := os.NewFile(3, "control")
	files := make([]*os.File, spec.Files)
	for i := range files {
		files[i] = os.NewFile(uintptr(4+i), fmt.Sprintf("transport-%d", i))
	}
	watchParent(t, spec.Params)
	ep, err := t.Open(spec.Params, files)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer ep.Close()
	// Transports may keep using the inherited files: keep them from being finalized.
	defer runtime.KeepAlive(files)
	buf := make([]byte, spec.Params.Size)
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(ctrl, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				// The parent closed its end without the final 0: it died. Its
				// SIGTERM may still be on the way; clean up for it now.
				cleanupForParent(t, spec.Params)
			}
			return fmt.Errorf("control: %w", err)
		}
		n := int(binary.LittleEndian.Uint64(hdr[:]))
		if n == 0 {
			return nil
		}
		switch spec.Params.Scenario {
		case ScenarioQoS:
			if err := runQoSSource(spec.QoS, spec.Params, ep); err != nil {
				return err
			}
		case ScenarioFanIn:
			for i := 0; i < n; i++ {
				if err := ep.Send(buf); err != nil {
					return fmt.Errorf("send: %w", err)
				}
			}
		case ScenarioFdPass:
			fe, ok := ep.(FdEndpoint)
			if !ok {
				return fmt.Errorf("%T cannot pass descriptors", ep)
			}
			fds := make([]int, 1)
			for i := 0; i < n; i++ {
				got, err := fe.RecvFds(buf, fds)
				if err != nil {
					return fmt.Errorf("receive with descriptor: %w", err)
				}
				if got != 1 {
					return fmt.Errorf("received %d descriptors, want 1", got)
				}
				unix.Close(fds[0])
				if err := ep.Send(buf); err != nil {
					return fmt.Errorf("send: %w", err)
				}
			}
		case ScenarioStream:
			for i := 0; i < n; i++ {
				if err := ep.Recv(buf); err != nil {
					return fmt.Errorf("receive: %w", err)
				}
			}
			if err := ep.Send(buf[:1]); err != nil {
				return fmt.Errorf("acknowledge: %w", err)
			}
		default:
			for i := 0; i < n; i++ {
				if err := ep.Recv(buf); err != nil {
					return fmt.Errorf("receive: %w", err)
				}
				if err := ep.Send(buf); err != nil {
					return fmt.Errorf("send: %w", err)
				}
			}
		}
	}
}

// watchParent makes the peer clean up for its parent if the parent dies first, even
// by SIGKILL: System V objects outlive both processes, and a peer blocked in msgrcv
// would wait forever. The peer is started with SIGTERM as its parent-death signal;
// on it, it runs the transport's Cleanup and exits.
func watchParent(t Transport, p Params) {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		<-term
		cleanupForParent(t, p)
	}()
}

// cleanupForParent removes the transport's objects for a parent that died and exits
// the process. The first caller (the SIGTERM watcher or the control loop seeing EOF)
// does it; a second waits on peerCleanup until the process is gone.
func cleanupForParent(t Transport, p Params) {
	peerCleanup.Lock()
	_ = t.Cleanup(p)
	os.Exit(3)
}
