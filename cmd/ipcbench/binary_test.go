package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/cmd/ipcbench/internal/bench"
)

// TestBinary builds ipcbench once, with go build as a user would (VCS stamping on,
// whatever GOFLAGS says), and checks what its exit status and output are for the
// input that issue 14 §4 tried: bad input is refused before anything runs (exit 2,
// one line on stderr, nothing on stdout, no case started), help succeeds everywhere.
func TestBinary(t *testing.T) {
	gotool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go build is needed to test the program as users run it: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "ipcbench")
	build := exec.Command(gotool, "build", "-buildvcs=true", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	t.Run("help", func(t *testing.T) { testHelp(t, bin) })
	t.Run("bad-flags", func(t *testing.T) { testBadFlags(t, bin) })
	t.Run("size-limits", func(t *testing.T) { testSizeLimits(t, bin) })
	t.Run("memory/S11", func(t *testing.T) { testMemory(t, bin) })
	t.Run("nothing-to-run", func(t *testing.T) { testNothingToRun(t, bin) })
	t.Run("trace-no-process", func(t *testing.T) { testTraceNoProcess(t, bin) })
	t.Run("report-no-overwrite", func(t *testing.T) { testReportNoOverwrite(t, bin) })
	t.Run("version", func(t *testing.T) { testVersion(t, bin) })
}

// result is what one run of the program did.
type result struct {
	code           int
	stdout, stderr string
}

type runOpt struct {
	dir     string        // working directory
	env     []string      // NAME=value to set, NAME= to remove
	limitAS uint64        // RLIMIT_AS for the process, 0: none
	timeout time.Duration // default 2 minutes
}

func runBin(t *testing.T, bin string, o runOpt, args ...string) result {
	t.Helper()
	if o.timeout == 0 {
		o.timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = o.dir
	env := os.Environ()
	for _, kv := range o.env {
		name, _, _ := strings.Cut(kv, "=")
		env = slices.DeleteFunc(env, func(e string) bool { return strings.HasPrefix(e, name+"=") })
		if !strings.HasSuffix(kv, "=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	if o.limitAS > 0 {
		// A guard, should a regression allocate the buffers after all: the process
		// then fails its allocation instead of filling the shared machine's memory.
		lim := unix.Rlimit{Cur: o.limitAS, Max: o.limitAS}
		if err := unix.Prlimit(cmd.Process.Pid, unix.RLIMIT_AS, &lim, nil); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("prlimit: %v", err)
		}
	}
	err := cmd.Wait()
	require.NoError(t, ctx.Err(), "ipcbench %q did not finish in %v:\n%s", args, o.timeout, stderr.String())
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// refused asserts that ipcbench refused its input before running anything: exit 2,
// nothing on stdout, no case started, and the error on one line that contains want.
func refused(t *testing.T, r result, args []string, want ...string) {
	t.Helper()
	assert.Equal(t, 2, r.code, "%q: exit status\n%s", args, r.stderr)
	assert.Empty(t, r.stdout, "%q: stdout", args)
	assert.NotContains(t, r.stderr, "[1/", "%q: a case ran", args)
	assert.NotContains(t, r.stderr, "fatal error", "%q", args)
	var errLine string
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.HasPrefix(l, "ipcbench: ") {
			assert.Empty(t, errLine, "%q: two error lines", args)
			errLine = l
		}
	}
	for _, w := range want {
		assert.Contains(t, errLine, w, "%q: stderr:\n%s", args, r.stderr)
	}
}

func testHelp(t *testing.T, bin string) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-h"}, "ipcbench compare"},
		{[]string{"--help"}, "ipcbench compare"},
		{[]string{"help"}, "ipcbench compare"},
		{[]string{"run", "-h"}, "-duration"},
		{[]string{"run", "--help"}, "-duration"},
		{[]string{"list", "-h"}, "usage: ipcbench list"},
		{[]string{"compare", "-h"}, "-format"},
		{[]string{"report", "-h"}, "-o"},
		{[]string{"trace", "-h"}, "-interval"},
	} {
		r := runBin(t, bin, runOpt{}, tc.args...)
		assert.Equal(t, 0, r.code, "%q: exit status\n%s", tc.args, r.stderr)
		assert.Contains(t, r.stdout+r.stderr, tc.want, "%q", tc.args)
		assert.NotContains(t, r.stdout+r.stderr, "help requested", "%q", tc.args)
	}
}

func testBadFlags(t *testing.T, bin string) {
	// Should a bad value be accepted after all, the run it starts stays short.
	small := []string{"--prim", "pipe", "--impl", "raw", "--size", "64"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{append([]string{"run", "--duration", "0"}, small...), "--duration 0s"},
		{append([]string{"run", "--duration", "-1s"}, small...), "--duration -1s"},
		{append([]string{"--duration", "0"}, small...), "--duration 0s"}, // the default suite checks the same
		{append([]string{"run", "--warmup", "-1s"}, small...), "--warmup -1s"},
		{append([]string{"run", "--rounds", "0"}, small...), "--rounds 0"},
		{append([]string{"run", "--rounds", "-3"}, small...), "--rounds -3"},
		{append([]string{"--rounds", "-3"}, small...), "--rounds -3"},
		{append([]string{"run", "--iters", "-5"}, small...), "--iters -5"},
		{append([]string{"run", "--peers", "0"}, small...), "--peers 0"},
		{append([]string{"run", "--duration", "100000h"}, small...), "--duration"},
		{[]string{"run", "--size", "0"}, "bad size"},
		{[]string{"run", "--size", "-1"}, "bad size"},
		{[]string{"run", "--size", "64,x"}, "bad size"},
		{[]string{"run", "--size", "99999999999999G"}, "too large"},
		{append([]string{"run", "--scenario", "nope"}, small...), "unknown scenario"},
		{[]string{"run", "--prim", "pipe", "--size", "64", "-o", "/nonexistent/dir/out.json"}, "/nonexistent/dir/out.json"},
		{[]string{"list", "--bogus"}, "-bogus"},
		{[]string{"list", "extra"}, "no arguments"},
		{[]string{"compare", "--bogus"}, "-bogus"},
		{[]string{"compare"}, "results file"},
		{[]string{"report"}, "results file"},
		{[]string{"trace", "-p", "1", "-interval", "-1s"}, "-interval"},
		{[]string{"frobnicate"}, "unknown command"},
	} {
		refused(t, runBin(t, bin, runOpt{timeout: time.Minute}, tc.args...), tc.args, tc.want)
	}
}

func procInt(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	return n
}

// testSizeLimits: a size above a primitive's limit skips that primitive at that size,
// with the limit named on stderr (stdout stays clean JSON); a size that no chosen
// primitive can carry is refused. The limit is read from /proc, never assumed.
func testSizeLimits(t *testing.T, bin string) {
	msgmax := procInt(t, "/proc/sys/kernel/msgmax")
	big := bench.FormatSize(msgmax + 1)
	limit := fmt.Sprintf("exceeds msgmax %d (/proc/sys/kernel/msgmax)", msgmax)

	args := []string{"run", "--prim", "sysv-msg", "--size", big}
	refused(t, runBin(t, bin, runOpt{}, args...), args, "no chosen primitive can carry it", limit)

	quick := []string{"--impl", "raw", "--iters", "20", "--warmup", "1ms", "--format", "json"}
	args = append([]string{"run", "--prim", "pipe,sysv-msg", "--size", "64," + big}, quick...)
	r := runBin(t, bin, runOpt{}, args...)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "sysv-msg at "+big+": "+big+" "+limit+"; skipped\n")
	var doc struct {
		Results []struct {
			Primitive string `json:"primitive"`
			Size      int    `json:"size"`
		} `json:"results"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &doc), "stdout is not clean JSON:\n%s", r.stdout)
	var got []string
	for _, res := range doc.Results {
		got = append(got, res.Primitive+"@"+bench.FormatSize(res.Size))
	}
	assert.Equal(t, []string{"pipe@64", "pipe@" + big, "sysv-msg@64"}, got)

	// The default suite names what a size cut out as well.
	args = append([]string{"--size", big}, quick...)
	r = runBin(t, bin, runOpt{}, args...)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "sysv-msg at "+big+": "+big+" "+limit+"; skipped\n")
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &doc), "stdout is not clean JSON:\n%s", r.stdout)
	assert.NotEmpty(t, doc.Results)
}

// memAvailable reads MemAvailable from /proc/meminfo, in bytes.
func memAvailable(t *testing.T) uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	require.NoError(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "MemAvailable:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatal("no MemAvailable in /proc/meminfo")
	return 0
}

// testMemory (S11): a size whose buffers cannot fit in this machine's memory is
// refused at once, naming the limit and the figure, instead of dying out of memory
// (--size 100G) or swapping for minutes (--size 3G). The size is derived from
// MemAvailable, so the test holds on any machine.
func testMemory(t *testing.T, bin string) {
	gib := uint64(1 << 30)
	size := max(100, (memAvailable(t)+gib-1)/gib) // at least all of MemAvailable
	args := []string{"run", "--prim", "pipe", "--size", fmt.Sprintf("%dG", size)}
	r := runBin(t, bin, runOpt{limitAS: 4 << 30}, args...)
	refused(t, r, args, "MemAvailable", "(/proc/meminfo)", "GiB")
}

func testNothingToRun(t *testing.T, bin string) {
	args := []string{"run", "--prim", "door", "--size", "64"}
	refused(t, runBin(t, bin, runOpt{}, args...), args, "nothing to run", "door", "--scenario call")
	args = []string{"run", "--prim", "sysv-msg", "--size", "64", "--impl", "ipclab", "--wait", "poller"}
	refused(t, runBin(t, bin, runOpt{}, args...), args, "nothing to run", "offers none of the wait strategies poller")
}

// testTraceNoProcess: tracing a process that does not exist fails at once, whether
// the pid was never used (above pid_max) or belonged to a process already reaped.
func testTraceNoProcess(t *testing.T, bin string) {
	gone := exec.Command("true")
	require.NoError(t, gone.Run())
	for _, pid := range []int{gone.Process.Pid, procInt(t, "/proc/sys/kernel/pid_max") + 1} {
		args := []string{"trace", "-p", strconv.Itoa(pid), "-interval", "10ms", "-count", "1"}
		refused(t, runBin(t, bin, runOpt{}, args...), args, "no such process")
	}
}

// testReportNoOverwrite: report without -o writes report.html only if there is none;
// -o replaces the file it names.
func testReportNoOverwrite(t *testing.T, bin string) {
	fixture, err := filepath.Abs("internal/report/testdata/fixture-debian12.json")
	require.NoError(t, err)
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	require.NoError(t, os.WriteFile(page, []byte("mine"), 0o600))

	args := []string{"report", fixture}
	refused(t, runBin(t, bin, runOpt{dir: dir}, args...), args, "report.html exists", "-o report.html")
	b, err := os.ReadFile(page)
	require.NoError(t, err)
	assert.Equal(t, "mine", string(b), "report.html was overwritten")

	r := runBin(t, bin, runOpt{dir: dir}, "report", "-o", "report.html", fixture)
	require.Equal(t, 0, r.code, r.stderr)
	b, err = os.ReadFile(page)
	require.NoError(t, err)
	assert.Contains(t, string(b), "<svg")

	require.NoError(t, os.Remove(page))
	r = runBin(t, bin, runOpt{dir: dir}, args...)
	require.Equal(t, 0, r.code, r.stderr)
	b, err = os.ReadFile(page)
	require.NoError(t, err)
	assert.Contains(t, string(b), "<svg")
}

// testVersion: every JSON says which code produced it. A build stamped by go build (a
// git checkout whose .git is a directory) gives the revision, which must be the
// checkout's HEAD, whatever $IPCLAB_VERSION says; an unstamped build (a git worktree,
// a tree without .git) gives $IPCLAB_VERSION, else "unknown". Never "".
func testVersion(t *testing.T, bin string) {
	bi, err := buildinfo.ReadFile(bin)
	require.NoError(t, err)
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev != "" {
		head, err := exec.Command("git", "rev-parse", "HEAD").Output()
		require.NoError(t, err)
		assert.Equal(t, strings.TrimSpace(string(head)), rev, "the stamp is not this checkout's HEAD")
		rev = rev[:12]
		if dirty {
			rev += "-dirty"
		}
	} else {
		t.Logf("this build carries no VCS stamp (%s): checking the fallbacks", bi.Main.Version)
	}
	version := func(env string) string {
		r := runBin(t, bin, runOpt{env: []string{env}},
			"run", "--prim", "pipe", "--impl", "raw", "--size", "64", "--iters", "20", "--warmup", "1ms", "--format", "json")
		require.Equal(t, 0, r.code, r.stderr)
		var doc struct {
			Machine map[string]any `json:"machine"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &doc))
		v, _ := doc.Machine["ipclab_version"].(string)
		return v
	}
	for _, tc := range []struct{ env, want string }{
		{"IPCLAB_VERSION=", "unknown"},
		{"IPCLAB_VERSION=v9.8.7-test", "v9.8.7-test"},
	} {
		want := tc.want
		if rev != "" {
			want = rev
		}
		assert.Equal(t, want, version(tc.env), tc.env)
	}
}
