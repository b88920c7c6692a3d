package calc_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc/rpc"
	calc "github.com/ipclab/ipclab/ipc/rpc/example"
)

// needRpcbind skips the test unless the machine's rpcbind answers on 127.0.0.1:111
// and rpcinfo is installed.
func needRpcbind(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("rpcinfo"); err != nil {
		t.Skip("rpcinfo is not installed (Debian: apt-get install rpcbind)")
	}
	ctx, cancel := context.WithTimeout(bg, 2*time.Second)
	defer cancel()
	c, err := rpc.Dial(ctx, "udp", rpc.RpcbindAddr, 100000, 2)
	if err == nil {
		defer c.Close()
		err = c.Call(ctx, 0, nil, nil)
	}
	if err != nil {
		t.Skipf("rpcbind is not running on %s (%v): apt-get install rpcbind, then start it with `rpcbind -w`", rpc.RpcbindAddr, err)
	}
	// Whatever a failed test leaves registered goes at the end.
	t.Cleanup(func() { rpc.Unset(bg, calc.CALC_PROG, calc.CALC_V1) })
	rpc.Unset(bg, calc.CALC_PROG, calc.CALC_V1)
}

// rpcinfoLists reports whether `rpcinfo -p` lists CALC_PROG version 1 on network at
// port.
func rpcinfoLists(t *testing.T, network, addr string) bool {
	t.Helper()
	out, err := exec.Command("rpcinfo", "-p", "127.0.0.1").CombinedOutput()
	if err != nil {
		t.Fatalf("rpcinfo -p: %v\n%s", err, out)
	}
	_, port, _ := net.SplitHostPort(addr)
	re := regexp.MustCompile(fmt.Sprintf(`(?m)^\s*%d\s+1\s+%s\s+%s\b`, calc.CALC_PROG, network, port))
	return re.Match(out)
}

// RPC-03: a Go server registers with the machine's rpcbind: `rpcinfo -p` lists it on
// TCP and UDP while it runs and `rpcinfo -t`/`-u` reach it through rpcbind; a Go
// client finds it through rpcbind (PMAPPROC_GETPORT and RPCBPROC_GETADDR agree) and
// calls it; Close unregisters it.
func TestRpcbindRegistration(t *testing.T) {
	needRpcbind(t)
	srv := startGoServer(t, "advertise")
	for _, network := range []string{"tcp", "udp"} {
		addr := map[string]string{"tcp": srv.tcp, "udp": srv.udp}[network]
		if !rpcinfoLists(t, network, addr) {
			out, _ := exec.Command("rpcinfo", "-p", "127.0.0.1").CombinedOutput()
			t.Fatalf("rpcinfo -p does not list %d/1/%s at %s:\n%s", calc.CALC_PROG, network, addr, out)
		}
		flag := map[string]string{"tcp": "-t", "udp": "-u"}[network]
		out, err := exec.Command("rpcinfo", flag, "127.0.0.1", fmt.Sprint(calc.CALC_PROG), "1").CombinedOutput()
		if err != nil || !regexp.MustCompile(`version 1 ready and waiting`).Match(out) {
			t.Errorf("rpcinfo %s: %v\n%s", flag, err, out)
		}
		got, err := rpc.Lookup(bg, network, calc.CALC_PROG, calc.CALC_V1)
		if err != nil || got != addr {
			t.Errorf("GETPORT %s: %q, %v; want %s", network, got, err, addr)
		}
		got, err = rpc.LookupAddr(bg, network, calc.CALC_PROG, calc.CALC_V1)
		if err != nil || got != addr {
			t.Errorf("GETADDR %s: %q, %v; want %s", network, got, err, addr)
		}
		c, err := rpc.DialRpcbind(bg, network, calc.CALC_PROG, calc.CALC_V1)
		if err != nil {
			t.Fatal(err)
		}
		checkCalc(t, network+" via rpcbind", calc.CALC_V1_Client{C: c})
		c.Close()
	}
	srv.stop(t)
	for _, network := range []string{"tcp", "udp"} {
		if rpcinfoLists(t, network, map[string]string{"tcp": srv.tcp, "udp": srv.udp}[network]) {
			t.Errorf("rpcinfo -p still lists %s after Close", network)
		}
		_, err := rpc.Lookup(bg, network, calc.CALC_PROG, calc.CALC_V1)
		ipctest.CheckOpError(t, "lookup after Close", err, rpc.ErrNotRegistered)
	}
}

// RPC-03: a server SIGKILLed while registered leaves its registration behind; a
// client that finds it through rpcbind gets ErrStale at once (not a hang until its
// deadline), on TCP and UDP; a new server replaces the stale registration.
func TestRpcbindStale(t *testing.T) {
	needRpcbind(t)
	dead := startGoServer(t, "advertise")
	dead.proc.Kill()
	dead.proc.Wait()
	dead.proc = nil
	for _, network := range []string{"tcp", "udp"} {
		start := time.Now()
		ctx, cancel := context.WithTimeout(bg, 10*time.Second)
		c, err := rpc.DialRpcbind(ctx, network, calc.CALC_PROG, calc.CALC_V1)
		cancel()
		if err == nil {
			c.Close()
		}
		ipctest.CheckOpError(t, "dial a stale registration over "+network, err, rpc.ErrStale)
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: stale registration found after %v", network, d)
		}
	}
	srv := startGoServer(t, "advertise")
	c, err := rpc.DialRpcbind(bg, "udp", calc.CALC_PROG, calc.CALC_V1)
	if err != nil {
		t.Fatalf("after a new server replaced the stale registration: %v", err)
	}
	defer c.Close()
	if got, _ := rpc.Lookup(bg, "udp", calc.CALC_PROG, calc.CALC_V1); got != srv.udp {
		t.Errorf("GETPORT: %s, want the new server's %s", got, srv.udp)
	}
	checkCalc(t, "udp via rpcbind after restart", calc.CALC_V1_Client{C: c})
}
