package sysv

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
)

func TestMain(m *testing.M) { ipctest.Main(m) }

var keySeq atomic.Int32

// kernelSecondBefore returns a time no later than any timestamp the kernel stamps on
// an object from now on. The kernel takes ctime/stime from its coarse clock, which
// lags time.Now by up to a tick: across a second boundary it may still read the last
// second.
func kernelSecondBefore() time.Time { return time.Now().Truncate(time.Second).Add(-time.Second) }

// newKey returns a key no other test in this process uses.
func newKey() Key {
	return Key(0x5e000000 | int32(os.Getpid()&0xfff)<<12 | keySeq.Add(1)&0xfff)
}

// inPrivateNamespace reports whether the tests run as root in their own IPC namespace,
// where namespace-wide limits may be changed.
func inPrivateNamespace() bool {
	return os.Geteuid() == 0 && os.Getenv("IPCLAB_TEST_IN_NAMESPACE") != ""
}

func requireNamespace(t *testing.T) {
	t.Helper()
	if !inPrivateNamespace() {
		t.Skip("needs root in a private IPC namespace (changes namespace-wide limits)")
	}
}

// setSysctl writes /proc/sys/kernel/name and restores it in Cleanup.
func setSysctl(t *testing.T, name, value string) {
	t.Helper()
	p := filepath.Join("/proc/sys/kernel", name)
	old, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(value), 0); err != nil {
		t.Fatalf("write %s: %v", p, err)
	}
	t.Cleanup(func() { _ = os.WriteFile(p, old, 0) })
}

func wantErr(t *testing.T, err error, targets ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil error, want %v", targets)
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Fatalf("got %v, want it to match %v", err, target)
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// atoi parses a helper argument.
func atoi(s string) int {
	v, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return v
}

// threadIDs lists this process's threads.
func threadIDs() []int {
	ents, _ := os.ReadDir("/proc/self/task")
	var out []int
	for _, e := range ents {
		if v, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, v)
		}
	}
	return out
}

// eventually polls cond (cheaply) until it holds or a minute passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

var _ = unix.EINTR
