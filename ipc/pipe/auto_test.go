package pipe

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
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
// number of readers is what the descriptor limit allows, at most 10 000. It runs in
// a fresh process: the Go runtime keeps the threads earlier tests made.
func TestAutoIdleReceiversHoldFewThreads(t *testing.T) {
	if testing.Short() {
		t.Skip("thousands of pipes")
	}
	p := ipctest.Start(t, "auto-idle-readers")
	p.MustSucceed()
	t.Log(p.Output())
}

var _ = ipctest.Helper("auto-idle-readers", func([]string) int {
	if err := idleReaders(); err != nil {
		fmt.Println(err)
		return 1
	}
	return 0
})

// idleReaders is TestAutoIdleReceiversHoldFewThreads in the helper process.
func idleReaders() error {
	const maxThreads = 64
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	n := min(10000, int(lim.Cur-500)/3)
	type reader struct {
		r      *Reader
		w      *Writer
		cancel context.CancelFunc // nil: wakes on data
		done   chan error
	}
	rs := make([]reader, n)
	defer func() {
		for _, rd := range rs {
			if rd.r != nil {
				rd.r.Close()
				rd.w.Close()
			}
		}
	}()
	for i := range rs {
		r, w, err := New()
		if err != nil {
			return fmt.Errorf("pipe %d: %w", i, err)
		}
		rs[i] = reader{r: r, w: w, done: make(chan error, 1)}
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
	threads, err := countThreads()
	if err != nil {
		return err
	}
	fmt.Printf("%d readers blocked (descriptor limit %d): %d threads in the process\n", n, lim.Cur, threads)
	if threads > maxThreads {
		return fmt.Errorf("%d idle readers hold %d threads, want at most %d", n, threads, maxThreads)
	}
	for i := range rs {
		select {
		case err := <-rs[i].done:
			return fmt.Errorf("reader %d returned %v before anything happened", i, err)
		default:
		}
	}
	for i := range rs {
		if rs[i].cancel != nil {
			rs[i].cancel()
		} else if _, err := rs[i].w.Write([]byte{1}); err != nil {
			return err
		}
	}
	deadline := time.After(ipctest.Slack + 5*time.Second)
	for i := range rs {
		select {
		case err := <-rs[i].done:
			switch {
			case rs[i].cancel != nil && !errors.Is(err, context.Canceled):
				return fmt.Errorf("cancelled reader %d returned %v", i, err)
			case rs[i].cancel == nil && err != nil:
				return fmt.Errorf("reader %d given a byte returned %v", i, err)
			}
		case <-deadline:
			return fmt.Errorf("reader %d (cancelled: %v) still blocked", i, rs[i].cancel != nil)
		}
	}
	return nil
}

// countThreads returns the number of threads in this process.
func countThreads() (int, error) {
	d, err := os.ReadDir("/proc/self/task")
	return len(d), err
}

// TestAutoMovesSleepersToPoller: a default-mode read that finds the pipe empty
// sleeps in read(2) at first, and once it has slept through the watchdog's tick no
// thread is left in read(2) on the pipe; the read still gets the byte written later.
// It runs in a fresh process, whose few threads can be scanned quickly.
func TestAutoMovesSleepersToPoller(t *testing.T) {
	ipctest.Start(t, "auto-moves-sleepers").MustSucceed()
}

var _ = ipctest.Helper("auto-moves-sleepers", func([]string) int {
	if err := movesSleepers(); err != nil {
		fmt.Println(err)
		return 1
	}
	return 0
})

func movesSleepers() error {
	r, w, err := New()
	if err != nil {
		return err
	}
	defer r.Close()
	defer w.Close()
	done := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := r.Read(b[:])
		done <- err
	}()
	asleep := func() int { return threadsInRead(r.Fd()) }
	seen := false
	for start := time.Now(); time.Since(start) < time.Second && !seen; time.Sleep(100 * time.Microsecond) {
		seen = asleep() > 0
	}
	if !seen {
		return errors.New("the read never slept in read(2)")
	}
	moved := false
	for start := time.Now(); time.Since(start) < ipctest.Slack && !moved; time.Sleep(5 * time.Millisecond) {
		moved = asleep() == 0
	}
	if !moved {
		return fmt.Errorf("a thread is still asleep in read(2) %v after the read began", ipctest.Slack)
	}
	if _, err := w.Write([]byte{1}); err != nil {
		return err
	}
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
	case <-time.After(ipctest.Slack):
		return errors.New("the read moved to the poller did not get the byte")
	}
	return nil
}

// threadsInRead counts this process's threads blocked in read(2) or readv(2) on fd.
func threadsInRead(fd int) int {
	d, _ := os.ReadDir("/proc/self/task")
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

// TestDroppedEndsAreClosed: ends dropped without Close in the default and kernel
// modes have their descriptors closed by the garbage collector, as poller-mode ends
// (an *os.File) always had.
func TestDroppedEndsAreClosed(t *testing.T) {
	for _, mode := range []ipc.WaitStrategy{ipc.WaitAuto, ipc.WaitKernel} {
		t.Run(mode.String(), func(t *testing.T) {
			fds := func() [2]int {
				r, w, err := New(WithWait(mode))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := r.TryRead(make([]byte, 1)); !errors.Is(err, ipc.ErrWouldBlock) {
					t.Fatal(err)
				}
				return [2]int{r.Fd(), w.Fd()}
			}()
			open := func() int {
				n := 0
				for _, fd := range fds {
					if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
						n++
					}
				}
				return n
			}
			for i := 0; i < 50 && open() > 0; i++ {
				runtime.GC()
				time.Sleep(10 * time.Millisecond)
			}
			if n := open(); n > 0 {
				t.Fatalf("%d of the dropped ends' descriptors are still open", n)
			}
		})
	}
}
