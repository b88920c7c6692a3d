package sysv

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"testing"
	"time"

	"github.com/ipclab/ipclab/internal/ipctest"
)

// handle is what the keyed kinds' handles have in common.
type handle interface {
	ID() int
	Remove() error
	Close() error
}

// keyedPair creates an object under a new key and opens a second handle on it by id
// (the sender, which also removes the object in cleanup: the first may be closed by
// then). reopen opens the object again the way a stranger would, by key and by id,
// and returns the first error that does not match fs.ErrNotExist, or the last one:
// ipctest.RunConformance wants every way of opening a removed object to fail so.
func keyedPair[H handle](t *testing.T, create func(Key) (H, error), openKey func(Key, ...Option) (H, error),
	openID func(int, ...Option) (H, error)) (rx, tx H, reopen func() error) {
	key := newKey()
	rx, err := create(key)
	if err != nil {
		t.Fatal(err)
	}
	id := rx.ID()
	if tx, err = openID(id); err != nil {
		rx.Remove()
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Remove(); tx.Close(); rx.Close() })
	reopen = func() error {
		var last error
		for _, open := range []func() (H, error){
			func() (H, error) { return openKey(key) },
			func() (H, error) { return openID(id) },
		} {
			h, err := open()
			if err == nil {
				h.Close()
			}
			if last = err; !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		return last
	}
	return rx, tx, reopen
}

// TestConformanceQueue runs the shared checks on a message queue handle: concurrent
// callers with their own deadlines and cancellations (MSG-14, FI-05, FI-16), Close
// (FI-16), TryRecv (MSG-12: IPC_NOWAIT with no message), every method after Close,
// and Remove (MSG-20: the removed queue cannot be opened by key or by id). A queue has
// no deadline of its own: contexts carry them. The sender is a second handle on the
// same queue.
func TestConformanceQueue(t *testing.T) {
	ipctest.RunConformance(t, func(t *testing.T) ipctest.Receiver {
		rx, tx, reopen := keyedPair(t, func(k Key) (*Queue, error) { return CreateQueue(k) }, OpenQueue, OpenQueueID)
		ctx := context.Background()
		msg, buf := []byte{1}, make([]byte, 8)
		return ipctest.Receiver{
			Recv: func(ctx context.Context) error {
				var b [8]byte // each caller its own: they run concurrently
				_, _, err := rx.Recv(ctx, b[:], Any())
				return err
			},
			Send:    func() error { return tx.Send(ctx, 1, msg) },
			Close:   rx.Close,
			TryRecv: func() error { _, _, err := rx.TryRecv(buf, Any()); return err },
			AfterClose: map[string]func() error{
				"Send":    func() error { return rx.Send(ctx, 1, msg) },
				"TrySend": func() error { return rx.TrySend(1, msg) },
				"Peek":    func() error { _, _, err := rx.Peek(buf, 0); return err },
				"Stat":    func() error { _, err := rx.Stat(); return err },
				"Attr":    func() error { _, err := rx.Attr(); return err },
				"SetAttr": func() error { return rx.SetAttr(QueueAttr{UID: 0, GID: 0, Mode: 0o600, MaxBytes: 16384}) },
			},
			Remove: rx.Remove,
			Reopen: reopen,
		}
	})
}

// TestConformanceSemSet runs the shared checks on a semaphore set handle: Recv waits
// for semaphore 0 and takes one (semop -1), Send posts one from a second handle.
// Concurrent callers with their own deadlines and cancellations (SEM-05: semtimedop's
// timeout is a deadline, not EAGAIN; SEM-06: a blocked op then a signal; FI-05), Close
// (FI-16), TryRecv (SEM-05: op -1 on zero with IPC_NOWAIT is EAGAIN), every method
// after Close, and Remove (SEM-09: IPC_RMID, after which the set cannot be opened by
// key or by id).
func TestConformanceSemSet(t *testing.T) {
	ipctest.RunConformance(t, func(t *testing.T) ipctest.Receiver {
		rx, tx, reopen := keyedPair(t, func(k Key) (*SemSet, error) { return CreateSemSet(k, 1) }, OpenSemSet, OpenSemSetID)
		ctx := context.Background()
		take, post := SemOp{Num: 0, Op: -1}, SemOp{Num: 0, Op: 1}
		return ipctest.Receiver{
			Recv:    func(ctx context.Context) error { return rx.Op(ctx, take) },
			Send:    func() error { return tx.Op(ctx, post) },
			Close:   rx.Close,
			TryRecv: func() error { return rx.TryOp(take) },
			AfterClose: map[string]func() error{
				"Op":      func() error { return rx.Op(ctx, post) },
				"TryOp":   func() error { return rx.TryOp(post) },
				"Get":     func() error { _, err := rx.Get(0); return err },
				"Set":     func() error { return rx.Set(0, 1) },
				"Waiters": func() error { _, _, err := rx.Waiters(0); return err },
				"LastPID": func() error { _, err := rx.LastPID(0); return err },
				"GetAll":  func() error { return rx.GetAll(make([]uint16, 1)) },
				"SetAll":  func() error { return rx.SetAll(make([]uint16, 1)) },
				"Stat":    func() error { _, err := rx.Stat(); return err },
				"SetPerm": func() error { return rx.SetPerm(uint32(os.Geteuid()), uint32(os.Getegid()), 0o600) },
			},
			Remove: rx.Remove,
			Reopen: reopen,
		}
	})
}

// TestConformanceRing runs the shared checks on a shared memory ring, with either
// wake-up: Recv takes one message, Send is a second handle on the ring (the one
// producer). Concurrent callers of Recv take turns, each under its own context; Close
// (FI-16); TryRecv; every method after Close; Remove (SHM-18: a segment marked for
// removal stays usable while attached, but nobody can attach it any more, so OpenRing
// fails).
func TestConformanceRing(t *testing.T) {
	for _, sig := range []Signal{SignalFutex, SignalSemaphore} {
		t.Run(sig.String(), func(t *testing.T) {
			ipctest.RunConformance(t, func(t *testing.T) ipctest.Receiver {
				rx, err := CreateRing(4096, WithSignal(sig))
				if err != nil {
					t.Fatal(err)
				}
				id := rx.SegmentID()
				tx, err := OpenRing(id)
				if err != nil {
					rx.Remove()
					rx.Close()
					t.Fatal(err)
				}
				// tx removes: rx may be closed by then
				t.Cleanup(func() { tx.Remove(); tx.Close(); rx.Close() })
				ctx := context.Background()
				msg, buf := []byte{1}, make([]byte, 8)
				return ipctest.Receiver{
					Recv: func(ctx context.Context) error {
						var b [8]byte // each caller its own: they run concurrently
						_, err := rx.Recv(ctx, b[:])
						return err
					},
					Send:    func() error { return tx.Send(ctx, msg) },
					Close:   rx.Close,
					TryRecv: func() error { _, err := rx.TryRecv(buf); return err },
					AfterClose: map[string]func() error{
						"Send":    func() error { return rx.Send(ctx, msg) },
						"TrySend": func() error { return rx.TrySend(msg) },
					},
					Remove: rx.Remove,
					Reopen: func() error {
						r, err := OpenRing(id)
						if err == nil {
							r.Close()
						}
						return err
					},
				}
			})
		})
	}
}

// TestRemoveAfterCloseAfterSetAll: a set whose values were set (which moves its
// ChangeTime) is still removed by a closed handle's Remove: the identity it checks
// is what no change of attributes or values alters.
func TestRemoveAfterCloseAfterSetAll(t *testing.T) {
	s, err := CreateSemSet(Private, 1)
	if err != nil {
		t.Fatal(err)
	}
	id := s.ID()
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond))) // the next second
	if err := s.SetAll([]uint16{3}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(); err != nil {
		t.Fatalf("Remove after SetAll and Close: %v", err)
	}
	if o, err := OpenSemSetID(id); !errors.Is(err, fs.ErrNotExist) {
		if err == nil {
			o.Remove()
		}
		t.Fatalf("opening the set after Remove: %v, want fs.ErrNotExist", err)
	}
}
