package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipclab/ipclab/internal/bench"
	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/internal/report"
)

func TestMain(m *testing.M) {
	bench.PeerMain()
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
	assert.Contains(t, progress, "[1/12] pingpong pipe/ipclab poller size=64 pin=same")
	f, err := report.Decode(strings.NewReader(out))
	require.NoError(t, err)
	require.Len(t, f.Results, 12)
	assert.NotEmpty(t, f.Machine.Kernel)
	assert.NotEmpty(t, f.Machine.GoVersion)
	assert.Equal(t, "same", f.Machine.Pin)
	for _, r := range f.Results {
		assert.Equal(t, 200, r.Iterations)
		assert.Contains(t, []string{"ipclab", "raw"}, r.Impl)
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
	} {
		_, _, err := runCLI(t, args...)
		var ue usageError
		assert.ErrorAs(t, err, &ue, "%v", args)
	}
}

func TestList(t *testing.T) {
	out, _, err := runCLI(t, "list")
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^pipe\s+available\s+poller,kernel`, out)
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
