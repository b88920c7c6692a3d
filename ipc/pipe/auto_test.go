package pipe

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
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

// TestAutoMovesSleepersToPoller: a default-mode read that finds the pipe empty
// sleeps in read(2) at first, and once it has slept through the watchdog's tick no
// thread is left in read(2) on the pipe; the read still gets the byte written later.
func TestAutoMovesSleepersToPoller(t *testing.T) {
	r, w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	done := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := r.Read(b[:])
		done <- err
	}()
	asleep := func() int { return threadsInRead(t, r.Fd()) }
	seen := false
	for start := time.Now(); time.Since(start) < time.Second && !seen; time.Sleep(100 * time.Microsecond) {
		seen = asleep() > 0
	}
	if !seen {
		t.Fatal("the read never slept in read(2)")
	}
	moved := false
	for start := time.Now(); time.Since(start) < ipctest.Slack && !moved; time.Sleep(5 * time.Millisecond) {
		moved = asleep() == 0
	}
	if !moved {
		t.Fatalf("a thread is still asleep in read(2) %v after the read began", ipctest.Slack)
	}
	if _, err := w.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("read: %v", err)
		}
	case <-time.After(ipctest.Slack):
		t.Fatal("the read moved to the poller did not get the byte")
	}
}

// threadsInRead counts this process's threads blocked in read(2) or readv(2) on fd.
func threadsInRead(t *testing.T, fd int) int {
	d, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{fmt.Sprintf("%d 0x%x ", unix.SYS_READ, fd), fmt.Sprintf("%d 0x%x ", unix.SYS_READV, fd)}
	n := 0
	for _, e := range d {
		b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/syscall")
		if err != nil {
			continue
		}
		for _, w := range want {
			if strings.HasPrefix(string(b), w) {
				n++
			}
		}
	}
	return n
}

// TestAutoAdoptedPacketReader: a packet read end adopted from a reopened description
// (which refuses RWF_NOWAIT) still reads without waiting where asked (TryRead, a
// context-bound read) in the default mode, and still reports a truncated packet.
func TestAutoAdoptedPacketReader(t *testing.T) {
	r0, w, err := New(Packet())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	f, err := r0.File()
	r0.Close()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	r, err := ReaderFromFd(fd)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, 10)
	if _, err := r.TryRead(buf); !errors.Is(err, ipc.ErrWouldBlock) {
		t.Fatalf("TryRead on an empty adopted packet pipe: %v, want ipc.ErrWouldBlock", err)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		_, _ = w.Write(make([]byte, 100))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), ipctest.Slack)
	defer cancel()
	n, err := r.ReadContext(ctx, buf)
	if n != len(buf) || !errors.Is(err, ipc.ErrTruncated) {
		t.Fatalf("context-bound read of a 100-byte packet into 10 bytes: %d, %v; want 10, ipc.ErrTruncated", n, err)
	}
}
