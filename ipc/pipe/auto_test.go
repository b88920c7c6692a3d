package pipe

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
)

// TestAutoIdleReceiversHoldFewThreads: up to 10 000 readers blocked on idle pipes in
// the default mode (ipc.WaitAuto) hold at most 64 OS threads, and each still wakes
// on data (half of them) and on cancellation (the other half). A waiting reader
// costs three descriptors (two ends and the epoll instance it waits on), so the
// number of readers is what the descriptor limit allows, at most 10 000.
func TestAutoIdleReceiversHoldFewThreads(t *testing.T) {
	if testing.Short() {
		t.Skip("thousands of pipes")
	}
	const maxThreads = 64
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	n := min(10000, int(lim.Cur-500)/3)
	t.Logf("%d readers (descriptor limit %d)", n, lim.Cur)

	type reader struct {
		r      *Reader
		w      *Writer
		cancel context.CancelFunc // nil: wakes on data
		done   chan error
	}
	rs := make([]reader, n)
	for i := range rs {
		r, w, err := New()
		if err != nil {
			t.Fatalf("pipe %d: %v", i, err)
		}
		rs[i] = reader{r: r, w: w, done: make(chan error, 1)}
		t.Cleanup(func() { r.Close(); w.Close() })
	}
	for i := range rs {
		ctx := context.Background()
		if i%2 == 1 {
			ctx, rs[i].cancel = context.WithCancel(ctx)
		}
		go func(rd *reader, ctx context.Context) {
			var b [1]byte
			_, err := rd.r.ReadContext(ctx, b[:])
			rd.done <- err
		}(&rs[i], ctx)
	}
	// Give every reader the time to block, and the watchdog the time to move the
	// ones asleep in the kernel to the poller.
	time.Sleep(500 * time.Millisecond)
	threads := countThreads(t)
	t.Logf("%d readers blocked: %d threads in the process", n, threads)
	if threads > maxThreads {
		t.Errorf("%d idle readers hold %d threads, want at most %d", n, threads, maxThreads)
	}
	for i := range rs {
		select {
		case err := <-rs[i].done:
			t.Fatalf("reader %d returned %v before anything happened", i, err)
		default:
		}
	}
	for i := range rs {
		if rs[i].cancel != nil {
			rs[i].cancel()
		} else if _, err := rs[i].w.Write([]byte{1}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.After(ipctest.Slack + 5*time.Second)
	for i := range rs {
		select {
		case err := <-rs[i].done:
			switch {
			case rs[i].cancel != nil && !errors.Is(err, context.Canceled):
				t.Errorf("cancelled reader %d returned %v", i, err)
			case rs[i].cancel == nil && err != nil:
				t.Errorf("reader %d given a byte returned %v", i, err)
			}
		case <-deadline:
			t.Fatalf("reader %d (cancelled: %v) still blocked", i, rs[i].cancel != nil)
		}
	}
}

// countThreads returns the number of threads in this process.
func countThreads(t *testing.T) int {
	d, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	return len(d)
}
