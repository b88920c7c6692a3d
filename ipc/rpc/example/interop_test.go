package calc_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipclab/ipclab/ipc/rpc"
	calc "github.com/ipclab/ipclab/ipc/rpc/example"
)

// buildC compiles calc.x with rpcgen and the C server and client of testdata with
// gcc against libtirpc, in a temporary directory, and returns their paths. It skips
// the test when the tools are missing.
func buildC(t *testing.T) (server, client string) {
	t.Helper()
	for _, tool := range []string{"rpcgen", "gcc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (Debian: apt-get install rpcsvc-proto libtirpc-dev gcc)", tool)
		}
	}
	if _, err := os.Stat("/usr/include/tirpc/rpc/rpc.h"); err != nil {
		t.Skip("libtirpc headers are not installed (Debian: apt-get install libtirpc-dev)")
	}
	dir := t.TempDir()
	copyFile := func(src string) {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(src)), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	copyFile("calc.x")
	copyFile("testdata/calc_cserver.c")
	copyFile("testdata/calc_cclient.c")
	run := func(name string, args ...string) {
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	run("rpcgen", "-h", "calc.x", "-o", "calc.h")
	run("rpcgen", "-c", "calc.x", "-o", "calc_xdr.c")
	run("rpcgen", "-l", "calc.x", "-o", "calc_clnt.c")
	run("rpcgen", "-m", "calc.x", "-o", "calc_svc.c")
	cc := []string{"-O1", "-I/usr/include/tirpc"}
	run("gcc", append(cc, "-o", "cserver", "calc_cserver.c", "calc_xdr.c", "calc_svc.c", "-ltirpc")...)
	run("gcc", append(cc, "-o", "cclient", "calc_cclient.c", "calc_xdr.c", "calc_clnt.c", "-ltirpc")...)
	return filepath.Join(dir, "cserver"), filepath.Join(dir, "cclient")
}

// expectedC is what the C client prints for answers that are right: the same
// requests as requests(), answered as want() says.
func expectedC() string {
	var b strings.Builder
	b.WriteString("null ok\n")
	for _, r := range requests() {
		fmt.Fprintf(&b, "eval %s\n", want(r))
	}
	b.WriteString("swab 0807060504030201\n")
	nums := []int64{5, -1, 1 << 62, 0, -1 << 62, 3}
	slices.Sort(nums)
	b.WriteString("sort")
	for _, v := range nums {
		fmt.Fprintf(&b, " %d", v)
	}
	b.WriteString("\n")
	return b.String()
}

// RPC-01, RPC-02: interoperability with the real thing. An rpcgen/libtirpc C client
// calls the Go server, and the Go client calls an rpcgen/libtirpc C server, over TCP
// and UDP: every union arm, strings (UTF-8, empty), arrays, a fixed array, signed
// hypers and a byte-order check must come out as the other side meant them.
func TestCInterop(t *testing.T) {
	cserver, cclient := buildC(t)

	t.Run("C client, Go server", func(t *testing.T) {
		srv := startGoServer(t)
		for _, network := range []string{"tcp", "udp"} {
			addr := map[string]string{"tcp": srv.tcp, "udp": srv.udp}[network]
			port := addr[strings.LastIndexByte(addr, ':')+1:]
			out, err := exec.Command(cclient, network, port).CombinedOutput()
			if err != nil {
				t.Fatalf("C client over %s: %v\n%s", network, err, out)
			}
			if got, w := string(out), expectedC(); got != w {
				t.Errorf("C client over %s printed\n%s\nwant\n%s", network, got, w)
			}
		}
	})

	t.Run("Go client, C server", func(t *testing.T) {
		cmd := exec.Command(cserver)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
		var tport, uport int
		if _, err := fmt.Fscan(bufio.NewReader(stdout), &tport, &uport); err != nil {
			t.Fatalf("C server ports: %v\n%s", err, stderr.String())
		}
		for _, network := range []string{"tcp", "udp"} {
			port := map[string]int{"tcp": tport, "udp": uport}[network]
			c, err := calc.Dial_CALC_V1(bg, network, fmt.Sprintf("127.0.0.1:%d", port),
				rpc.WithRetransmit(50*time.Millisecond, time.Second))
			if err != nil {
				t.Fatal(err)
			}
			checkCalc(t, "Go client, C server, "+network, c)
			// libtirpc's replies to what it does not serve, as the Go client sees them.
			ipcErr := c.C.Call(bg, 99, nil, nil)
			if !errors.Is(ipcErr, rpc.ErrProcUnavail) {
				t.Errorf("%s: procedure 99 of the C server: %v, want PROC_UNAVAIL", network, ipcErr)
			}
			c.Close()
			other, err := rpc.Dial(bg, network, fmt.Sprintf("127.0.0.1:%d", port), calc.CALC_PROG, 7,
				rpc.WithRetransmit(50*time.Millisecond, time.Second))
			if err != nil {
				t.Fatal(err)
			}
			var me *rpc.MismatchError
			err = other.Call(bg, 0, nil, nil)
			if !errors.As(err, &me) || me.Low != 1 || me.High != 1 {
				t.Errorf("%s: version 7 of the C server: %v, want PROG_MISMATCH 1..1", network, err)
			}
			other.Close()
		}
	})
}
