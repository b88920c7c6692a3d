package fdio

import (
	"context"
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
)

func TestMain(m *testing.M) { ipctest.Main(m) }

// readAttempt and writeAttempt are read(2) and write(2) as Attempts; nowait uses
// MSG_DONTWAIT-like behaviour through the socket flags (the tests use sockets).
func readAttempt(fd int, p []byte, nowait bool) (int, unix.Errno) {
	flags := 0
	if nowait {
		flags = unix.MSG_DONTWAIT
	}
	n, _, err := unix.Recvfrom(fd, p, flags)
	if err != nil {
		return 0, err.(unix.Errno)
	}
	return n, 0
}

func writeAttempt(fd int, p []byte, nowait bool) (int, unix.Errno) {
	flags := 0
	if nowait {
		flags = unix.MSG_DONTWAIT
	}
	err := unix.Sendto(fd, p, flags, nil)
	if err != nil {
		return 0, err.(unix.Errno)
	}
	return len(p), 0
}

// autoPair returns two connected datagram sockets in Auto mode.
func autoPair(t *testing.T) (a, b *FD) { return modePair(t, ipc.WaitAuto) }

// parked starts a read on f under ctx and returns once it waits in the hub.
func parked(t *testing.T, f *FD, ctx context.Context) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := f.Do(ctx, false, make([]byte, 8), readAttempt)
		done <- err
	}()
	for start := time.Now(); !f.dirs[0].parked.Load(); time.Sleep(time.Millisecond) {
		if time.Since(start) > ipctest.Slack {
			t.Fatal("the read never waited in the hub")
		}
	}
	return done
}

func await(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(ipctest.Slack):
		t.Fatal("the call waiting in the hub never returned")
		return nil
	}
}

// TestHubWakes: a call waiting in the hub returns on data, on a deadline set while it
// waits, on cancellation, and on Close, each with its own error; the hub goes away
// with the last descriptor in it.
func TestHubWakes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, b := autoPair(t)

	done := parked(t, a, ctx)
	if _, err := b.Do(context.Background(), true, []byte("x"), writeAttempt); err != nil {
		t.Fatal(err)
	}
	if err := await(t, done); err != nil {
		t.Fatalf("read given data: %v", err)
	}
	a.armMu.Lock()
	watched := a.watched
	a.armMu.Unlock()
	if watched {
		t.Fatal("the hub still watches a descriptor no call waits on")
	}

	done = parked(t, a, ctx)
	if err := a.SetDeadline(time.Now().Add(20*time.Millisecond), true, false); err != nil {
		t.Fatal(err)
	}
	if err := await(t, done); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past a deadline set while it waited: %v, want os.ErrDeadlineExceeded", err)
	}
	_ = a.SetDeadline(time.Time{}, true, false)

	c2, cancel2 := context.WithCancel(context.Background())
	done = parked(t, a, c2)
	cancel2()
	if err := await(t, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled read: %v, want context.Canceled", err)
	}

	done = parked(t, a, ctx)
	a.Close()
	if err := await(t, done); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("read on a closed descriptor: %v, want os.ErrClosed", err)
	}
	b.Close()
	hubs.mu.Lock()
	left := hubs.cur
	hubs.mu.Unlock()
	if left != nil {
		t.Fatalf("the hub outlived its last descriptor (%d left in it)", len(left.fds))
	}
}

// TestHubBothDirections: a read and a write waiting in the hub on one descriptor are
// each woken by their own readiness.
func TestHubBothDirections(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, b := autoPair(t)
	msg := make([]byte, 1024)
	for {
		if _, err := a.Try(msg, writeAttempt); err != nil {
			if !errors.Is(err, unix.EAGAIN) {
				t.Fatal(err)
			}
			break
		}
	}
	read := parked(t, a, ctx)
	wrote := make(chan error, 1)
	go func() {
		_, err := a.Do(ctx, true, msg, writeAttempt)
		wrote <- err
	}()
	for !a.dirs[1].parked.Load() {
		time.Sleep(time.Millisecond)
	}
	// Room for a's write: the socket is writable again once the queue has drained
	// below a quarter of the send buffer, so drain it all.
	for {
		if _, err := b.Try(make([]byte, 2048), readAttempt); err != nil {
			break
		}
	}
	if err := await(t, wrote); err != nil {
		t.Fatalf("write given room: %v", err)
	}
	select {
	case err := <-read:
		t.Fatalf("the read returned %v with nothing sent to it", err)
	case <-time.After(20 * time.Millisecond):
	}
	if _, err := b.Do(ctx, true, []byte("y"), writeAttempt); err != nil {
		t.Fatal(err)
	}
	if err := await(t, read); err != nil {
		t.Fatalf("read given data: %v", err)
	}
}

// TestHubForgetsDroppedFD: an FD that joined the hub and was then dropped without
// Close (its owner's cleanup closes the descriptor itself) leaves the hub when the
// collector finds it, and the hub, then empty, goes away.
func TestHubForgetsDroppedFD(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	func() {
		f := new(FD)
		if err := f.Init(fds[0], Config{Name: "dropped", Wait: ipc.WaitAuto}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		if _, err := f.Do(ctx, false, make([]byte, 8), readAttempt); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("read on an empty socket: %v", err)
		}
		if f.hub == nil {
			t.Fatal("the read never joined the hub")
		}
	}()
	for i := 0; i < 100; i++ {
		runtime.GC()
		hubs.mu.Lock()
		gone := hubs.cur == nil
		hubs.mu.Unlock()
		if gone {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the hub kept a dropped FD and stayed")
}

// TestHubRetiresWhileWaking closes the hub's last descriptor while the hub's
// goroutine is waking it, thousands of times. Retiring the hub closes its epoll
// file, whose Close waits for the goroutine's RawConn.Read; the goroutine, woken by
// the descriptor's event, takes the hubs lock inside that Read. A Close that
// retired the hub holding the lock deadlocked (found by fuzzing ipc/stream in Auto
// mode, after about 40 000 runs).
func TestHubRetiresWhileWaking(t *testing.T) {
	deadline := time.Now().Add(2 * time.Second)
	rounds := 0
	for ; time.Now().Before(deadline); rounds++ {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		a := new(FD)
		if err := a.Init(fds[0], Config{Name: "reader", Wait: ipc.WaitAuto}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := a.Do(ctx, false, make([]byte, 8), readAttempt)
			done <- err
		}()
		for !a.dirs[0].parked.Load() {
			runtime.Gosched()
		}
		closed := make(chan struct{})
		go func() {
			unix.Write(fds[1], []byte("x")) // the hub's goroutine wakes…
			a.Close()                       // …as its last descriptor leaves
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: Close of the hub's last descriptor hung while the hub woke it", rounds)
		}
		<-done
		cancel()
		unix.Close(fds[1])
	}
	t.Logf("%d rounds", rounds)
}
