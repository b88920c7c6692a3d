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

// TestAutoIdleReceiversHoldFewThreads: 10 000 readers blocked on idle pipes in the
// default mode (ipc.WaitAuto), in one process, hold at most 64 OS threads, and each
// still wakes on data (half of them, written by another process) and on
// cancellation (the other half). The helper process holds the read ends and hands
// every write end to the test over a Unix socket (SCM_RIGHTS), so that neither
// process needs more than 10 000 descriptors of the 20 000 the machine allows. It
// runs in a fresh process: the Go runtime keeps the threads earlier tests made.
func TestAutoIdleReceiversHoldFewThreads(t *testing.T) {
	if testing.Short() {
		t.Skip("thousands of pipes")
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	mine := os.NewFile(uintptr(fds[0]), "write ends")
	defer mine.Close()
	p := ipctest.Start(t, "auto-idle-readers", ipctest.Handover(os.NewFile(uintptr(fds[1]), "write ends")))
	var writers []int
	defer func() {
		for _, fd := range writers {
			unix.Close(fd)
		}
	}()
	oob := make([]byte, unix.CmsgSpace(4*fdBatch))
	for len(writers) < idleReaderCount {
		_, oobn, _, _, err := unix.Recvmsg(fds[0], make([]byte, 1), oob, unix.MSG_CMSG_CLOEXEC)
		if err != nil {
			t.Fatalf("receiving write ends (%d so far): %v\n%s", len(writers), err, p.Output())
		}
		cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(cmsgs) != 1 {
			t.Fatalf("control message: %v (%d)", err, len(cmsgs))
		}
		got, err := unix.ParseUnixRights(&cmsgs[0])
		if err != nil {
			t.Fatal(err)
		}
		writers = append(writers, got...)
	}
	p.Await() // every reader blocked, threads counted
	for i, fd := range writers {
		if i%2 == 0 {
			if _, err := unix.Write(fd, []byte{1}); err != nil {
				t.Fatalf("write end %d: %v", i, err)
			}
		}
	}
	p.Signal() // the helper cancels the others and waits for all
	p.MustSucceed()
	t.Log(p.Output())
}

// idleReaderCount is how many readers TestAutoIdleReceiversHoldFewThreads blocks,
// and fdBatch how many write ends go in one message.
const (
	idleReaderCount = 10000
	fdBatch         = 200
)

var _ = ipctest.Helper("auto-idle-readers", func([]string) int {
	if err := idleReaders(); err != nil {
		fmt.Println(err)
		return 1
	}
	return 0
})

// idleReaders is TestAutoIdleReceiversHoldFewThreads in the helper process: reader
// i of idleReaderCount wakes on a byte if i is even, on cancellation if it is odd.
func idleReaders() error {
	const maxThreads = 64
	n := idleReaderCount
	type reader struct {
		r      *Reader
		cancel context.CancelFunc // nil: wakes on data
		done   chan error
	}
	rs := make([]reader, n)
	defer func() {
		for _, rd := range rs {
			if rd.r != nil {
				rd.r.Close()
			}
		}
	}()
	sock := ipctest.Fd(0)
	for i := 0; i < n; i += fdBatch {
		var ws []*Writer
		var wfds []int
		for j := i; j < min(i+fdBatch, n); j++ {
			r, w, err := New()
			if err != nil {
				return fmt.Errorf("pipe %d: %w", j, err)
			}
			rs[j] = reader{r: r, done: make(chan error, 1)}
			ws = append(ws, w)
			wfds = append(wfds, w.Fd())
		}
		err := unix.Sendmsg(sock, []byte{0}, unix.UnixRights(wfds...), nil, 0)
		for _, w := range ws {
			w.Close()
		}
		if err != nil {
			return fmt.Errorf("sending write ends: %w", err)
		}
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
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	fmt.Printf("%d readers blocked: %d threads, %d descriptors in the process\n", n, threads, len(fds))
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
	ipctest.Signal()
	ipctest.Await() // the test has written to the even ones
	for i := range rs {
		if rs[i].cancel != nil {
			rs[i].cancel()
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
