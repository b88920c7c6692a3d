package posixmq_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/internal/wait"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/posixmq"
)

func TestCrossProcess(t *testing.T) {
	ctx, cancel := patientContext(t)
	defer cancel()

	t.Run("Exchange", func(t *testing.T) {
		// Two queues, two processes, priorities respected in both directions.
		toPeer := newQueue(t, posixmq.WithAttr(4, 64))
		fromPeer := newQueue(t, posixmq.WithAttr(4, 64))
		p := start(t, "mq-peer", ipctest.WithArgs(toPeer.Name(), fromPeer.Name()))
		p.Await()
		must(t, toPeer.Send(ctx, []byte("normal-1"), 2))
		must(t, toPeer.Send(ctx, []byte("normal-2"), 2))
		must(t, toPeer.Send(ctx, []byte("urgent"), 7))
		p.Signal()
		p.MustSucceed() // all three replies are queued now
		buf := make([]byte, 64)
		var got []string
		for range 3 {
			n, prio, err := fromPeer.Recv(ctx, buf)
			must(t, err)
			got = append(got, fmt.Sprintf("%s/%d", buf[:n], prio))
		}
		// The peer sent normal-2, normal-1 (priority 3), then urgent (8).
		if fmt.Sprint(got) != "[re:urgent/8 re:normal-2/3 re:normal-1/3]" {
			t.Errorf("received %v", got)
		}
	})

	t.Run("NotifyInOtherProcess", func(t *testing.T) {
		q := newQueue(t, posixmq.WithAttr(2, 64))
		p := start(t, "mq-notified", ipctest.WithArgs(q.Name()))
		p.Await()
		must(t, q.Send(ctx, []byte("ping"), 1))
		p.MustSucceed()
	})

	t.Run("RemoveWhileOpen", func(t *testing.T) {
		name := uniqueName(t)
		q, err := posixmq.Create(name, posixmq.WithAttr(2, 64))
		must(t, err)
		unlinkAtCleanup(t, name)
		defer q.Close()
		f, err := q.File()
		must(t, err)
		must(t, q.Send(ctx, []byte("before"), 1))
		must(t, q.Remove())
		p := start(t, "mq-unlinked", ipctest.WithArgs(name), ipctest.WithFiles(f))
		f.Close()
		p.MustSucceed()
		buf := make([]byte, 64)
		n, prio, err := q.Recv(ctx, buf)
		if err != nil || string(buf[:n]) != "from child" || prio != 3 {
			t.Errorf("recv from child: %q %d %v", buf[:n], prio, err)
		}
	})
}

// TestNoMqueueMount runs the whole life of a queue with /dev/mqueue unmounted: the
// package uses only system calls (and the descriptor) and never the file system.
func TestNoMqueueMount(t *testing.T) {
	ipctest.RequireRoot(t)
	if !inTestNamespace() {
		t.Skip("unmounts /dev/mqueue: only in the private mount namespace ipctest creates as root")
	}
	if err := unix.Unmount("/dev/mqueue", unix.MNT_DETACH); err != nil {
		t.Skipf("cannot unmount /dev/mqueue: %v", err)
	}
	defer func() {
		// The same IPC namespace gives back the same queues.
		if err := unix.Mount("mqueue", "/dev/mqueue", "mqueue", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			t.Errorf("remount /dev/mqueue: %v", err)
		}
	}()
	if _, err := os.ReadDir("/dev/mqueue"); err == nil {
		if ents, _ := os.ReadDir("/dev/mqueue"); len(ents) > 0 {
			t.Fatal("/dev/mqueue still shows queues")
		}
	}
	name := uniqueName(t)
	q, err := posixmq.Create(name, posixmq.WithAttr(2, 32))
	must(t, err)
	defer q.Close()
	ctx := context.Background()
	must(t, q.Send(ctx, []byte("unmounted"), 2))
	st, err := q.Status()
	must(t, err)
	if st.QSize != len("unmounted") {
		t.Errorf("status %+v", st)
	}
	q2, err := posixmq.Open(name, posixmq.ReadOnly())
	must(t, err)
	defer q2.Close()
	buf := make([]byte, 32)
	n, prio, err := q2.Recv(ctx, buf)
	if err != nil || string(buf[:n]) != "unmounted" || prio != 2 {
		t.Errorf("recv: %q %d %v", buf[:n], prio, err)
	}
	must(t, posixmq.Remove(name))
}

// TestKernelWaitSignalStorm (FI-05): threads blocked in mq_timedreceive and
// mq_timedsend in kernel mode are hit by a storm of interrupting signals; the API
// retries internally, so no EINTR surfaces, no message is lost, and the context's
// deadline still holds.
func TestKernelWaitSignalStorm(t *testing.T) {
	q := newQueue(t, posixmq.WithAttr(1, 16), posixmq.WithWait(ipc.WaitKernel))
	stop := make(chan struct{})
	var stormWG sync.WaitGroup
	var sent atomic.Int64
	stormWG.Add(1)
	go func() {
		defer stormWG.Done()
		pid := unix.Getpid()
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Microsecond):
			}
			ents, _ := os.ReadDir("/proc/self/task")
			for _, e := range ents {
				if tid, err := strconv.Atoi(e.Name()); err == nil {
					if unix.Tgkill(pid, tid, wait.Signal) == nil {
						sent.Add(1)
					}
				}
			}
		}
	}()
	defer func() { close(stop); stormWG.Wait() }()

	const total = 200
	ctx, cancel := patientContext(t)
	defer cancel()
	recvErr := make(chan error, 1)
	go func() {
		buf := make([]byte, 16)
		for i := 0; i < total; i++ {
			// A context that cannot end takes the direct path (no wait.Set); the
			// sender's can (wait.Set.Do): both must ride out the storm.
			n, _, err := q.Recv(context.Background(), buf)
			if err != nil {
				recvErr <- err
				return
			}
			if got := string(buf[:n]); got != strconv.Itoa(i) {
				recvErr <- fmt.Errorf("message %d: got %q", i, got)
				return
			}
			if i%50 == 0 {
				time.Sleep(2 * time.Millisecond) // let the sender block on the full queue
			}
		}
		recvErr <- nil
	}()
	for i := 0; i < total; i++ {
		if i%50 == 0 {
			time.Sleep(2 * time.Millisecond) // let the receiver block on the empty queue
		}
		must(t, q.Send(ctx, []byte(strconv.Itoa(i)), 0))
	}
	must(t, <-recvErr)
	// A deadline still ends a call under the storm, as a deadline (not EINTR).
	dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer dcancel()
	_, _, err := q.Recv(dctx, make([]byte, 16))
	wantErr(t, "Recv under the storm", err, context.DeadlineExceeded)
	if sent.Load() == 0 {
		t.Fatal("no signal was sent")
	}
}

// TestKernelTryUnderSignals (FI-05): in kernel mode, TrySend on a full queue and TryRecv
// on an empty one make an attempt that cannot sleep; a signal landing during it (here
// a storm of wait.Signal at the calling thread, with SA_RESTART cleared as the package
// clears it) must not surface as EINTR: they report ipc.ErrWouldBlock, always. The test
// goes on until the same storm has interrupted 50 raw mq_timedsend attempts made
// alongside, so the library calls have been hit as often.
func TestKernelTryUnderSignals(t *testing.T) {
	full := newQueue(t, posixmq.WithAttr(1, 16), posixmq.WithWait(ipc.WaitKernel))
	must(t, full.TrySend([]byte("x"), 0))
	empty := newQueue(t, posixmq.WithAttr(1, 16), posixmq.WithWait(ipc.WaitKernel))
	if ok, err := sys.ClearRestart(wait.Signal); !ok || err != nil {
		t.Skipf("no handler for wait.Signal (%v): the package sends no signal", err)
	}

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pid, tid := unix.Getpid(), unix.Gettid()
	stop := make(chan struct{})
	var stormWG sync.WaitGroup
	stormWG.Add(1)
	go func() {
		defer stormWG.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = unix.Tgkill(pid, tid, wait.Signal)
			time.Sleep(time.Microsecond)
		}
	}()
	defer func() { close(stop); stormWG.Wait() }()

	const wantRaw, maxTries = 50, 5_000_000
	buf := make([]byte, 16)
	raw, tries := 0, 0
	for ; raw < wantRaw && tries < maxTries; tries++ {
		if err := sys.MqTimedsend(full.Fd(), []byte("y"), 0, &unix.Timespec{}); err == unix.EINTR {
			raw++
		}
		if err := full.TrySend([]byte("y"), 0); !errors.Is(err, ipc.ErrWouldBlock) {
			t.Fatalf("TrySend on a full queue, attempt %d under signals: %v", tries, err)
		}
		if _, _, err := empty.TryRecv(buf); !errors.Is(err, ipc.ErrWouldBlock) {
			t.Fatalf("TryRecv on an empty queue, attempt %d under signals: %v", tries, err)
		}
	}
	t.Logf("%d attempts of each; %d raw attempts interrupted", tries, raw)
	if raw < wantRaw {
		t.Skipf("the storm interrupted only %d of %d raw attempts (no second CPU free?)", raw, tries)
	}
}
