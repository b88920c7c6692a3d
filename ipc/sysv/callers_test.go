package sysv

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"testing"

	"github.com/ipclab/ipclab/internal/ipctest"
)

// reopenErr opens an object again the way a stranger would, once by key and once by
// id (either may be nil: skipped), and returns the first error that does not match
// fs.ErrNotExist, or the last one: ipctest.RunConformance wants every way of opening a
// removed object to fail so.
func reopenErr(byKey, byID func() error) error {
	var err error
	for _, open := range []func() error{byKey, byID} {
		if open == nil {
			continue
		}
		if err = open(); !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return err
}

// TestConformanceQueue runs the shared checks on a message queue handle: concurrent
// callers with their own deadlines and cancellations (MSG-14, FI-05, FI-16), Close
// (FI-16), TryRecv (MSG-12: IPC_NOWAIT with no message), every method after Close,
// and Remove (MSG-20: the removed queue cannot be opened by key or by id). A queue has
// no deadline of its own: contexts carry them. The sender is a second handle on the
// same queue.
func TestConformanceQueue(t *testing.T) {
	ipctest.RunConformance(t, func(t *testing.T) ipctest.Receiver {
		key := newKey()
		rx, err := CreateQueue(key)
		if err != nil {
			t.Fatal(err)
		}
		id := rx.ID()
		tx, err := OpenQueueID(id)
		if err != nil {
			rx.Remove()
			t.Fatal(err)
		}
		t.Cleanup(func() { tx.Remove(); tx.Close(); rx.Close() }) // rx may be closed or removed by then
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
				"Remove":  rx.Remove,
			},
			Remove: rx.Remove,
			Reopen: func() error {
				return reopenErr(
					func() error { q, err := OpenQueue(key); closeIf(q, err); return err },
					func() error { q, err := OpenQueueID(id); closeIf(q, err); return err })
			},
		}
	})
}

// closeIf closes a handle an unexpectedly successful open returned.
func closeIf(h interface{ Close() error }, err error) {
	if err == nil {
		h.Close()
	}
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
		key := newKey()
		rx, err := CreateSemSet(key, 1)
		if err != nil {
			t.Fatal(err)
		}
		id := rx.ID()
		tx, err := OpenSemSetID(id)
		if err != nil {
			rx.Remove()
			t.Fatal(err)
		}
		t.Cleanup(func() { tx.Remove(); tx.Close(); rx.Close() })
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
				"Remove":  rx.Remove,
			},
			Remove: rx.Remove,
			Reopen: func() error {
				return reopenErr(
					func() error { s, err := OpenSemSet(key); closeIf(s, err); return err },
					func() error { s, err := OpenSemSetID(id); closeIf(s, err); return err })
			},
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
						"Remove":  rx.Remove,
					},
					Remove: rx.Remove,
					Reopen: func() error { r, err := OpenRing(id); closeIf(r, err); return err },
				}
			})
		})
	}
}
