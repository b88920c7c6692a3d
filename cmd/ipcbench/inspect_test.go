package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
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

	"github.com/ipclab/ipclab/inspect"
	"github.com/ipclab/ipclab/internal/ipctest"
)

// envTestReader makes the test binary, re-executed, a process that reads its
// descriptor 3 until something arrives (testActorMain).
const envTestReader = "IPCBENCH_TEST_READ3"

// testActorMain runs the test binary as a reader of descriptor 3 when the
// environment says so.
func testActorMain() {
	if os.Getenv(envTestReader) == "" {
		return
	}
	unix.SetNonblock(3, false)
	var b [1]byte
	unix.Read(3, b[:]) // blocks in read(2): what inspect looks for
	os.Exit(0)
}

// twoPipeDeadlock starts two processes, each reading a pipe whose only writer is
// the other: a deadlock. It returns their pids; the test's cleanup kills them.
func twoPipeDeadlock(t *testing.T) (int, int) {
	t.Helper()
	var a, b [2]int
	require.NoError(t, unix.Pipe2(a[:], unix.O_CLOEXEC))
	require.NoError(t, unix.Pipe2(b[:], unix.O_CLOEXEC))
	file := func(fd int) *os.File { return os.NewFile(uintptr(fd), "pipe") }
	ar, aw, br, bw := file(a[0]), file(a[1]), file(b[0]), file(b[1])
	start := func(read, write *os.File) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envTestReader+"=1")
		cmd.ExtraFiles = []*os.File{read, write} // fds 3 and 4
		require.NoError(t, cmd.Start())
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
		return cmd
	}
	p1 := start(ar, bw)
	p2 := start(br, aw)
	for _, f := range []*os.File{ar, aw, br, bw} {
		f.Close()
	}
	return p1.Process.Pid, p2.Process.Pid
}

// INS-02 through the command: inspect finds the deadlock, names both processes,
// exits with errDeadlock, and writes it in every format.
func TestInspectDeadlockCommand(t *testing.T) {
	p1, p2 := twoPipeDeadlock(t)
	pids := strconv.Itoa(p1) + "," + strconv.Itoa(p2)
	var out string
	var err error
	// The children may not have reached read(2) yet: the first snapshot that finds
	// the deadlock ends the loop.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		out, _, err = runCLI(t, "inspect", "-pid", pids)
		if err != nil {
			break
		}
	}
	require.ErrorIs(t, err, errDeadlock, out)
	assert.Contains(t, out, "DEADLOCKS (1)")
	assert.Contains(t, out, "BLOCKED IN IPC CALLS (2 threads)")
	lines := strings.Split(out, "\n")
	i := indexOf(lines, "DEADLOCKS (1)")
	require.Greater(t, i, 0)
	d := lines[i+1]
	assert.Regexp(t, `^1\. \d+ \(\S+\) read pipe:\d+ → \d+ \(\S+\) read pipe:\d+ → \d+$`, d)
	assert.Contains(t, d, strconv.Itoa(p1))
	assert.Contains(t, d, strconv.Itoa(p2))

	out, _, err = runCLI(t, "inspect", "-pid", pids, "-json")
	require.ErrorIs(t, err, errDeadlock)
	s, rerr := inspect.ReadJSON(strings.NewReader(out))
	require.NoError(t, rerr)
	require.Len(t, s.Deadlocks, 1)
	assert.Len(t, s.Deadlocks[0].Path, 2)
	assert.ElementsMatch(t, []int{p1, p2}, []int{s.Deadlocks[0].Path[0].PID, s.Deadlocks[0].Path[1].PID})

	// The same snapshot, saved, in the HTML report, with and without runs.
	snap := filepath.Join(t.TempDir(), "snap.json")
	require.NoError(t, os.WriteFile(snap, []byte(out), 0o600))
	for _, args := range [][]string{
		{"report", "-o", "-", "-inspect", snap},
		{"report", "-o", "-", "-inspect", snap, "internal/report/testdata/fixture-debian12.json"},
	} {
		page, _, err := runCLI(t, args...)
		require.NoError(t, err, args)
		assert.Contains(t, page, `<section id="snapshots">`)
		assert.Contains(t, page, `class="chart waitfor"`)
		assert.Contains(t, page, html.EscapeString(s.Deadlocks[0].String()))
		assert.Equal(t, len(args) == 6, strings.Contains(page, `<section id="latency">`), args)
	}
	_, _, err = runCLI(t, "report", "-o", "-", "-inspect", "internal/report/testdata/fixture-debian12.json")
	assert.ErrorContains(t, err, "schema")

	out, _, err = runCLI(t, "inspect", "-pid", pids, "-format", "dot")
	require.ErrorIs(t, err, errDeadlock)
	assert.Contains(t, out, "digraph \"waitfor\" {")
	assert.Contains(t, out, "red")

	out, _, err = runCLI(t, "inspect", "-pid", pids, "-format", "svg")
	require.ErrorIs(t, err, errDeadlock)
	assert.Contains(t, out, "<svg")
	assert.Contains(t, out, "deadlock")
}

// -watch takes -count snapshots and marks what changed (Diff and the marks are
// checked in package inspect; here, that the command shows them).
func TestInspectWatch(t *testing.T) {
	p1, p2 := twoPipeDeadlock(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out strings.Builder
	err := run(ctx, []string{"inspect", "-watch", "-interval", "300ms", "-count", "2", "-confirm", "20ms",
		"-pid", strconv.Itoa(p1) + "," + strconv.Itoa(p2)}, &out, &strings.Builder{})
	require.NoError(t, err, "-watch does not end with the deadlock status")
	assert.Equal(t, 2, strings.Count(out.String(), "IPC snapshot "), out.String())
	// The second table has the change column, "+" or blank in each row.
	second := out.String()[strings.LastIndex(out.String(), "IPC snapshot "):]
	// The two pipes of the deadlock did not change between the snapshots (other
	// objects the actors inherited, such as a descriptor of the shell that ran
	// the tests, may have).
	ours := 0
	for _, line := range strings.Split(second, "\n") {
		if strings.Contains(line, "pipe:") && !strings.HasPrefix(line, "1.") {
			assert.Regexp(t, `^([+~] |  )`, line)
		}
		if strings.Contains(line, " "+strconv.Itoa(p1)+"/3r ") {
			ours++
			assert.Regexp(t, `^ +pipe:`, line, "unchanged pipe marked changed")
		}
	}
	assert.Equal(t, 1, ours, second)
}

func TestInspectFlags(t *testing.T) {
	for _, args := range [][]string{
		{"inspect", "-pid", "x"},
		{"inspect", "-pid", "0"},
		{"inspect", "-format", "yaml"},
		{"inspect", "-interval", "0", "-watch"},
		{"inspect", "-count", "-1"},
		{"inspect", "-confirm", "0"},
		{"inspect", "extra"},
		{"inspect", "-cost", "-json"},
		{"inspect", "-pid", "999999999"},
	} {
		_, _, err := runCLI(t, args...)
		var ue usageError
		assert.ErrorAs(t, err, &ue, "%q", args)
	}
}

// inspect -cost runs end to end on small numbers (the figures themselves are for
// the closing note, not checked against a time).
func TestInspectCost(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ping-pongs")
	}
	var out, errOut strings.Builder
	err := inspectCost(context.Background(), &out, &errOut, costOptions{
		pipes: 50, socketPairs: 25, snapshots: 2, rounds: 2, duration: 100 * time.Millisecond,
		pins: []string{"same"},
	})
	require.NoError(t, err, errOut.String())
	assert.Contains(t, out.String(), "with 50 pipes and 50 Unix sockets")
	for _, impl := range []string{"raw", "ipclab"} {
		// Under the snapshot loop, at least one snapshot was taken; the CPU
		// spinner takes none.
		assert.Regexp(t, `(?m)^`+impl+`\s+same\s+inspect-loop\s+[\d.]+ µs\s+[\d.]+ µs\s+[\d.]+×\s+[\d.]+–[\d.]+\s+[1-9]\d*$`, out.String())
		assert.Regexp(t, `(?m)^`+impl+`\s+same\s+inspect-1s\s+[\d.]+ µs\s+[\d.]+ µs\s+[\d.]+×\s+[\d.]+–[\d.]+\s+[1-9]\d*$`, out.String())
		assert.Regexp(t, `(?m)^`+impl+`\s+same\s+cpu-burn\s+[\d.]+ µs\s+[\d.]+ µs\s+[\d.]+×\s+[\d.]+–[\d.]+\s+-$`, out.String())
	}
}

func indexOf(lines []string, s string) int {
	for i, l := range lines {
		if l == s {
			return i
		}
	}
	return -1
}

// inspectAsNobody runs ipcbench inspect in the helper (started as nobody) and
// prints what the test checks: "RESULT " and a JSON line.
var inspectAsNobody = ipctest.Helper("ipcbench-inspect-nobody", func([]string) int {
	var jsonOut, textOut, errOut strings.Builder
	r := unprivilegedInspect{UID: os.Geteuid()}
	if err := run(context.Background(), []string{"inspect", "-json"}, &jsonOut, &errOut); err != nil && !errors.Is(err, errDeadlock) {
		r.Err = err.Error() + ": " + errOut.String()
	} else if s, err := inspect.ReadJSON(strings.NewReader(jsonOut.String())); err != nil {
		r.Err = err.Error()
	} else {
		r.Privileged, r.Unreadable = s.Privileged, s.Unreadable
		for _, o := range s.Objects {
			for _, h := range o.Holders {
				r.OwnHeld += b2i(h.PID == os.Getpid())
			}
		}
	}
	if err := run(context.Background(), []string{"inspect"}, &textOut, &errOut); err != nil && !errors.Is(err, errDeadlock) {
		r.Err += err.Error()
	}
	r.Text = textOut.String()
	b, _ := json.Marshal(r)
	fmt.Println("RESULT " + string(b))
	return 0
})

type unprivilegedInspect struct {
	UID        int
	Err        string
	Privileged bool
	Unreadable []inspect.Unreadable
	OwnHeld    int
	Text       string
}

// Unprivileged, inspect sees what the user may see (its own descriptors), says
// it is unprivileged, and lists what it could not read (root's processes)
// instead of failing.
func TestInspectUnprivileged(t *testing.T) {
	ipctest.RequireRoot(t)
	p := ipctest.Start(t, inspectAsNobody, ipctest.AsUser(ipctest.Nobody))
	p.MustSucceed()
	_, line, ok := strings.Cut(p.Output(), "RESULT ")
	var r unprivilegedInspect
	require.True(t, ok, p.Output())
	require.NoError(t, json.Unmarshal([]byte(line), &r), p.Output())
	require.Empty(t, r.Err)
	assert.Equal(t, int(ipctest.Nobody), r.UID)
	assert.False(t, r.Privileged)
	assert.Positive(t, r.OwnHeld, "the inspector's own descriptors (its standard streams) are not in the snapshot")
	assert.True(t, slices.ContainsFunc(r.Unreadable, func(u inspect.Unreadable) bool {
		return strings.HasPrefix(u.What, "/proc/")
	}), "root's processes are not listed as unreadable: %+v", r.Unreadable)
	assert.Contains(t, r.Text, "unprivileged")
	assert.Contains(t, r.Text, "COULD NOT READ")
}
