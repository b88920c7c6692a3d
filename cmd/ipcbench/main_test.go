package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/cmd/ipcbench/internal/bench"
	"github.com/ipclab/ipclab/cmd/ipcbench/internal/report"
	"github.com/ipclab/ipclab/internal/ipctest"
)

func TestMain(m *testing.M) {
	bench.PeerMain()
	inspectChildMain()
	testActorMain()
	ipctest.Main(m)
}

func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestRunJSON(t *testing.T) {
	out, progress, err := runCLI(t, "run", "--prim", "pipe,fifo", "--size", "64,4K", "--iters", "200", "--warmup", "1ms", "--format", "json")
	require.NoError(t, err, progress)
	// pipe: ipclab auto, poller and kernel, std, raw; fifo: the same without std; two
	// sizes.
	assert.Contains(t, progress, "[1/18] pingpong pipe/ipclab auto size=64 pin=same")
	assert.Contains(t, progress, "[4/18] pingpong pipe/std poller size=64 pin=same")
	f, err := report.Decode(strings.NewReader(out))
	require.NoError(t, err)
	require.Len(t, f.Results, 18)
	assert.NotEmpty(t, f.Machine.Kernel)
	assert.NotEmpty(t, f.Machine.GoVersion)
	assert.Equal(t, "same", f.Machine.Pin)
	for _, r := range f.Results {
		assert.Equal(t, 200, r.Iterations)
		assert.Contains(t, []string{"ipclab", "std", "raw"}, r.Impl)
		assert.Greater(t, r.RTT.P50, 0.0)
	}
	// The documented keys are all there.
	var raw map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &raw))
	r0 := raw["results"].([]any)[0].(map[string]any)
	for _, k := range []string{"primitive", "impl", "scenario", "size", "wait", "pin", "iterations", "rtt_ns", "bytes_per_sec", "msgs_per_sec"} {
		assert.Contains(t, r0, k)
	}
	for _, k := range []string{"min", "p50", "p90", "p99", "p999", "max", "mean"} {
		assert.Contains(t, r0["rtt_ns"], k)
	}
	for _, k := range []string{"kernel", "cpu_model", "cpus", "virtualization", "go_version"} {
		assert.Contains(t, raw["machine"], k)
	}
}

func TestRunFormats(t *testing.T) {
	args := []string{"run", "--prim", "pipe", "--impl", "ipclab", "--wait", "kernel", "--size", "64", "--iters", "100", "--warmup", "1ms"}
	out, _, err := runCLI(t, append(args, "--format", "table")...)
	require.NoError(t, err)
	assert.Contains(t, out, "round trip (send + reply), not halved")
	assert.Contains(t, out, "pin=same")
	out, _, err = runCLI(t, append(args, "--format", "csv")...)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(out, "primitive,impl,scenario,size"))
	assert.Equal(t, 2, strings.Count(out, "\n"))
	out, _, err = runCLI(t, append(args, "--format", "bench", "--scenario", "stream")...)
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^BenchmarkStream/prim=pipe/impl=ipclab/wait=kernel/pin=same/size=64\s+100\s+[0-9.]+ ns/op`, out)
}

// TestRunQoS: scenario qos next to another, with its own default size, in the table
// and in the JSON format (whose results carry their qos record and load for a report).
func TestRunQoS(t *testing.T) {
	args := []string{"run", "--prim", "pipe,unix-seqpacket", "--scenario", "pingpong,qos", "--impl", "ipclab", "--wait", "kernel", "--iters", "100", "--warmup", "1ms"}
	out, progress, err := runCLI(t, append(args, "--format", "table")...)
	require.NoError(t, err, progress)
	assert.Contains(t, progress, "qos pipe/ipclab kernel size=256 pin=same ... rate ×")
	assert.Contains(t, out, "scenario qos: a shaped stream from the peer (source) to this process (sink)")
	assert.Contains(t, out, "contract: token bucket of 1000 units/s, depth 8 units; isochronous play-out 5.00ms to 20.00ms after sending")
	assert.Regexp(t, `(?m)^\s+pipe\s+kernel\s+256\s+100\s+0\s+\d+\s+1000/s\s`, out)
	assert.Regexp(t, `(?m)^\s+unix-seqpacket\s+kernel\s+256\s+100\s+0\s+`, out)

	out, progress, err = runCLI(t, append(args, "--size", "64", "--format", "json")...)
	require.NoError(t, err, progress)
	f, err := report.Decode(strings.NewReader(out))
	require.NoError(t, err)
	require.Len(t, f.Results, 4)
	for _, r := range f.Results {
		assert.Equal(t, 64, r.Size, "--size applies to qos when given")
		if r.Scenario != bench.ScenarioQoS {
			assert.Nil(t, r.QoS)
			continue
		}
		require.NotNil(t, r.QoS)
		assert.Equal(t, 100, r.QoS.Sent, "--iters is the number of units")
		assert.Zero(t, r.QoS.BucketBreaches)
		assert.NotEmpty(t, r.QoS.Series)
	}
	var raw map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &raw))
	q := raw["results"].([]any)[2].(map[string]any)["qos"].(map[string]any)
	for _, k := range []string{"contract_rate", "depth", "long_run_rate", "rate_ratio", "max_burst", "bucket_breaches", "delay_p50_ns", "delay_p99_ns", "jitter_p99_ns", "late", "lost", "series"} {
		assert.Contains(t, q, k)
	}

	_, _, err = runCLI(t, "run", "--prim", "pipe", "--scenario", "qos", "--ebpf")
	var ue usageError
	assert.ErrorAs(t, err, &ue)
	_, help, err := runCLI(t, "run", "-h")
	require.NoError(t, err)
	assert.Contains(t, help, "qos (a stream shaped to a contract")
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"frobnicate"},
		{"run", "--format", "xml"},
		{"run", "--size", "0"},
		{"run", "--prim", "carrier-pigeon"},
		{"run", "--scenario", "nope"},
		{"run", "--wait", "sometimes"},
		{"run", "--impl", "fast"},
		{"run", "--pin", "left"},
		{"run", "extra"},
		{"run", "--duration", "0"},
		{"run", "--duration", "-1s"},
		{"run", "--warmup", "-1s"},
		{"run", "--rounds", "0"},
		{"run", "--rounds", "-3"},
		{"run", "--iters", "-5"},
		{"run", "--peers", "0"},
		{"run", "--sample", "-1", "--ebpf"},
		{"run", "--sample", "10"}, // without --ebpf
		{"run", "--prim", "door"},
		{"list", "--bogus"},
		{"list", "extra"},
		{"compare", "--bogus"},
		{"report", "--bogus"},
	} {
		_, _, err := runCLI(t, args...)
		var ue usageError
		if assert.ErrorAs(t, err, &ue, "%v", args) {
			assert.NotContains(t, err.Error(), "\n", "%v", args)
		}
	}
	for _, args := range [][]string{{"run", "-h"}, {"list", "-h"}, {"compare", "-h"}, {"report", "-h"}, {"trace", "-h"}} {
		_, _, err := runCLI(t, args...)
		assert.NoError(t, err, "%v", args)
	}
}

func TestList(t *testing.T) {
	out, _, err := runCLI(t, "list")
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^pipe\s+available\s+auto,poller,kernel`, out)
	assert.Regexp(t, `(?m)^fifo\s+available`, out)
}

func TestCompareAndReport(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.json")
	b := filepath.Join(dir, "b.json")
	for _, p := range []string{a, b} {
		out, _, err := runCLI(t, "run", "--prim", "pipe", "--size", "64", "--iters", "100", "--warmup", "1ms", "--format", "json")
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p, []byte(out), 0o600))
	}
	out, _, err := runCLI(t, "compare", a, b)
	require.NoError(t, err)
	assert.Contains(t, out, "pipe")
	out, _, err = runCLI(t, "compare", "-format", "bench", a, b)
	require.NoError(t, err)
	assert.Contains(t, out, "machine: a")
	html := filepath.Join(dir, "r.html")
	_, _, err = runCLI(t, "report", "-o", html, a, b)
	require.NoError(t, err)
	page, err := os.ReadFile(html)
	require.NoError(t, err)
	assert.Contains(t, string(page), "<svg")
	_, _, err = runCLI(t, "compare")
	assert.Error(t, err)
}

// ipcbench-run runs the CLI with args, as a process of its own that the test can kill.
var _ = ipctest.Helper("ipcbench-run", func(args []string) int {
	if err := run(context.Background(), args, io.Discard, io.Discard); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
})

// TestKilledRunLeavesNothing SIGKILLs ipcbench in the middle of a System V run: its
// peer notices the parent gone, removes the queues and exits, so nothing is left. (A
// kill between the creation of the queues and the start of the peer still leaves
// them: nobody is left to remove them.)
func TestKilledRunLeavesNothing(t *testing.T) {
	ipctest.RequireRoot(t) // a private IPC namespace, so that other tests' objects do not count
	queues := func() int {
		b, err := os.ReadFile("/proc/sysvipc/msg")
		require.NoError(t, err)
		return len(strings.Split(strings.TrimSpace(string(b)), "\n")) - 1
	}
	require.Zero(t, queues())
	p := ipctest.Start(t, "ipcbench-run", ipctest.WithArgs("run", "--prim", "sysv-msg", "--size", "64",
		"--impl", "ipclab", "--duration", "1m", "--warmup", "1ms", "--pin", "none"))
	// Wait until both queues have been received from (lrpid set): the peer is up.
	exchanging := func() bool {
		b, err := os.ReadFile("/proc/sysvipc/msg")
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")[1:]
		for _, l := range lines {
			if f := strings.Fields(l); len(f) < 7 || f[6] == "0" {
				return false
			}
		}
		return len(lines) == 2
	}
	for deadline := time.Now().Add(30 * time.Second); !exchanging(); time.Sleep(10 * time.Millisecond) {
		require.False(t, time.Now().After(deadline), "no exchange started:\n%s", p.Output())
	}
	p.Kill()
	_ = p.Wait()
	for deadline := time.Now().Add(30 * time.Second); queues() != 0; time.Sleep(10 * time.Millisecond) {
		require.False(t, time.Now().After(deadline), "%d System V queues left 30 s after ipcbench was killed", queues())
	}
}

// TestRunEBPFProbeCost: `run --ebpf` measures the probes' own cost when it loads
// them, and reports it beside the probed figures: in every traced result's JSON and
// under the table.
func TestRunEBPFProbeCost(t *testing.T) {
	ipctest.RequireRoot(t)
	args := []string{"run", "--ebpf", "--prim", "pipe", "--impl", "raw", "--size", "64", "--iters", "200", "--warmup", "1ms"}
	out, progress, err := runCLI(t, append(args, "--format", "json")...)
	if err != nil && strings.Contains(err.Error(), "CAP_BPF") {
		t.Skip("eBPF probes need CAP_BPF and CAP_PERFMON:", err)
	}
	require.NoError(t, err, progress)
	assert.Regexp(t, `eBPF probes cost \d+ ns a run, [0-9.]+ runs and \d+ ns per traced system call`, progress)
	f, err := report.Decode(strings.NewReader(out))
	require.NoError(t, err)
	require.Len(t, f.Results, 1)
	e := f.Results[0].EBPF
	require.NotNil(t, e)
	assert.Positive(t, e.ProbeRunNs)
	assert.GreaterOrEqual(t, e.ProbeRunsPerCall, 2.0, "an entry and an exit per call at least")
	assert.InDelta(t, e.ProbeRunNs*e.ProbeRunsPerCall, e.ProbeNsPerCall, 1e-6*e.ProbeNsPerCall)

	out, _, err = runCLI(t, append(args, "--format", "table")...)
	require.NoError(t, err)
	assert.Contains(t, out, "The probes' own cost, measured at load")
}

// TestRunOutputNotAFile: -o naming a FIFO (or a device, as /dev/null) writes the
// results into it and leaves it what it was. The write-beside-and-rename that
// protects a regular file replaced /dev/null with a regular file on this machine.
func TestRunOutputNotAFile(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "results")
	require.NoError(t, unix.Mkfifo(fifo, 0o600))
	got := make(chan []byte, 1)
	go func() {
		f, err := os.Open(fifo)
		if err != nil {
			got <- nil
			return
		}
		defer f.Close()
		b, _ := io.ReadAll(f)
		got <- b
	}()
	_, progress, err := runCLI(t, "run", "--prim", "pipe", "--impl", "raw", "--size", "64", "--iters", "50", "--warmup", "1ms", "--format", "json", "-o", fifo)
	require.NoError(t, err, progress)
	var b []byte
	select {
	case b = <-got:
	case <-time.After(30 * time.Second):
		// The run wrote elsewhere (a file renamed over the FIFO): free the reader.
		if w, err := os.OpenFile(fifo, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
		t.Fatal("nothing was written into the FIFO")
	}
	f, err := report.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	assert.NotEmpty(t, f.Results)
	fi, err := os.Lstat(fifo)
	require.NoError(t, err)
	assert.Equal(t, os.ModeNamedPipe, fi.Mode().Type(), "the FIFO was replaced")
}
