package doors_test

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/doors"
)

// TestConformanceCallers runs the shared checks for concurrent callers, deadlines,
// cancellation and Close on one door client: a "receive" is a call, which the
// server's handler holds until the test releases it ("send"). Calls on a client go
// one at a time; those waiting for their turn must honour their own contexts. After
// Close, CallBuf and Dup must fail with os.ErrClosed as Call does. A client has no
// non-waiting call (TryRecv stays nil) and no deadline of its own; a door is
// transient (no Remove). It runs in every wait mode, the door's and the client's.
func TestConformanceCallers(t *testing.T) {
	for _, w := range []ipc.WaitStrategy{ipc.WaitAuto, ipc.WaitPoller, ipc.WaitKernel} {
		t.Run(w.String(), func(t *testing.T) { conformanceCallers(t, w) })
	}
}

// releases are the messages of TestConformanceCallers: Send makes one more release
// available, and a handler takes one only while its caller still waits for the
// reply.
//
// A handler cannot learn at once that its caller gave up: the caller returns at
// once and tells the server with a CANCEL frame, which the handler sees as its
// context cancelled a little later (after the watchdog has handed the connection's
// reading to another goroutine, which reads the frame). A release shared by every
// handler would be a race of the test's own: released right after the last of many
// cancelled callers returned, it could go to that caller's handler, not yet
// cancelled, and its reply nowhere, leaving a caller with no deadline without the
// message the suite sent it. A queue never hands a message to a receiver that has
// returned; nor do releases. That the server does see every abandoned call is
// checked too: when the test ends, no handler of a caller that returned may still
// be running after ipctest.Slack.
type releases struct {
	mu      sync.Mutex
	n       int                 // releases sent and not taken
	waiting map[uint64]bool     // calls whose caller has not returned
	running map[uint64]struct{} // calls whose handler runs
	changed chan struct{}       // closed and replaced on every change
	next    uint64              // last call id handed out
}

func newReleases() *releases {
	return &releases{waiting: map[uint64]bool{}, running: map[uint64]struct{}{}, changed: make(chan struct{})}
}

// changedLocked wakes whoever waits for a change (under mu).
func (r *releases) changedLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// send makes one more release available.
func (r *releases) send() {
	r.mu.Lock()
	r.n++
	r.changedLocked()
	r.mu.Unlock()
}

// call marks a caller as waiting and returns the id its argument carries.
func (r *releases) call() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next++
	r.waiting[r.next] = true
	return r.next
}

// returned marks caller id as gone.
func (r *releases) returned(id uint64) {
	r.mu.Lock()
	delete(r.waiting, id)
	r.changedLocked()
	r.mu.Unlock()
}

// take is the handler of call id: it waits for a release while its caller waits,
// or for its context.
func (r *releases) take(ctx context.Context, id uint64) error {
	r.mu.Lock()
	r.running[id] = struct{}{}
	defer func() {
		r.mu.Lock()
		delete(r.running, id)
		r.changedLocked()
		r.mu.Unlock()
	}()
	for {
		if r.n > 0 && r.waiting[id] {
			r.n--
			r.mu.Unlock()
			return nil
		}
		changed := r.changed
		r.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done(): // the caller gave up or went
			return ctx.Err()
		}
		r.mu.Lock()
	}
}

// abandoned returns how many handlers run for callers that have returned.
func (r *releases) abandoned() (n int, changed <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id := range r.running {
		if !r.waiting[id] {
			n++
		}
	}
	return n, r.changed
}

// checkAbandoned fails t if handlers of callers that returned still run after
// ipctest.Slack: the server must learn of every call its caller gave up.
func (r *releases) checkAbandoned(t *testing.T) {
	timeout := time.After(ipctest.Slack)
	for {
		n, changed := r.abandoned()
		if n == 0 {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Errorf("%d handlers still run %v after their callers returned", n, ipctest.Slack)
			return
		}
	}
}

func conformanceCallers(t *testing.T, w ipc.WaitStrategy) {
	ipctest.RunConformance(t, func(t *testing.T) ipctest.Receiver {
		rel := newReleases()
		d, err := doors.New(func(ctx context.Context, c *doors.Call) (*doors.Reply, error) {
			if err := rel.take(ctx, binary.NativeEndian.Uint64(c.Data)); err != nil {
				return nil, err
			}
			return &doors.Reply{Data: []byte{1}}, nil
		}, doors.WithWait(w))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		path := filepath.Join(t.TempDir(), "door")
		if err := d.Attach(path); err != nil {
			t.Fatal(err)
		}
		c, err := doors.Open(context.Background(), path, doors.ClientWait(w))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		t.Cleanup(func() { rel.checkAbandoned(t) }) // before the Closes (cleanups run last first)
		return ipctest.Receiver{
			Recv: func(ctx context.Context) error {
				id := rel.call()
				defer rel.returned(id)
				_, _, err := c.Call(ctx, binary.NativeEndian.AppendUint64(nil, id), nil)
				return err
			},
			Send:  func() error { rel.send(); return nil },
			Close: c.Close,
			AfterClose: map[string]func() error{
				"CallBuf": func() error {
					_, _, err := c.CallBuf(context.Background(), []byte{0}, nil, make([]byte, 8), nil)
					return err
				},
				"Dup": func() error {
					f, err := c.Dup(context.Background())
					if err == nil {
						f.Close()
					}
					return err
				},
			},
		}
	})
}
