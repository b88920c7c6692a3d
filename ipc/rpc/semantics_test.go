package rpc_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdrpp/goxdr/xdr"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc/rpc"
)

const semProg = 0x20000778

// The counting server: procedure 1 takes a call id (uint64), counts a run of its
// handler for that id and returns the id. With argument "cache" it has a reply
// cache. It serves UDP, writes its address to file 0, and when told to stop closes
// the server (no handler runs after that) and writes "id runs" lines, then "end".
var _ = ipctest.Helper("rpc-counting-server", func(args []string) int {
	return countingServer(len(args) > 0 && args[0] == "cache", "127.0.0.1:0")
})

// countingServer is the counting server's body, serving UDP on addr; opts are
// further server options.
func countingServer(cache bool, addr string, opts ...rpc.ServerOption) int {
	if cache {
		opts = append(opts, rpc.WithReplyCache(4096, 3*time.Second))
	}
	s, err := rpc.NewServer(opts...)
	if err != nil {
		return fail("%v", err)
	}
	var mu sync.Mutex
	runs := map[uint64]int{}
	err = s.Register(semProg, 1, map[uint32]rpc.ProcFunc{1: func(ctx context.Context, c *rpc.Call) error {
		var id uint64
		if err := c.Args(xdr.XDR_uint64(&id)); err != nil {
			return err
		}
		mu.Lock()
		runs[id]++
		mu.Unlock()
		return c.Result(xdr.XDR_uint64(&id))
	}})
	if err != nil {
		return fail("%v", err)
	}
	ua, err := s.ListenUDP(addr)
	if err != nil {
		return fail("%v", err)
	}
	out := ipctest.File(0)
	fmt.Fprintf(out, "%s\n", ua)
	ipctest.Signal()
	ipctest.Await()
	if err := s.Close(); err != nil {
		return fail("close: %v", err)
	}
	w := bufio.NewWriter(out)
	st := s.Stats()
	fmt.Fprintf(w, "stats %d %d %d %d %d\n", st.Calls, st.Handled, st.CacheHits, st.InProgress, st.CacheFull)
	for id, n := range runs {
		fmt.Fprintf(w, "%d %d\n", id, n)
	}
	fmt.Fprintln(w, "end")
	w.Flush()
	return 0
}

// history is what happened in a campaign: the calls made (ids 0 … calls-1), which
// returned with their own id, and how often the server ran each id's handler.
type history struct {
	sem      rpc.Semantics
	calls    int
	returned map[uint64]bool
	runs     map[uint64]int
	stats    string
	// transmissions is how many call messages the client sent (Transmissions),
	// retransmissions included.
	transmissions uint64
}

// semReport is the checker's verdict on a history.
type semReport struct {
	returned   int
	dist       map[int]int // handler runs per call -> number of calls
	violations []string
}

func (r semReport) String() string {
	keys := make([]int, 0, len(r.dist))
	for k := range r.dist {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %d:%d", k, r.dist[k])
	}
	return fmt.Sprintf("%d returned; runs per call:%s; %d violations", r.returned, b.String(), len(r.violations))
}

// checkSemantics judges a history against its semantics: maybe (RPC-04) runs every
// handler at most once and its client sent exactly one message per call; at-least-once (RPC-05) ran every call that returned at
// least once; at-most-once (RPC-06) at most once, always. For every semantics a
// call that returned ran at least once, and nothing ran that was never called.
func checkSemantics(h history) semReport {
	r := semReport{dist: map[int]int{}}
	bad := func(format string, args ...any) {
		if len(r.violations) < 10 {
			r.violations = append(r.violations, fmt.Sprintf(format, args...))
		} else {
			r.violations = append(r.violations, "")
		}
	}
	for id := range h.runs {
		if id >= uint64(h.calls) {
			bad("handler ran for id %d, never called", id)
		}
	}
	for i := 0; i < h.calls; i++ {
		id := uint64(i)
		n := h.runs[id]
		r.dist[n]++
		if h.returned[id] {
			r.returned++
			if n < 1 {
				bad("call %d returned but its handler never ran", id)
			}
		}
		if (h.sem == rpc.Maybe || h.sem == rpc.AtMostOnce) && n > 1 {
			bad("%s call %d ran %d times", h.sem, id, n)
		}
	}
	// A maybe client sends each call once: a server's reply cache would hide
	// its retransmissions from the runs, so count the messages it sent.
	if h.sem == rpc.Maybe && h.transmissions != uint64(h.calls) {
		bad("maybe client sent %d call messages for %d calls", h.transmissions, h.calls)
	}
	return r
}

// callsPerSemantics is how many calls each campaign makes: IPCLAB_RPC_CALLS, or 2000.
func callsPerSemantics(t *testing.T) int {
	if s := os.Getenv("IPCLAB_RPC_CALLS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("IPCLAB_RPC_CALLS=%q", s)
		}
		return n
	}
	if testing.Short() {
		return 300
	}
	return 2000
}

// campaign runs calls calls of the given semantics through a fault-injecting relay
// to a counting server in another process (with a reply cache if cache), and
// returns the history.
func campaign(t *testing.T, sem rpc.Semantics, cache bool, calls int, f ipctest.Faults) history {
	t.Helper()
	return campaignAs(t, sem, sem, cache, calls, f)
}

// campaignAs is campaign with a client of semantics clientSem whose history is
// judged as sem: a planted fault when they differ.
func campaignAs(t *testing.T, sem, clientSem rpc.Semantics, cache bool, calls int, f ipctest.Faults) history {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	arg := "nocache"
	if cache {
		arg = "cache"
	}
	p := ipctest.Start(t, "rpc-counting-server", ipctest.Handover(w), ipctest.WithArgs(arg))
	p.Await()
	br := bufio.NewReader(r)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("server address: %v\n%s", err, p.Output())
	}
	target, err := net.ResolveUDPAddr("udp", strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	relay, err := ipctest.NewRelay(pc, target, f)
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	c, err := rpc.Dial(bg, "udp", relay.Addr().String(), semProg, 1,
		rpc.WithSemantics(clientSem), rpc.WithRetransmit(2*time.Millisecond, 20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := history{sem: sem, calls: calls, returned: map[uint64]bool{}, runs: map[uint64]int{}}
	deadline := 2 * time.Second
	if sem == rpc.Maybe {
		deadline = 10 * time.Millisecond
	}
	for i := 0; i < calls; i++ {
		id, got := uint64(i), uint64(0)
		ctx, cancel := context.WithTimeout(bg, deadline)
		err := c.Call(ctx, 1, xdr.XDR_uint64(&id), xdr.XDR_uint64(&got))
		cancel()
		if err == nil {
			if got != id {
				t.Fatalf("call %d returned the result of call %d", id, got)
			}
			h.returned[id] = true
		}
	}
	p.Signal()
	readServerCounts(t, br, p, &h)
	p.MustSucceed()
	h.transmissions = c.Transmissions()
	toServer, toClient := relay.Stats()
	t.Logf("%s: %d calls, %d transmissions; relay to server: %v; to client: %v; server calls/handled/cache hits/in progress/cache full: %s",
		sem, calls, c.Transmissions(), toServer, toClient, h.stats)
	return h
}

// readServerCounts reads the counting server p's report from br into h: its stats
// and the runs per call id.
func readServerCounts(t *testing.T, br *bufio.Reader, p *ipctest.Proc, h *history) {
	t.Helper()
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("server counts: %v\n%s", err, p.Output())
		}
		line = strings.TrimSpace(line)
		if line == "end" {
			return
		}
		if s, ok := strings.CutPrefix(line, "stats "); ok {
			h.stats = s
			continue
		}
		var id uint64
		var n int
		if _, err := fmt.Sscan(line, &id, &n); err != nil {
			t.Fatalf("server counts: %q", line)
		}
		h.runs[id] = n
	}
}

// RPC-04, RPC-05, RPC-06: each call semantics over UDP through a relay that loses
// 10%, duplicates 5% and reorders 5% of the datagrams each way (seeded; replay
// with IPCLAB_SEED), against a server in another process that counts its handler's
// runs per call: maybe sends one message per call (Transmissions) and runs each
// call at most once, both to a server with a reply cache (which drops the
// network's duplicates) and to one without (through a relay that does not
// duplicate, so that only a client's retransmission could run a call twice),
// at-least-once runs every call
// that returned at least once (and some more than once: retransmissions and
// duplicates reach a server without a cache), at-most-once (a server with a reply
// cache) runs each call at most once. The distribution of runs per call is logged.
func TestSemanticsUnderFaults(t *testing.T) {
	seed := ipctest.Seed(t)
	calls := callsPerSemantics(t)
	for i, tc := range []struct {
		sem   rpc.Semantics
		cache bool
		dup   float64
	}{{rpc.Maybe, true, 0.05}, {rpc.Maybe, false, 0}, {rpc.AtLeastOnce, false, 0.05}, {rpc.AtMostOnce, true, 0.05}} {
		name := tc.sem.String()
		if tc.sem == rpc.Maybe && !tc.cache {
			name += "-nocache"
		}
		t.Run(name, func(t *testing.T) {
			f := ipctest.Faults{Seed: seed + uint64(10*i), Loss: 0.10, Dup: tc.dup, Reorder: 0.05}
			h := campaign(t, tc.sem, tc.cache, calls, f)
			rep := checkSemantics(h)
			t.Logf("%s: %v", tc.sem, rep)
			requireSemantics(t, tc.sem, rep, calls)
		})
	}
}

// The checker catches planted violations (A9): histories with a handler run twice
// under maybe and at-most-once, a returned call whose handler never ran, and a run
// of a call never made; and, live, at-most-once calls against a server without a
// reply cache under duplication, which must show a call run more than once.
func TestSemanticsCheckerCatchesViolations(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    history
	}{
		{"maybe ran twice", history{sem: rpc.Maybe, calls: 3, returned: map[uint64]bool{0: true}, runs: map[uint64]int{0: 1, 1: 2}}},
		{"at-most-once ran twice", history{sem: rpc.AtMostOnce, calls: 3, returned: map[uint64]bool{2: true}, runs: map[uint64]int{2: 2}}},
		{"at-least-once returned without a run", history{sem: rpc.AtLeastOnce, calls: 3, returned: map[uint64]bool{1: true}, runs: map[uint64]int{0: 3}}},
		{"a run never called", history{sem: rpc.AtLeastOnce, calls: 3, returned: map[uint64]bool{}, runs: map[uint64]int{7: 1}}},
		// A maybe client that retransmitted, hidden by a server's reply cache:
		// every handler ran once, yet the client sent 5 messages for 3 calls.
		{"maybe retransmitted", history{sem: rpc.Maybe, calls: 3, returned: map[uint64]bool{0: true, 1: true, 2: true}, runs: map[uint64]int{0: 1, 1: 1, 2: 1}, transmissions: 5}},
	} {
		if rep := checkSemantics(tc.h); len(rep.violations) == 0 {
			t.Errorf("%s: the checker found nothing", tc.name)
		}
	}
	// Sound histories pass.
	ok := history{sem: rpc.AtLeastOnce, calls: 2, returned: map[uint64]bool{0: true, 1: true}, runs: map[uint64]int{0: 1, 1: 3}}
	if rep := checkSemantics(ok); len(rep.violations) != 0 {
		t.Errorf("a sound at-least-once history: %v", rep.violations)
	}

	calls := 500
	seed := ipctest.Seed(t)
	// Live: a "maybe" client that retransmits (an at-least-once client judged as
	// maybe) against a server with a reply cache, which hides the extra runs.
	f := ipctest.Faults{Seed: seed + 1, Loss: 0.10, Reorder: 0.05}
	h := campaignAs(t, rpc.Maybe, rpc.AtLeastOnce, true, calls, f)
	if rep := checkSemantics(h); len(rep.violations) == 0 {
		t.Errorf("a retransmitting maybe client behind a reply cache: the checker found nothing (%v)", rep)
	}
	f = ipctest.Faults{Seed: seed, Loss: 0.10, Dup: 0.05, Reorder: 0.05}
	h = campaign(t, rpc.AtMostOnce, false, calls, f) // no cache: the planted fault
	rep := checkSemantics(h)
	t.Logf("at-most-once without a reply cache: %v", rep)
	if len(rep.violations) == 0 {
		t.Errorf("at-most-once against a server without a reply cache: the checker found no call run twice")
	}
}

// requireSemantics fails t for every violation the checker found in a campaign of
// calls under sem, and when calls that must return (all but maybe's) did not.
func requireSemantics(t *testing.T, sem rpc.Semantics, rep semReport, calls int) {
	t.Helper()
	for _, v := range rep.violations {
		if v != "" {
			t.Error(v)
		}
	}
	if rep.returned == 0 {
		t.Errorf("%s: no call returned", sem)
	}
	if sem != rpc.Maybe && rep.returned != calls {
		t.Errorf("%s: %d of %d calls returned within 2 s", sem, rep.returned, calls)
	}
}
