package posixmq_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc/posixmq"
)

func TestMain(m *testing.M) { ipctest.Main(m) }

var nameSeq atomic.Int64

// uniqueName returns a queue name no other test (or test binary) uses.
func uniqueName(t testing.TB) string {
	base := strings.NewReplacer("/", "_", " ", "_", "#", "_").Replace(t.Name())
	if len(base) > 100 {
		base = base[:100]
	}
	return fmt.Sprintf("/ipclab-%d-%d-%s", os.Getpid(), nameSeq.Add(1), base)
}

// unlinkAtCleanup removes the queue name when the test ends (if still there).
func unlinkAtCleanup(t testing.TB, name string) {
	t.Cleanup(func() {
		if err := posixmq.Remove(name); err != nil && !errors.Is(err, unix.ENOENT) {
			t.Errorf("cleanup unlink %s: %v", name, err)
		}
	})
}

// newQueue creates a fresh queue, closed and unlinked at cleanup.
func newQueue(t testing.TB, opts ...posixmq.Option) *posixmq.Queue {
	t.Helper()
	name := uniqueName(t)
	q, err := posixmq.Create(name, opts...)
	if err != nil {
		t.Fatalf("Create %s: %v", name, err)
	}
	unlinkAtCleanup(t, name)
	t.Cleanup(func() { q.Close() })
	return q
}

// readInt reads an integer from /proc/sys.
func readInt(t testing.TB, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("cannot read %s: %v", path, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return n
}

// inTestNamespace reports whether the tests run in the private IPC and mount
// namespaces ipctest.Main creates as root, where changing the mqueue sysctls and
// mounts touches nothing outside.
func inTestNamespace() bool { return os.Getenv("IPCLAB_TEST_IN_NAMESPACE") != "" }

func wantErr(t testing.TB, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got %v, want an error matching %v", what, err, target)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// patience returns a channel that fires when a test has waited long enough for
// something that must happen (a notification, a blocked call) to conclude that it
// never will: after half the time the test binary has left (go test -timeout), so that
// however slow or loaded the machine, only an event that never comes fails the test.
// Without a timeout it never fires.
func patience(t *testing.T) <-chan time.Time {
	if dl, ok := t.Deadline(); ok {
		return time.After(time.Until(dl) / 2)
	}
	return nil
}

// patientContext is a context whose deadline is patience's.
func patientContext(t *testing.T) (context.Context, context.CancelFunc) {
	if dl, ok := t.Deadline(); ok {
		return context.WithTimeout(context.Background(), time.Until(dl)/2)
	}
	return context.WithCancel(context.Background())
}

// start is ipctest.Start with the race detector's one-second pause at exit turned off
// in the helper (it would make every helper take a second under -race).
func start(t testing.TB, name string, opts ...ipctest.Option) *ipctest.Proc {
	t.Helper()
	env := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	return ipctest.Start(t, name, append([]ipctest.Option{ipctest.WithEnv("GORACE=" + env)}, opts...)...)
}

// mqueueMounted reports whether /dev/mqueue is an mqueue file system (as root the
// tests mount one in their namespace; without root it may be a bare directory).
func mqueueMounted() error {
	var fs unix.Statfs_t
	if err := unix.Statfs("/dev/mqueue", &fs); err != nil {
		return err
	}
	const mqueueMagic = 0x19800202
	if fs.Type != mqueueMagic {
		return fmt.Errorf("/dev/mqueue is not an mqueue file system (type %#x)", fs.Type)
	}
	return nil
}
