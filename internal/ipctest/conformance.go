package ipctest

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ipclab/ipclab/ipc"
)

// Receiver is one receiving handle under the shared conformance checks, as a
// primitive's test builds it: a pipe's read end, a socket, a queue opened for
// receiving. The functions close over the handle and whatever feeds it.
type Receiver struct {
	// Recv waits for one message under ctx and returns nil once it has it.
	Recv func(ctx context.Context) error
	// Send makes exactly one more message available to Recv (from another handle,
	// so that it never waits behind the receivers).
	Send func() error
	// SetRecvDeadline sets the handle's own receive deadline, as the handle's
	// SetReadDeadline does; nil if the handle has none.
	SetRecvDeadline func(time.Time) error
	// Close closes the receiving handle. The checks call it twice (the second call
	// must return nil); the constructor's cleanup must not fail if it has run.
	Close func() error

	// TryRecv makes one receive that does not wait: with nothing queued it must fail
	// with an error matching ipc.ErrWouldBlock. Nil only for a handle that cannot
	// block.
	TryRecv func() error
	// AfterClose holds the handle's other methods by name (each called with valid
	// arguments): after Close every one must fail with an error matching
	// os.ErrClosed.
	AfterClose map[string]func() error
	// Remove destroys the persistent object the handle names (nil for an object
	// that lives only as long as its handles); Reopen then opens it again the way a
	// stranger would, and must fail with an error matching fs.ErrNotExist.
	Remove, Reopen func() error
}

// Slack bounds how late a blocked call may return after the event that should end
// it (its deadline, its cancellation, Close). It is generous on purpose: the checks
// catch calls that ignore the event for seconds or for ever, not scheduling noise.
const Slack = 3 * time.Second

// RunConformance runs the checks every blocking primitive must pass on one handle
// shared by concurrent callers (the package docs say this is safe):
//
//   - two callers, one with a 100 ms context deadline and one with none, in both
//     orders: the deadline is honoured on its own, the other caller is not
//     disturbed, and still gets the next message;
//   - the handle's own deadline (SetRecvDeadline) ends every pending call;
//   - 1 000 callers with their own deadlines and cancellations (seeded), beside two
//     with none: each returns its own context's error in time, the two get the next
//     two messages;
//   - Close unblocks every caller with an error matching os.ErrClosed; Recv and
//     every method in AfterClose match it too afterwards; a second Close returns nil;
//   - TryRecv on an empty handle fails with ipc.ErrWouldBlock and gets a message
//     that has been sent;
//   - Remove destroys the object: Reopen fails with fs.ErrNotExist; Remove on a
//     closed handle still destroys the object the handle had open.
//
// Leaks (descriptors, goroutines, threads, System V objects, files) are checked
// after all the package's tests by ipctest.Main.
//
// open is called once per check and must register its own cleanup.
func RunConformance(t *testing.T, open func(t *testing.T) Receiver) {
	t.Run("TwoCallers", func(t *testing.T) {
		for _, deadlineFirst := range []bool{false, true} {
			name := "NoDeadlineFirst"
			if deadlineFirst {
				name = "DeadlineFirst"
			}
			t.Run(name, func(t *testing.T) { twoCallers(t, open(t), deadlineFirst) })
		}
	})
	t.Run("HandleDeadline", func(t *testing.T) {
		r := open(t)
		if r.SetRecvDeadline == nil {
			t.Skip("the handle has no deadline of its own")
		}
		handleDeadline(t, r)
	})
	t.Run("ThousandCallers", func(t *testing.T) { thousandCallers(t, open(t)) })
	t.Run("Close", func(t *testing.T) { closeUnblocks(t, open(t)) })
	t.Run("TryRecv", func(t *testing.T) {
		r := open(t)
		if r.TryRecv == nil {
			t.Skip("the handle cannot block")
		}
		tryRecv(t, r)
	})
	t.Run("Remove", func(t *testing.T) {
		r := open(t)
		if r.Remove == nil {
			t.Skip("the object is not persistent")
		}
		remove(t, r)
	})
	t.Run("RemoveAfterClose", func(t *testing.T) {
		r := open(t)
		if r.Remove == nil {
			t.Skip("the object is not persistent")
		}
		if err := r.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		remove(t, r)
	})
}

func tryRecv(t *testing.T, r Receiver) {
	if err := r.TryRecv(); !errors.Is(err, ipc.ErrWouldBlock) {
		t.Fatalf("TryRecv with nothing queued returned %v, want ipc.ErrWouldBlock", err)
	}
	if err := r.Send(); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := r.TryRecv(); err != nil {
		t.Fatalf("TryRecv with a message queued returned %v, want it", err)
	}
	if err := r.TryRecv(); !errors.Is(err, ipc.ErrWouldBlock) {
		t.Fatalf("TryRecv after the only message returned %v, want ipc.ErrWouldBlock", err)
	}
}

func remove(t *testing.T, r Receiver) {
	if err := r.Remove(); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if err := r.Reopen(); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("opening the object after Remove returned %v, want fs.ErrNotExist", err)
	}
}

// call is one Recv running in its own goroutine.
type call struct {
	done chan struct{}
	err  error
	at   time.Time // when it returned
}

func start(ctx context.Context, r Receiver) *call {
	c := &call{done: make(chan struct{})}
	go func() {
		c.err = r.Recv(ctx)
		c.at = time.Now()
		close(c.done)
	}()
	return c
}

// returned reports whether c has returned.
func (c *call) returned() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// await waits up to d for c and reports whether it returned.
func (c *call) await(d time.Duration) bool {
	select {
	case <-c.done:
		return true
	case <-time.After(d):
		return false
	}
}

// settle gives goroutines just started the time to block in their calls.
func settle() { time.Sleep(50 * time.Millisecond) }

func twoCallers(t *testing.T, r Receiver, deadlineFirst bool) {
	const d = 100 * time.Millisecond
	var none, timed *call
	startTimed := func() {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		t.Cleanup(cancel)
		timed = start(ctx, r)
	}
	if deadlineFirst {
		startTimed()
		settle()
		none = start(context.Background(), r)
	} else {
		none = start(context.Background(), r)
		settle()
		startTimed()
	}
	began := time.Now()
	if !timed.await(d + Slack) {
		t.Fatalf("a call with a %v deadline is still blocked after %v", d, d+Slack)
	}
	if !errors.Is(timed.err, context.DeadlineExceeded) {
		t.Errorf("the call with a %v deadline returned %v, want context.DeadlineExceeded", d, timed.err)
	}
	// The other caller has no deadline: nothing may end it but a message.
	if none.await(2 * d) {
		t.Fatalf("a call with no deadline returned %v after another caller's deadline (%v after it)", none.err, time.Since(began))
	}
	if err := r.Send(); err != nil {
		t.Fatalf("send: %v", err)
	}
	if !none.await(Slack) {
		t.Fatalf("the call with no deadline did not get the message sent %v ago", Slack)
	}
	if none.err != nil {
		t.Errorf("the call with no deadline returned %v, want the message", none.err)
	}
}

func handleDeadline(t *testing.T, r Receiver) {
	plain := start(context.Background(), r)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cancellable := start(ctx, r)
	settle()
	if err := r.SetRecvDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
		t.Fatalf("set deadline: %v", err)
	}
	for _, c := range []*call{plain, cancellable} {
		if !c.await(100*time.Millisecond + Slack) {
			t.Fatal("a pending call outlived the handle's deadline")
		}
		if !errors.Is(c.err, os.ErrDeadlineExceeded) {
			t.Errorf("a pending call returned %v at the handle's deadline, want os.ErrDeadlineExceeded", c.err)
		}
	}
	if err := r.SetRecvDeadline(time.Time{}); err != nil {
		t.Fatalf("clear deadline: %v", err)
	}
}

func thousandCallers(t *testing.T, r Receiver) {
	const n = 1000
	rng := rand.New(rand.NewPCG(Seed(t), 0))
	plain := []*call{start(context.Background(), r), start(context.Background(), r)}
	type timed struct {
		c    *call
		end  time.Time // when its context ends
		want error
	}
	calls := make([]timed, n)
	var cancels sync.WaitGroup
	now := time.Now()
	for i := range calls {
		after := time.Duration(50+rng.IntN(200)) * time.Millisecond
		var ctx context.Context
		var cancel context.CancelFunc
		if i%2 == 0 {
			ctx, cancel = context.WithTimeout(context.Background(), after)
			calls[i].want = context.DeadlineExceeded
		} else {
			ctx, cancel = context.WithCancel(context.Background())
			cancels.Add(1)
			time.AfterFunc(after, func() { cancel(); cancels.Done() })
			calls[i].want = context.Canceled
		}
		t.Cleanup(cancel)
		calls[i].end = now.Add(after)
		calls[i].c = start(ctx, r)
	}
	late := 0
	for i, tc := range calls {
		if !tc.c.await(time.Until(tc.end) + Slack) {
			late++
			continue
		}
		if !errors.Is(tc.c.err, tc.want) {
			t.Errorf("caller %d returned %v, want %v", i, tc.c.err, tc.want)
		}
	}
	cancels.Wait()
	if late > 0 {
		t.Fatalf("%d of %d callers were still blocked %v after their context ended", late, n, Slack)
	}
	for _, c := range plain {
		if c.returned() {
			t.Fatalf("a caller with no deadline returned %v among %d others that were cancelled", c.err, n)
		}
	}
	for range plain {
		if err := r.Send(); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	for _, c := range plain {
		if !c.await(Slack) {
			t.Fatal("a caller with no deadline did not get its message")
		}
		if c.err != nil {
			t.Errorf("a caller with no deadline returned %v, want a message", c.err)
		}
	}
}

func closeUnblocks(t *testing.T, r Receiver) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := []*call{start(context.Background(), r), start(ctx, r), start(context.Background(), r)}
	settle()
	if err := r.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	for i, c := range calls {
		if !c.await(Slack) {
			t.Fatalf("caller %d still blocked %v after Close", i, Slack)
		}
		if !errors.Is(c.err, os.ErrClosed) {
			t.Errorf("caller %d returned %v after Close, want os.ErrClosed", i, c.err)
		}
	}
	if err := r.Recv(context.Background()); !errors.Is(err, os.ErrClosed) {
		t.Errorf("a call after Close returned %v, want os.ErrClosed", err)
	}
	for _, name := range slices.Sorted(maps.Keys(r.AfterClose)) {
		if err := r.AfterClose[name](); !errors.Is(err, os.ErrClosed) {
			t.Errorf("%s after Close returned %v, want os.ErrClosed", name, err)
		}
	}
	if r.TryRecv != nil {
		if err := r.TryRecv(); !errors.Is(err, os.ErrClosed) {
			t.Errorf("TryRecv after Close returned %v, want os.ErrClosed", err)
		}
	}
	if err := r.Close(); err != nil {
		t.Errorf("a second Close returned %v, want nil", err)
	}
}
