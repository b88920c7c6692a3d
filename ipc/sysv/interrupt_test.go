package sysv

import (
	"context"
	"errors"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipclab/ipclab/internal/sys"
)

// TestCloseSignalsOnlyItsObject: Close interrupts the calls blocked on its handle
// (under a context that never ends and under one that can) and no other thread: a
// bare msgrcv, semop or futex wait blocked on another object of the same process,
// which any signal would end with EINTR (System V calls and futex waits are never
// restarted), goes on waiting and then gets what it waits for. Close used to send
// SIGURG to every thread of the process (FI-05, FI-16).
func TestCloseSignalsOnlyItsObject(t *testing.T) {
	cases := []struct {
		name string
		// setup returns a blocking call on the handle under test, its Close, a
		// bare blocking call on another object and what ends that call.
		setup func(t *testing.T) (block func(context.Context) error, close func() error, bystander, release func() error)
	}{
		{"queue", func(t *testing.T) (func(context.Context) error, func() error, func() error, func() error) {
			a, other := tmpQueue(t), tmpQueue(t)
			h, err := OpenQueueID(a.ID()) // a removes the queue in cleanup
			must(t, err)
			return func(ctx context.Context) error {
					var b [8]byte
					_, _, err := h.Recv(ctx, b[:], Any())
					return err
				}, h.Close,
				func() error {
					b := make([]byte, sys.MsgHeaderSize+8)
					_, err := sys.Msgrcv(other.ID(), b, 0, 0)
					return err
				},
				func() error { return other.TrySend(1, []byte{1}) }
		}},
		{"sem", func(t *testing.T) (func(context.Context) error, func() error, func() error, func() error) {
			a, other := tmpSemSet(t, 1), tmpSemSet(t, 1)
			h, err := OpenSemSetID(a.ID())
			must(t, err)
			return func(ctx context.Context) error { return h.Op(ctx, SemOp{Num: 0, Op: -1}) }, h.Close,
				func() error { return sys.Semtimedop(other.ID(), []SemOp{{Num: 0, Op: -1}}, nil) },
				func() error { return other.TryOp(SemOp{Num: 0, Op: 1}) }
		}},
		{"ring", func(t *testing.T) (func(context.Context) error, func() error, func() error, func() error) {
			r := tmpRing(t, 4096)
			h, err := OpenRing(r.SegmentID()) // r removes the segment in cleanup
			must(t, err)
			word := new(atomic.Uint32)
			return func(ctx context.Context) error {
					var b [8]byte
					_, err := h.Recv(ctx, b[:])
					return err
				}, h.Close,
				func() error { return sys.FutexWait(word, 0, nil) },
				func() error { word.Add(1); _, err := sys.FutexWake(word, 1); return err }
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			block, closeH, bystander, release := c.setup(t)
			other := make(chan error, 1)
			go func() {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				other <- bystander()
			}()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			mine := make(chan error, 2)
			for _, ctx := range []context.Context{context.Background(), ctx} {
				go func() { mine <- block(ctx) }()
			}
			time.Sleep(100 * time.Millisecond) // all three are blocked in the kernel
			must(t, closeH())
			for range 2 {
				select {
				case err := <-mine:
					if !errors.Is(err, os.ErrClosed) {
						t.Errorf("a call blocked on the closed handle returned %v, want os.ErrClosed", err)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("a call blocked on the handle outlived Close by 5s")
				}
			}
			select {
			case err := <-other:
				t.Fatalf("a call blocked on another object returned %v when the handle was closed", err)
			case <-time.After(200 * time.Millisecond):
			}
			must(t, release())
			select {
			case err := <-other:
				if err != nil {
					t.Fatalf("the call blocked on another object returned %v, want success", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the call blocked on another object did not return once released")
			}
		})
	}
}
