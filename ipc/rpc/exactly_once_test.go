package rpc_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xdrpp/goxdr/xdr"
	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/rpc"
)

// The exactly-once server: semProg procedure 1 takes a call id, appends it to the
// execution log args[3] (one O_APPEND write per handler run: every execution,
// committed or not), records it as the call's effect (Call.Effect) and returns it.
// args[1] is "durable" (a reply log at args[2], WithDurableReplies) or "memory" (an
// in-memory reply cache only: at-most-once while the server lives). It serves UDP
// at args[0] ("127.0.0.1:0" the first time, the same port after a restart) and
// crashes where the test's FaultAt says.
var _ = ipctest.Helper("rpc-once-server", func(args []string) int {
	rpc.SetFaultPoint(ipctest.Point)
	opts := []rpc.ServerOption{rpc.WithReplyCache(1<<16, time.Minute)}
	replayed := 0
	if args[1] == "durable" {
		opts = append(opts, rpc.WithDurableReplies(args[2], func(e rpc.Effect) error {
			if len(e.Data) != 8 {
				return fmt.Errorf("effect of %d bytes", len(e.Data))
			}
			replayed++
			return nil
		}))
	}
	s, err := rpc.NewServer(opts...)
	if err != nil {
		return fail("%v", err)
	}
	runs, err := os.OpenFile(args[3], os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fail("%v", err)
	}
	durable := args[1] == "durable"
	err = s.Register(semProg, 1, map[uint32]rpc.ProcFunc{1: func(ctx context.Context, c *rpc.Call) error {
		var id uint64
		if err := c.Args(xdr.XDR_uint64(&id)); err != nil {
			return err
		}
		b := binary.BigEndian.AppendUint64(nil, id)
		if _, err := runs.Write(b); err != nil {
			return err
		}
		if durable {
			if err := c.Effect(b); err != nil {
				return err
			}
		}
		return c.Result(xdr.XDR_uint64(&id))
	}})
	if err != nil {
		return fail("%v", err)
	}
	ua, err := s.ListenUDP(args[0])
	if err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(ipctest.File(0), "%s %d\n", ua, replayed)
	ipctest.Signal()
	ipctest.Await()
	if err := s.Close(); err != nil {
		return fail("close: %v", err)
	}
	return 0
})

// onceRun is one campaign's raw material.
type onceRun struct {
	returned  map[uint64]bool
	committed map[uint64]int // from the durable reply log (durable mode)
	executed  map[uint64]int // from the execution log: every handler run
	kills     map[string]int
	stops     map[string]int
	calls     int
	replayed  []int
	relays    string
}

// onceReport is the checker's verdict.
type onceReport struct {
	returned        int
	committed, runs map[int]int // count per call -> calls
	violations      []string
}

func dist(m map[int]int) string {
	keys := slices.Sorted(func(yield func(int) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %d:%d", k, m[k])
	}
	return b.String()
}

func (r onceReport) String() string {
	return fmt.Sprintf("%d returned; committed runs per call:%s; executions per call:%s; %d violations",
		r.returned, dist(r.committed), dist(r.runs), len(r.violations))
}

// checkExactlyOnce judges a campaign. exactly-once (RPC-07): every call that
// returned has exactly one committed run in the durable log, and no call has more
// than one (at-most-once across crashes). at-most-once (RPC-06), for a server
// without a durable log, is judged on executions: at most one per call.
func checkExactlyOnce(h onceRun, exactly bool) onceReport {
	r := onceReport{committed: map[int]int{}, runs: map[int]int{}}
	bad := func(format string, args ...any) {
		r.violations = append(r.violations, fmt.Sprintf(format, args...))
	}
	for id := range uint64(h.calls) {
		c, n := h.committed[id], h.executed[id]
		r.committed[c]++
		r.runs[n]++
		if h.returned[id] {
			r.returned++
		}
		if exactly {
			if h.returned[id] && c != 1 {
				bad("exactly-once call %d returned with %d committed runs", id, c)
			}
			if c > 1 {
				bad("exactly-once call %d committed %d times", id, c)
			}
			if c > n {
				bad("call %d committed %d times but executed %d", id, c, n)
			}
		} else if n > 1 {
			bad("at-most-once call %d ran %d times", id, n)
		}
	}
	for id := range h.executed {
		if id >= uint64(h.calls) {
			bad("handler ran for id %d, never called", id)
		}
	}
	return r
}

// startOnce starts the exactly-once server and returns it with its address.
func startOnce(t *testing.T, addr, mode, logPath, runsPath string, opts ...ipctest.Option) (*ipctest.Proc, string, int) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := ipctest.Start(t, "rpc-once-server", append(opts, ipctest.Handover(w), ipctest.WithArgs(addr, mode, logPath, runsPath))...)
	p.Await()
	var a string
	var replayed int
	line, err := bufio.NewReader(r).ReadString('\n')
	if _, serr := fmt.Sscan(line, &a, &replayed); err != nil || serr != nil {
		t.Fatalf("server address: %v %v %q\n%s", err, serr, line, p.Output())
	}
	return p, a, replayed
}

// onceCampaign runs clients retransmitting (at-most-once semantics, through relays
// that lose 10% and duplicate 5% of datagrams both ways) against a server that is
// SIGKILLed kills times at each of points (at a random hit, 1 to 8, of the point)
// and restarted on the same port and log, then once more without a fault; it
// returns what happened, read from the logs.
func onceCampaign(t *testing.T, mode string, points []string, kills int) onceRun {
	return onceCampaignSig(t, mode, points, kills, unix.SIGKILL)
}

// onceCampaignSig is onceCampaign with the fault sig: with unix.SIGSTOP the server
// stops at the point, stays stopped 150 ms while the clients retransmit into its
// socket, is continued (SIGCONT), runs 50 ms, and is then SIGKILLed.
func onceCampaignSig(t *testing.T, mode string, points []string, kills int, sig unix.Signal) onceRun {
	dir := t.TempDir()
	logPath, runsPath := filepath.Join(dir, "replies.log"), filepath.Join(dir, "runs.log")
	seed := ipctest.Seed(t)
	rng := rand.New(rand.NewPCG(seed, seed+1))
	h := onceRun{returned: map[uint64]bool{}, committed: map[uint64]int{}, executed: map[uint64]int{}, kills: map[string]int{}, stops: map[string]int{}}

	var (
		addr    string
		stop    atomic.Bool
		wg      sync.WaitGroup
		mu      sync.Mutex
		nextID  atomic.Uint64
		failure atomic.Value
		relays  []*ipctest.Relay
	)
	startClients := func() {
		target, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		for g := range 4 {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			rl, err := ipctest.NewRelay(pc, target, ipctest.Faults{Seed: seed + uint64(g)*7, Loss: 0.10, Dup: 0.05, Reorder: 0.05})
			if err != nil {
				t.Fatal(err)
			}
			relays = append(relays, rl)
			c, err := rpc.Dial(bg, "udp", rl.Addr().String(), semProg, 1,
				rpc.WithSemantics(rpc.AtMostOnce), rpc.WithRetransmit(10*time.Millisecond, 100*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				for !stop.Load() {
					id := nextID.Add(1) - 1
					ctx, cancel := context.WithTimeout(bg, 30*time.Second)
					var got uint64
					err := c.Call(ctx, 1, xdr.XDR_uint64(&id), xdr.XDR_uint64(&got))
					cancel()
					if err != nil {
						failure.CompareAndSwap(nil, fmt.Sprintf("call %d: %v", id, err))
						continue
					}
					if got != id {
						failure.CompareAndSwap(nil, fmt.Sprintf("call %d answered %d", id, got))
					}
					mu.Lock()
					h.returned[id] = true
					mu.Unlock()
				}
			}()
		}
	}
	start := func(opts ...ipctest.Option) *ipctest.Proc {
		a := "127.0.0.1:0"
		if addr != "" {
			a = addr
		}
		p, got, replayed := startOnce(t, a, mode, logPath, runsPath, opts...)
		h.replayed = append(h.replayed, replayed)
		if addr == "" {
			addr = got
			startClients()
		}
		return p
	}
	for _, pt := range points {
		for range kills {
			p := start(ipctest.FaultAt(pt, 1+rng.IntN(8), sig))
			if sig == unix.SIGSTOP {
				if !awaitStopped(p.Pid(), 30*time.Second) {
					t.Fatalf("server not stopped at %s within 30 s\n%s", pt, p.Output())
				}
				h.stops[pt]++
				time.Sleep(150 * time.Millisecond)
				unix.Kill(p.Pid(), unix.SIGCONT)
				time.Sleep(50 * time.Millisecond)
				unix.Kill(p.Pid(), unix.SIGKILL)
			}
			done := make(chan error, 1)
			go func() { done <- p.Wait() }()
			select {
			case err := <-done:
				var ee interface{ ExitCode() int }
				if !errors.As(err, &ee) || ee.ExitCode() != -1 {
					t.Fatalf("server at %s: %v, want killed\n%s", pt, err, p.Output())
				}
				h.kills[pt]++
			case <-time.After(30 * time.Second):
				t.Fatalf("server not killed at %s within 30 s", pt)
			}
		}
	}
	p := start()
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	p.Signal()
	if err := p.Wait(); err != nil {
		t.Fatalf("last server: %v\n%s", err, p.Output())
	}
	for _, rl := range relays {
		in, out := rl.Stats()
		h.relays += fmt.Sprintf("[to server %v; to client %v] ", in, out)
		rl.Close()
	}
	if f := failure.Load(); f != nil {
		t.Errorf("client: %v", f)
	}
	h.calls = int(nextID.Load())
	runs, err := os.ReadFile(runsPath)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+8 <= len(runs); i += 8 {
		h.executed[binary.BigEndian.Uint64(runs[i:])]++
	}
	if mode == "durable" {
		b, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		for len(b) > 0 {
			e, _, n, ok := rpc.DecodeRecordForTest(b)
			if !ok {
				t.Fatalf("torn record in the middle of the log, %d bytes left", len(b))
			}
			h.committed[binary.BigEndian.Uint64(e.Data)]++
			b = b[n:]
		}
	}
	return h
}

// awaitStopped waits until process pid is stopped (state T in /proc/PID/stat).
func awaitStopped(pid int, limit time.Duration) bool {
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(time.Millisecond) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && len(b) > i+2 && b[i+2] == 'T' {
			return true
		}
	}
	return false
}

var killPoints = []string{"rpc-before-handler", "rpc-after-handler", "rpc-after-reply"}

// TestExactlyOnceCrashes (RPC-07, RPC-06): a server with a durable reply log is
// SIGKILLed 20 times at each of three points (before the handler, after it but
// before the reply is recorded and sent, after the reply), restarted on the same
// port and log, while clients retransmit through lossy, duplicating relays. Every
// call that returned has exactly one committed run in the durable log, none more
// than one; executions beyond the committed one happen only where the doc says
// (a crash after the handler, before its record), and the Effect API keeps them
// from counting.
func TestExactlyOnceCrashes(t *testing.T) {
	kills := 20
	if testing.Short() {
		kills = 3
	}
	h := onceCampaign(t, "durable", killPoints, kills)
	r := checkExactlyOnce(h, true)
	t.Logf("exactly-once: kills %v; %d calls; %s", h.kills, h.calls, r)
	t.Logf("replayed records per server start: %v", h.replayed)
	t.Logf("relays: %s", h.relays)
	for _, v := range r.violations {
		t.Error(v)
	}
	if r.returned < h.calls-8 || r.returned == 0 {
		t.Errorf("only %d of %d calls returned", r.returned, h.calls)
	}
	for _, pt := range killPoints {
		if h.kills[pt] != kills {
			t.Errorf("%d kills at %s, want %d", h.kills[pt], pt, kills)
		}
	}
	if slices.Max(h.replayed) == 0 {
		t.Errorf("no restarted server replayed a record: %v", h.replayed)
	}
}

// TestAtMostOnceCrashPlanted (RPC-07): the same campaign against a server whose
// reply cache lives in memory only is caught by the checker: killed after a
// handler ran but before its reply went out, the restarted server runs the
// retransmitted call again (an at-most-once violation across a crash, which is
// what the durable log is for).
func TestAtMostOnceCrashPlanted(t *testing.T) {
	h := onceCampaign(t, "memory", []string{"rpc-after-handler"}, 3)
	r := checkExactlyOnce(h, false)
	t.Logf("memory cache: kills %v; %d calls; %s", h.kills, h.calls, r)
	if len(r.violations) == 0 {
		t.Fatalf("no violation caught in %d calls with 3 crashes after the handler", h.calls)
	}
}

// TestCheckExactlyOncePlanted (RPC-07): the checker catches each planted
// violation: a returned call with no committed run, one committed twice, a commit
// without an execution, and passes a clean history.
func TestCheckExactlyOncePlanted(t *testing.T) {
	clean := onceRun{calls: 3, returned: map[uint64]bool{0: true, 1: true}, committed: map[uint64]int{0: 1, 1: 1}, executed: map[uint64]int{0: 1, 1: 2, 2: 1}}
	if r := checkExactlyOnce(clean, true); len(r.violations) != 0 {
		t.Fatalf("clean history: %v", r.violations)
	}
	for name, mutate := range map[string]func(h *onceRun){
		"returned, never committed": func(h *onceRun) { h.committed[1] = 0 },
		"committed twice":           func(h *onceRun) { h.committed[2] = 2; h.executed[2] = 2 },
		"commit without execution":  func(h *onceRun) { h.committed[2] = 1; h.executed[2] = 0 },
	} {
		h := onceRun{calls: 3, returned: map[uint64]bool{0: true, 1: true}, committed: map[uint64]int{0: 1, 1: 1}, executed: map[uint64]int{0: 1, 1: 2, 2: 1}}
		mutate(&h)
		if r := checkExactlyOnce(h, true); len(r.violations) == 0 {
			t.Errorf("%s: not caught", name)
		}
	}
	twice := onceRun{calls: 1, returned: map[uint64]bool{0: true}, committed: map[uint64]int{}, executed: map[uint64]int{0: 2}}
	if r := checkExactlyOnce(twice, false); len(r.violations) == 0 {
		t.Error("at-most-once: a call run twice not caught")
	}
}

// TestDurableBadInput (RPC-07): a bad log path or an Effect without a durable log is
// ErrInvalid; a log with a torn tail loads its whole records and drops the rest.
func TestDurableBadInput(t *testing.T) {
	if _, err := rpc.NewServer(rpc.WithDurableReplies("", nil)); !errors.Is(err, ipc.ErrInvalid) {
		t.Fatalf("empty log path: %v", err)
	}
	path := filepath.Join(t.TempDir(), "log")
	s, err := rpc.NewServer(rpc.WithDurableReplies(path, nil))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("log: %v %v", err, fi)
	}
	if err := s.RemoveLog(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("log after RemoveLog: %v", err)
	}
	if err := os.WriteFile(path, []byte("RPC1\x00\x00\x00\x10garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := 0
	s, err = rpc.NewServer(rpc.WithDurableReplies(path, func(rpc.Effect) error { n++; return nil }))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 || n != 0 {
		t.Fatalf("torn log: %v, size %v, %d replayed", err, fi, n)
	}
	s.RemoveLog()
}

// TestExactlyOnceStops (RPC-07): the exactly-once campaign with SIGSTOP: the server
// stops at each point 5 times (150 ms, retransmissions piling up in its socket),
// continues, and is then SIGKILLed and restarted. Every call that returned has
// exactly one committed run; none has more.
func TestExactlyOnceStops(t *testing.T) {
	h := onceCampaignSig(t, "durable", killPoints, 5, unix.SIGSTOP)
	r := checkExactlyOnce(h, true)
	t.Logf("exactly-once with stops: stops %v, kills %v; %d calls; %s", h.stops, h.kills, h.calls, r)
	for _, v := range r.violations {
		t.Error(v)
	}
	for _, pt := range killPoints {
		if h.stops[pt] != 5 || h.kills[pt] != 5 {
			t.Errorf("%s: %d stops, %d kills, want 5 each", pt, h.stops[pt], h.kills[pt])
		}
	}
	if r.returned == 0 {
		t.Error("no call returned")
	}
}
