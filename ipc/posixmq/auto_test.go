package posixmq_test

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
	"github.com/ipclab/ipclab/ipc/posixmq"
)

// TestAutoMovesSleepersToPoller: in the default mode a Recv on an empty queue and a
// Send on a full one sleep in mq_timedreceive/mq_timedsend at first; once they have
// slept through the watchdog's tick no thread is left in the system call on the
// queue, and each still completes when the other side makes it possible. It runs in
// a fresh process, whose few threads can be scanned quickly.
func TestAutoMovesSleepersToPoller(t *testing.T) {
	start(t, "mq-auto-moves-sleepers").MustSucceed()
}

var _ = ipctest.Helper("mq-auto-moves-sleepers", func([]string) int {
	if err := movesSleepers(); err != nil {
		fmt.Println(err)
		return 1
	}
	return 0
})

// helperQueue creates a queue for a helper process, its name removed at once (the
// handle keeps the queue).
func helperQueue(what string, opts ...posixmq.Option) (*posixmq.Queue, error) {
	name := fmt.Sprintf("/ipclab-%d-%d-%s", os.Getpid(), nameSeq.Add(1), what)
	q, err := posixmq.Create(name, opts...)
	if err != nil {
		return nil, err
	}
	if err := q.Remove(); err != nil {
		q.Close()
		return nil, err
	}
	return q, nil
}

func movesSleepers() error {
	q, err := helperQueue("moves", posixmq.WithAttr(1, 8))
	if err != nil {
		return err
	}
	defer q.Close()
	if q.Wait() != ipc.WaitAuto {
		return fmt.Errorf("the default wait mode is %v, want auto", q.Wait())
	}
	buf := make([]byte, 8)
	// One side blocks; the other side's call, made once the first has moved to the
	// poller, lets it complete.
	for _, tc := range []struct {
		call    uintptr
		block   func() error
		unblock func() error
	}{
		{unix.SYS_MQ_TIMEDRECEIVE,
			func() error { _, _, err := q.Recv(context.Background(), buf); return err },
			func() error { return q.TrySend([]byte{1}, 0) }},
		{unix.SYS_MQ_TIMEDSEND,
			func() error { return q.Send(context.Background(), []byte{2}, 0) },
			func() error { _, _, err := q.TryRecv(make([]byte, 8)); return err }},
	} {
		if tc.call == unix.SYS_MQ_TIMEDSEND {
			if err := q.TrySend([]byte{1}, 0); err != nil { // fill the queue
				return err
			}
		}
		done := make(chan error, 1)
		go func() { done <- tc.block() }()
		asleep := func() int { return threadsIn(tc.call, q.Fd()) }
		seen := false
		for start := time.Now(); time.Since(start) < time.Second && !seen; time.Sleep(100 * time.Microsecond) {
			seen = asleep() > 0
		}
		if !seen {
			return fmt.Errorf("the call never slept in system call %d", tc.call)
		}
		moved := false
		for start := time.Now(); time.Since(start) < ipctest.Slack && !moved; time.Sleep(5 * time.Millisecond) {
			moved = asleep() == 0
		}
		if !moved {
			return fmt.Errorf("a thread is still asleep in system call %d %v after the call began", tc.call, ipctest.Slack)
		}
		select {
		case err := <-done:
			return fmt.Errorf("the call moved to the poller returned %v before it could complete", err)
		case <-time.After(20 * time.Millisecond):
		}
		if err := tc.unblock(); err != nil {
			return err
		}
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("system call %d: %w", tc.call, err)
			}
		case <-time.After(ipctest.Slack):
			return fmt.Errorf("the call moved to the poller (system call %d) did not complete", tc.call)
		}
	}
	// The send that waited is queued.
	if _, _, err := q.TryRecv(buf); err != nil {
		return err
	}
	return nil
}

// threadsIn counts this process's threads blocked in system call nr on fd.
func threadsIn(nr uintptr, fd int) int {
	d, _ := os.ReadDir("/proc/self/task")
	want := fmt.Sprintf("%d 0x%x ", nr, fd)
	n := 0
	for _, e := range d {
		b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/syscall")
		if err == nil && strings.HasPrefix(string(b), want) {
			n++
		}
	}
	return n
}

// TestAutoIdleReceiversHoldFewThreads: 1 024 receivers blocked on 128 idle queues (8
// each) in the default mode hold at most 64 OS threads, and each still wakes on a
// message (the receivers of half the queues) or on cancellation (the others). It
// runs in a fresh process: the Go runtime keeps the threads earlier tests made.
func TestAutoIdleReceiversHoldFewThreads(t *testing.T) {
	if testing.Short() {
		t.Skip("a thousand receivers")
	}
	p := start(t, "mq-auto-idle-receivers")
	p.MustSucceed()
	t.Log(p.Output())
}

var _ = ipctest.Helper("mq-auto-idle-receivers", func([]string) int {
	if err := idleReceivers(); err != nil {
		fmt.Println(err)
		return 1
	}
	return 0
})

func idleReceivers() error {
	const queues, perQueue, maxThreads = 128, 8, 64
	type receiver struct {
		q      *posixmq.Queue
		cancel context.CancelFunc // nil: wakes on a message
		done   chan error
	}
	qs := make([]*posixmq.Queue, 0, queues)
	defer func() {
		for _, q := range qs {
			q.Close()
		}
	}()
	for i := range queues {
		q, err := helperQueue(fmt.Sprintf("idle-%d", i), posixmq.WithAttr(perQueue, 8))
		if err != nil {
			return err
		}
		qs = append(qs, q)
	}
	rs := make([]receiver, queues*perQueue)
	for i := range rs {
		rs[i] = receiver{q: qs[i%queues], done: make(chan error, 1)}
		ctx := context.Background()
		if i%2 == 1 {
			ctx, rs[i].cancel = context.WithCancel(ctx)
		}
		go func(r *receiver, ctx context.Context) {
			var b [8]byte
			_, _, err := r.q.Recv(ctx, b[:])
			r.done <- err
		}(&rs[i], ctx)
	}
	// Give every receiver the time to block, and the watchdog the time to move the
	// ones asleep in the kernel to the poller.
	time.Sleep(500 * time.Millisecond)
	d, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	fmt.Printf("%d receivers blocked on %d queues: %d threads in the process\n", len(rs), queues, len(d))
	if len(d) > maxThreads {
		return fmt.Errorf("%d idle receivers hold %d threads, want at most %d", len(rs), len(d), maxThreads)
	}
	for i := range rs {
		select {
		case err := <-rs[i].done:
			return fmt.Errorf("receiver %d returned %v before anything happened", i, err)
		default:
		}
	}
	for i := range rs {
		if rs[i].cancel != nil {
			rs[i].cancel()
		} else if err := rs[i].q.Send(context.Background(), []byte{1}, 0); err != nil {
			return err
		}
	}
	deadline := time.After(ipctest.Slack + 5*time.Second)
	for i := range rs {
		select {
		case err := <-rs[i].done:
			switch {
			case rs[i].cancel != nil && !errors.Is(err, context.Canceled):
				return fmt.Errorf("cancelled receiver %d returned %v", i, err)
			case rs[i].cancel == nil && err != nil:
				return fmt.Errorf("receiver %d given a message returned %v", i, err)
			}
		case <-deadline:
			return fmt.Errorf("receiver %d (cancelled: %v) still blocked", i, rs[i].cancel != nil)
		}
	}
	return nil
}

// TestDroppedQueuesAreClosed: queues dropped without Close in the default and kernel
// modes have their descriptors closed by the garbage collector, as poller-mode
// queues (an *os.File) always had.
func TestDroppedQueuesAreClosed(t *testing.T) {
	for _, mode := range []ipc.WaitStrategy{ipc.WaitAuto, ipc.WaitKernel} {
		t.Run(mode.String(), func(t *testing.T) {
			name := uniqueName(t)
			unlinkAtCleanup(t, name)
			fd := func() int {
				q, err := posixmq.Create(name, posixmq.WithWait(mode), posixmq.WithAttr(1, 8))
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := q.TryRecv(make([]byte, 8)); !errors.Is(err, ipc.ErrWouldBlock) {
					t.Fatal(err)
				}
				return q.Fd()
			}()
			open := func() bool {
				_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
				return err == nil
			}
			for i := 0; i < 50 && open(); i++ {
				runtime.GC()
				time.Sleep(10 * time.Millisecond)
			}
			if open() {
				t.Fatal("the dropped queue's descriptor is still open")
			}
		})
	}
}
