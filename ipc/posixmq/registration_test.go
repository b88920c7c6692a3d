package posixmq_test

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc/posixmq"
)

// mq-send: open the queue write-only and send one message (args[1]) of priority 1.
var _ = ipctest.Helper("mq-send", func(args []string) int {
	q, err := posixmq.Open(args[0], posixmq.WriteOnly())
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer q.Close()
	if err := q.TrySend([]byte(args[1]), 1); err != nil {
		fmt.Println(err)
		return 1
	}
	return 0
})

// descriptorsOf counts this process's descriptors of the queue name (/proc/self/fd
// shows a queue descriptor as "/name").
func descriptorsOf(t *testing.T, name string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	must(t, err)
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && target == name {
			n++
		}
	}
	return n
}

// stillRegistered checks, with a real message sent by another process, that kn is
// still this process's registration on q: it fires, and the message stays queued.
func stillRegistered(t *testing.T, q *posixmq.Queue, kn *posixmq.KernelNotification) {
	t.Helper()
	ctx, cancel := patientContext(t)
	defer cancel()
	start(t, "mq-send", ipctest.WithArgs(q.Name(), "from a peer")).MustSucceed()
	if err := kn.Wait(ctx); err != nil {
		t.Fatalf("registration lost before the peer's message: Wait = %v", err)
	}
	buf := make([]byte, 64)
	n, _, err := q.TryRecv(buf)
	if err != nil || string(buf[:n]) != "from a peer" {
		t.Fatalf("message after the notification: %q %v", buf[:n], err)
	}
}

// checkRegistered checks a status line names this process's SIGEV_THREAD registration.
func checkRegistered(t *testing.T, what string, st posixmq.Status) {
	t.Helper()
	if st.NotifyPID != os.Getpid() || st.Notify != sys.SigevThread {
		t.Errorf("%s: %+v, want this process registered (SIGEV_THREAD)", what, st)
	}
}

// TestNotifyKernelKept (OP-04, OP-05): the kernel removes a process's mq_notify
// registration when that process closes any descriptor of the queue (mqueue's flush).
// The package's own calls must not do that behind the caller's back: Status on a
// write-only handle, stopping a Notifier and StatusOf keep the registration (the
// descriptor they opened is closed when it ends), and File, whose file the caller
// would close, refuses while it is live. Each case proves the registration is still
// there with a message from another process.
func TestNotifyKernelKept(t *testing.T) {
	t.Run("Status-write-only", func(t *testing.T) {
		q := newQueue(t, posixmq.WithAttr(2, 64))
		wq, err := posixmq.Open(q.Name(), posixmq.WriteOnly())
		must(t, err)
		defer wq.Close()
		before := descriptorsOf(t, q.Name())
		kn, err := wq.NotifyKernel()
		must(t, err)
		defer kn.Cancel()
		for i := range 3 {
			st, err := wq.Status()
			must(t, err)
			checkRegistered(t, fmt.Sprint("write-only Status #", i), st)
		}
		if n := descriptorsOf(t, q.Name()); n > before+1 {
			t.Errorf("%d descriptors of the queue after three Status calls, want at most %d", n, before+1)
		}
		stillRegistered(t, q, kn)
		if n := descriptorsOf(t, q.Name()); n != before {
			t.Errorf("%d descriptors of the queue once the registration ended, want %d", n, before)
		}
		// Without a live registration Status leaves no descriptor behind either.
		_, err = wq.Status()
		must(t, err)
		if n := descriptorsOf(t, q.Name()); n != before {
			t.Errorf("%d descriptors of the queue after Status, want %d", n, before)
		}
	})

	t.Run("Notifier-Stop", func(t *testing.T) {
		q := newQueue(t, posixmq.WithAttr(2, 64))
		other, err := posixmq.Open(q.Name(), posixmq.ReadOnly())
		must(t, err)
		defer other.Close()
		before := descriptorsOf(t, q.Name())
		kn, err := q.NotifyKernel()
		must(t, err)
		defer kn.Cancel()
		// A Notifier of the registering handle and one of another handle of the
		// same queue, both stopped while the registration is live.
		n1, err := q.Notify()
		must(t, err)
		n2, err := other.NotifyFunc(func() {})
		must(t, err)
		n1.Stop()
		n2.Stop()
		st, err := q.Status()
		must(t, err)
		checkRegistered(t, "after Stop", st)
		stillRegistered(t, q, kn)
		if n := descriptorsOf(t, q.Name()); n != before {
			t.Errorf("%d descriptors of the queue once the registration ended, want %d", n, before)
		}
		// Cancel ends a registration too: the stopped Notifier's descriptor goes.
		kn2, err := q.NotifyKernel()
		must(t, err)
		n3, err := q.Notify()
		must(t, err)
		n3.Stop()
		if n := descriptorsOf(t, q.Name()); n != before+1 {
			t.Errorf("%d descriptors of the queue with a stopped Notifier's kept, want %d", n, before+1)
		}
		must(t, kn2.Cancel())
		if n := descriptorsOf(t, q.Name()); n != before {
			t.Errorf("%d descriptors of the queue after Cancel, want %d", n, before)
		}
	})

	t.Run("File", func(t *testing.T) {
		q := newQueue(t, posixmq.WithAttr(2, 64))
		other, err := posixmq.Open(q.Name())
		must(t, err)
		defer other.Close()
		kn, err := q.NotifyKernel()
		must(t, err)
		defer kn.Cancel()
		for _, h := range []*posixmq.Queue{q, other} {
			f, err := h.File()
			if err == nil {
				f.Close() // what the caller does once its child has started
			}
			wantErr(t, "File while registered", err, posixmq.ErrRegistered)
			wantErr(t, "File while registered", err, unix.EBUSY)
		}
		stillRegistered(t, q, kn)
		// Once the registration has ended, File works again.
		f, err := q.File()
		must(t, err)
		must(t, f.Close())
	})

	t.Run("StatusOf", func(t *testing.T) {
		if err := mqueueMounted(); err != nil {
			t.Skipf("no mqueue file system at /dev/mqueue: %v", err)
		}
		q := newQueue(t, posixmq.WithAttr(2, 64))
		before := descriptorsOf(t, q.Name())
		kn, err := q.NotifyKernel()
		must(t, err)
		defer kn.Cancel()
		for i := range 3 {
			st, err := posixmq.StatusOf("/dev/mqueue", q.Name())
			must(t, err)
			checkRegistered(t, fmt.Sprint("StatusOf #", i), st)
		}
		if n := descriptorsOf(t, q.Name()); n > before+1 {
			t.Errorf("%d descriptors of the queue after three StatusOf calls, want at most %d", n, before+1)
		}
		stillRegistered(t, q, kn)
		if n := descriptorsOf(t, q.Name()); n != before {
			t.Errorf("%d descriptors of the queue once the registration ended, want %d", n, before)
		}
	})
}

// mq-send-rounds: open the queue write-only; args[1] times, wait for the test's go,
// send one message, and tell the test.
var _ = ipctest.Helper("mq-send-rounds", func(args []string) int {
	q, err := posixmq.Open(args[0], posixmq.WriteOnly())
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer q.Close()
	rounds, _ := strconv.Atoi(args[1])
	for i := range rounds {
		ipctest.Await()
		if err := q.TrySend([]byte(strconv.Itoa(i)), 1); err != nil {
			fmt.Println(err)
			return 1
		}
		ipctest.Signal()
	}
	return 0
})

// TestNotifyKernelKeptConcurrently (OP-04): registrations made and ended over and over
// while other goroutines keep calling Status on a write-only handle, StatusOf and
// Notify/Stop on the same queue: every registration still fires on the message another
// process sends, so no call of the package closes a descriptor between a check and a
// registration; and no descriptor is left over.
func TestNotifyKernelKeptConcurrently(t *testing.T) {
	q := newQueue(t, posixmq.WithAttr(4, 64))
	wq, err := posixmq.Open(q.Name(), posixmq.WriteOnly())
	must(t, err)
	defer wq.Close()
	statErr := mqueueMounted()
	before := descriptorsOf(t, q.Name())
	const rounds = 200
	p := start(t, "mq-send-rounds", ipctest.WithArgs(q.Name(), strconv.Itoa(rounds)))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var stopOnce sync.Once
	stopAll := func() { stopOnce.Do(func() { close(stop); wg.Wait() }) }
	defer stopAll() // also when a round fails
	var calls atomic.Int64
	hammer := func(what string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := f(); err != nil {
					t.Errorf("%s: %v", what, err)
					return
				}
				calls.Add(1)
			}
		}()
	}
	hammer("write-only Status", func() error { _, err := wq.Status(); return err })
	if statErr == nil {
		hammer("StatusOf", func() error { _, err := posixmq.StatusOf("/dev/mqueue", q.Name()); return err })
	}
	hammer("Notify and Stop", func() error {
		n, err := q.Notify()
		if err != nil {
			return err
		}
		n.Stop()
		return nil
	})

	ctx, cancel := patientContext(t)
	defer cancel()
	buf := make([]byte, 64)
	for i := range rounds {
		kn, err := q.NotifyKernel()
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		p.Signal()
		p.Await()
		if err := kn.Wait(ctx); err != nil {
			t.Fatalf("round %d (after %d concurrent calls): registration lost: %v", i, calls.Load(), err)
		}
		must(t, kn.Cancel())
		n, _, err := q.TryRecv(buf)
		if err != nil || string(buf[:n]) != strconv.Itoa(i) {
			t.Fatalf("round %d: message %q %v", i, buf[:n], err)
		}
	}
	stopAll()
	p.MustSucceed()
	t.Logf("%d rounds, %d concurrent calls", rounds, calls.Load())
	if n := descriptorsOf(t, q.Name()); n != before {
		t.Errorf("%d descriptors of the queue at the end, want %d", n, before)
	}
	if n := posixmq.QueueRecords(); n != 0 {
		t.Errorf("%d queue records left with no registration live", n)
	}
}
