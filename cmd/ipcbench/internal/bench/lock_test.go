package bench

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
)

// voluntarySwitches returns how often this process's threads, and its reaped
// children's, gave up their CPU to wait.
func voluntarySwitches(t *testing.T) (self, children int64) {
	t.Helper()
	var s, c unix.Rusage
	require.NoError(t, unix.Getrusage(unix.RUSAGE_SELF, &s))
	require.NoError(t, unix.Getrusage(unix.RUSAGE_CHILDREN, &c))
	return s.Nvcsw, c.Nvcsw
}

// TestPollerRowsRunUnlocked (issue 14 §6: poller rows about 2x too high) checks that
// the goroutines driving a poller-mode case, in the parent and in the peer, are not
// locked to their threads, by what that costs: a locked goroutine that parks in the
// poller makes its thread sleep and be woken once more per wait, so a pipe ping-pong
// pinned to one CPU took 2.7 voluntary context switches per round trip on each side
// when locked, against 1.1 unlocked (and at least 1: each side waits for the other
// once). A count of switches, not a time, so it does not depend on the machine's load.
func TestPollerRowsRunUnlocked(t *testing.T) {
	const iters = 4000
	tr, err := Lookup("pipe")
	require.NoError(t, err)
	cfg := Config{Scenario: ScenarioPingPong, Iters: iters, Warmup: time.Millisecond, Pin: PinSame, Timeout: time.Minute}
	for _, impl := range []string{ImplStd, ImplIpclab} {
		t.Run(impl, func(t *testing.T) {
			p := Params{Primitive: "pipe", Impl: impl, Scenario: ScenarioPingPong, Size: 64, Wait: ipc.WaitPoller}
			s0, c0 := voluntarySwitches(t)
			r, err := RunCase(context.Background(), cfg, Case{Transport: tr, Params: p})
			require.NoError(t, err)
			s1, c1 := voluntarySwitches(t)
			// The warm-up's round trips count too: at least 16, at most a few hundred.
			parent, peer := float64(s1-s0)/iters, float64(c1-c0)/iters
			t.Logf("voluntary context switches per round trip: parent %.2f, peer %.2f (p50 %s)", parent, peer, formatNs(r.RTT.P50))
			assert.Less(t, parent, 2.0, "parent: the measuring goroutine is locked to its thread")
			assert.Less(t, peer, 2.0, "peer: its goroutine is locked to its thread")
		})
	}
}

// TestPinProcessCoversNewThreads checks that pinning holds for goroutines that are not
// locked to a thread: every thread of the process is pinned, and threads the runtime
// starts afterwards are too.
func TestPinProcessCoversNewThreads(t *testing.T) {
	var all unix.CPUSet
	require.NoError(t, unix.SchedGetaffinity(0, &all))
	cpu := -1
	for c := len(all)*64 - 1; c >= 0; c-- { // the last allowed CPU: not the usual default
		if all.IsSet(c) {
			cpu = c
			break
		}
	}
	restore, err := pinProcess(cpu)
	require.NoError(t, err)
	defer func() {
		restore()
		var now unix.CPUSet
		require.NoError(t, unix.SchedGetaffinity(0, &now))
		assert.Equal(t, all, now, "restore gives the old mask back")
	}()
	var want unix.CPUSet
	want.Set(cpu)
	// More goroutines holding their threads at once than the process has threads make
	// the runtime start new ones, after the pinning.
	before, err := os.ReadDir("/proc/self/task")
	require.NoError(t, err)
	n := len(before) + 2
	got := make(chan unix.CPUSet, n)
	release := make(chan struct{})
	for range n {
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var s unix.CPUSet
			_ = unix.SchedGetaffinity(0, &s)
			got <- s
			<-release
		}()
	}
	for range n {
		assert.Equal(t, want, <-got, "a thread started after pinning")
	}
	entries, err := os.ReadDir("/proc/self/task")
	require.NoError(t, err)
	require.Greater(t, len(entries), len(before), "no thread was started")
	for _, e := range entries {
		tid, _ := strconv.Atoi(e.Name())
		var s unix.CPUSet
		if unix.SchedGetaffinity(tid, &s) == nil {
			assert.Equal(t, want, s, "thread %d", tid)
		}
	}
	close(release)
}
