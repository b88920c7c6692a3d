package rpc_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xdrpp/goxdr/xdr"
	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/rpc"
)

// Two "hosts": each helper below runs in a network namespace of its own (made by
// clone(CLONE_NEWNET) when ipctest starts it), and the test joins the two with a veth
// pair whose ends it creates directly inside them. The namespaces, and the veth pair
// with them, belong to the helpers alone: when both have exited (or been killed by
// the test's cleanup, or by Pdeathsig when the test dies) the kernel removes them, so
// a campaign leaves nothing behind on the host, not even a /run/netns entry.

// netnsServerPort is the counting server's UDP port: its namespace is new, so the
// port is free.
const netnsServerPort = 7777

// setUpHost brings up lo and the veth end ifname with address cidr in this
// process's network namespace.
func setUpHost(ifname, cidr string) error {
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"addr", "add", cidr, "dev", ifname},
		{"link", "set", ifname, "up"},
	} {
		if out, err := exec.Command(ipCmd(), args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// ipCmd is iproute2's ip.
func ipCmd() string {
	if p, err := exec.LookPath("ip"); err == nil {
		return p
	}
	return "/usr/sbin/ip"
}

// The server host: args are "cache" or "nocache", the veth end, its address (CIDR)
// and the prefix to serve on. After the test's signal (the veth end is there) it sets
// up its namespace and runs the counting server on the veth address.
var _ = ipctest.Helper("rpc-netns-server", func(args []string) int {
	if len(args) != 3 {
		return fail("args %q", args)
	}
	ipctest.Await()
	if err := setUpHost(args[1], args[2]); err != nil {
		return fail("%v", err)
	}
	pfx := netip.MustParsePrefix(args[2])
	addr := netip.AddrPortFrom(pfx.Addr(), netnsServerPort).String()
	return countingServer(args[0] == "cache", addr, rpc.WithServerInetPrefix(pfx.Masked()))
})

// The client host: args are the semantics (its number), the number of calls, the
// fault seed, loss, duplication and reordering rates, the veth end, its address
// (CIDR) and the server's address. After the test's signal it sets up its namespace,
// starts a fault-injecting relay there on its own veth address, waits for the
// server to answer a null call sent directly, then makes the calls through the relay
// and writes to file 0 "r id" for every call that returned its id, "tx n" (call
// messages sent), "relay ..." and "end".
var _ = ipctest.Helper("rpc-netns-client", func(args []string) int {
	if len(args) != 9 {
		return fail("args %q", args)
	}
	nums := make([]float64, 6)
	for i := range nums {
		v, err := strconv.ParseFloat(args[i], 64)
		if err != nil {
			return fail("arg %d %q: %v", i, args[i], err)
		}
		nums[i] = v
	}
	sem, calls := rpc.Semantics(nums[0]), int(nums[1])
	seed, err := strconv.ParseUint(args[2], 10, 64)
	if err != nil {
		return fail("seed %q", args[2])
	}
	f := ipctest.Faults{Seed: seed, Loss: nums[3], Dup: nums[4], Reorder: nums[5]}
	ifname, cidr, server := args[6], args[7], args[8]
	ipctest.Await()
	if err := setUpHost(ifname, cidr); err != nil {
		return fail("%v", err)
	}
	pfx := netip.MustParsePrefix(cidr)
	target, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return fail("%v", err)
	}
	ctx := context.Background()
	// The veth pair carries traffic once both ends are up: wait for the server.
	direct, err := rpc.Dial(ctx, "udp", server, semProg, 1, rpc.WithInetPrefix(pfx.Masked()),
		rpc.WithSemantics(rpc.AtLeastOnce), rpc.WithRetransmit(10*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		return fail("dial %s: %v", server, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = direct.Call(wctx, 0, nil, nil)
	cancel()
	direct.Close()
	if err != nil {
		return fail("null call to %s across the veth pair: %v", server, err)
	}
	pc, err := net.ListenPacket("udp", netip.AddrPortFrom(pfx.Addr(), 0).String())
	if err != nil {
		return fail("%v", err)
	}
	relay, err := ipctest.NewRelay(pc, target, f)
	if err != nil {
		pc.Close()
		return fail("%v", err)
	}
	defer relay.Close()
	c, err := rpc.Dial(ctx, "udp", relay.Addr().String(), semProg, 1, rpc.WithInetPrefix(pfx.Masked()),
		rpc.WithSemantics(sem), rpc.WithRetransmit(2*time.Millisecond, 20*time.Millisecond))
	if err != nil {
		return fail("dial relay %s: %v", relay.Addr(), err)
	}
	defer c.Close()
	w := bufio.NewWriter(ipctest.File(0))
	deadline := 2 * time.Second
	if sem == rpc.Maybe {
		deadline = 10 * time.Millisecond
	}
	for i := 0; i < calls; i++ {
		id, got := uint64(i), uint64(0)
		cctx, cancel := context.WithTimeout(ctx, deadline)
		err := c.Call(cctx, 1, xdr.XDR_uint64(&id), xdr.XDR_uint64(&got))
		cancel()
		if err == nil {
			if got != id {
				return fail("call %d returned the result of call %d", id, got)
			}
			fmt.Fprintf(w, "r %d\n", id)
		}
	}
	toServer, toClient := relay.Stats()
	fmt.Fprintf(w, "tx %d\n", c.Transmissions())
	fmt.Fprintf(w, "relay %s -> %s: to server: %v; to client: %v\n", relay.Addr(), target, toServer, toClient)
	fmt.Fprintln(w, "end")
	if err := w.Flush(); err != nil {
		return fail("%v", err)
	}
	return 0
})

// canCloneNetns reports why a process cannot be started in a new network namespace
// here, or "" if it can.
func canCloneNetns() string {
	if os.Geteuid() != 0 {
		return "needs root to create network namespaces"
	}
	cmd := exec.Command(ipCmd(), "link", "show", "lo")
	cmd.SysProcAttr = &unix.SysProcAttr{Cloneflags: unix.CLONE_NEWNET}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Sprintf("cannot run %s in a new network namespace: %v: %s", ipCmd(), err, out)
	}
	return ""
}

// netnsCampaign runs calls calls of semantics sem from a client host through a relay
// in its namespace, across a veth pair, to a counting server host (with a reply cache
// if cache) on subnet 10.231.subnet.0/24, and returns the history.
func netnsCampaign(t *testing.T, sem rpc.Semantics, cache bool, calls int, f ipctest.Faults, subnet int) history {
	t.Helper()
	sr, sw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close()
	cr, cw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer cr.Close()
	arg := "nocache"
	if cache {
		arg = "cache"
	}
	srvCIDR := fmt.Sprintf("10.231.%d.1/24", subnet)
	cliCIDR := fmt.Sprintf("10.231.%d.2/24", subnet)
	srvAddr := fmt.Sprintf("10.231.%d.1:%d", subnet, netnsServerPort)
	newNet := ipctest.InNewNamespaces(unix.CLONE_NEWNET)
	s := ipctest.Start(t, "rpc-netns-server", ipctest.Handover(sw), newNet, ipctest.WithArgs(arg, "rpcsrv0", srvCIDR))
	c := ipctest.Start(t, "rpc-netns-client", ipctest.Handover(cw), newNet, ipctest.WithArgs(
		strconv.Itoa(int(sem)), strconv.Itoa(calls), strconv.FormatUint(f.Seed, 10),
		fmt.Sprint(f.Loss), fmt.Sprint(f.Dup), fmt.Sprint(f.Reorder),
		"rpccli0", cliCIDR, srvAddr))
	// The veth pair is made with its ends inside the two namespaces at once: nothing
	// of it ever exists in the test's own namespace.
	link := []string{"link", "add", "rpcsrv0", "netns", strconv.Itoa(s.Pid()), "type", "veth",
		"peer", "name", "rpccli0", "netns", strconv.Itoa(c.Pid())}
	if out, err := exec.Command(ipCmd(), link...).CombinedOutput(); err != nil {
		t.Skipf("cannot create a veth pair between two network namespaces (ip %s): %v: %s", strings.Join(link, " "), err, out)
	}
	s.Signal()
	s.Await()
	sbr := bufio.NewReader(sr)
	line, err := sbr.ReadString('\n')
	if err != nil {
		t.Fatalf("server address: %v\n%s", err, s.Output())
	}
	if got := strings.TrimSpace(line); got != srvAddr {
		t.Fatalf("server listens on %s, want %s", got, srvAddr)
	}
	c.Signal()
	h := history{sem: sem, calls: calls, returned: map[uint64]bool{}, runs: map[uint64]int{}}
	var relayLine string
	cbr := bufio.NewReader(cr)
	for {
		line, err := cbr.ReadString('\n')
		if err != nil {
			t.Fatalf("client results: %v\n%s", err, c.Output())
		}
		line = strings.TrimSpace(line)
		if line == "end" {
			break
		}
		switch {
		case strings.HasPrefix(line, "r "):
			id, err := strconv.ParseUint(line[2:], 10, 64)
			if err != nil {
				t.Fatalf("client results: %q", line)
			}
			h.returned[id] = true
		case strings.HasPrefix(line, "tx "):
			if h.transmissions, err = strconv.ParseUint(line[3:], 10, 64); err != nil {
				t.Fatalf("client results: %q", line)
			}
		case strings.HasPrefix(line, "relay "):
			relayLine = line
		default:
			t.Fatalf("client results: %q", line)
		}
	}
	c.MustSucceed()
	s.Signal()
	readServerCounts(t, sbr, s, &h)
	s.MustSucceed()
	t.Logf("%s across namespaces: %d calls, %d transmissions; %s; server calls/handled/cache hits/in progress/cache full: %s",
		sem, calls, h.transmissions, relayLine, h.stats)
	// Both hosts have exited: their namespaces and the veth pair are gone, and
	// neither end ever appeared here.
	for _, dev := range []string{"rpcsrv0", "rpccli0"} {
		if err := exec.Command(ipCmd(), "link", "show", "dev", dev).Run(); err == nil {
			t.Errorf("veth end %s exists in the test's namespace", dev)
		}
	}
	return h
}

// RPC-04, RPC-05, RPC-06 across two hosts (A9): the counting server runs in one
// network namespace, the client in another, joined by a veth pair on
// 10.231.x.0/24 (addresses the test creates; the client and server reach them
// through WithInetPrefix / WithServerInetPrefix), with a seeded fault relay in user
// space in the client's namespace that loses 10%, duplicates 5% and reorders 5% of
// the datagrams each way. maybe runs each call at most once and sends one message
// per call, at-least-once runs every call that returned at least once,
// at-most-once (a server with a reply cache) runs each call at most once; the
// distribution of runs per call is logged. Skipped where network namespaces or
// veth pairs cannot be made.
func TestSemanticsAcrossNamespaces(t *testing.T) {
	if why := canCloneNetns(); why != "" {
		t.Skip(why)
	}
	seed := ipctest.Seed(t)
	calls := callsPerSemantics(t)
	for i, tc := range []struct {
		sem   rpc.Semantics
		cache bool
	}{{rpc.Maybe, true}, {rpc.AtLeastOnce, false}, {rpc.AtMostOnce, true}} {
		t.Run(tc.sem.String(), func(t *testing.T) {
			f := ipctest.Faults{Seed: seed + 100 + uint64(10*i), Loss: 0.10, Dup: 0.05, Reorder: 0.05}
			h := netnsCampaign(t, tc.sem, tc.cache, calls, f, 7+i)
			rep := checkSemantics(h)
			t.Logf("%s across namespaces: %v", tc.sem, rep)
			requireSemantics(t, tc.sem, rep, calls)
		})
	}
}

// The address rule (A9): without WithInetPrefix / WithServerInetPrefix a client and a
// server refuse every non-loopback address; with them, addresses outside the prefix
// are still refused, and a prefix that is not private (RFC 1918) is refused itself,
// all before any packet is sent.
func TestInetPrefixOptions(t *testing.T) {
	pfx := netip.MustParsePrefix("10.231.254.0/24")
	for _, tc := range []struct {
		addr string
		opts []rpc.ClientOption
	}{
		{"10.231.254.1:9", nil},
		{"10.231.253.1:9", []rpc.ClientOption{rpc.WithInetPrefix(pfx)}},
		{"8.8.8.8:53", []rpc.ClientOption{rpc.WithInetPrefix(pfx)}},
		{"8.8.8.8:53", []rpc.ClientOption{rpc.WithInetPrefix(netip.MustParsePrefix("8.8.8.0/24"))}},
	} {
		for _, network := range []string{"udp", "tcp"} {
			if c, err := rpc.Dial(bg, network, tc.addr, semProg, 1, tc.opts...); !errors.Is(err, ipc.ErrInvalid) {
				if c != nil {
					c.Close()
				}
				t.Errorf("Dial %s %s (%d options): err = %v, want ErrInvalid", network, tc.addr, len(tc.opts), err)
			}
		}
	}
	for _, tc := range []struct {
		addr string
		opts []rpc.ServerOption
	}{
		{"10.231.254.1:0", nil},
		{"10.231.253.1:0", []rpc.ServerOption{rpc.WithServerInetPrefix(pfx)}},
		{"8.8.8.8:0", []rpc.ServerOption{rpc.WithServerInetPrefix(netip.MustParsePrefix("8.8.8.0/24"))}},
	} {
		s, err := rpc.NewServer(tc.opts...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.ListenUDP(tc.addr); !errors.Is(err, ipc.ErrInvalid) {
			t.Errorf("ListenUDP %s (%d options): err = %v, want ErrInvalid", tc.addr, len(tc.opts), err)
		}
		if _, err := s.ListenTCP(tc.addr); !errors.Is(err, ipc.ErrInvalid) {
			t.Errorf("ListenTCP %s (%d options): err = %v, want ErrInvalid", tc.addr, len(tc.opts), err)
		}
		s.Close()
	}
}
