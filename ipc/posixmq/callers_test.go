package posixmq_test

import (
	"context"
	"testing"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/posixmq"
)

// TestConformancePosixMQ runs the shared checks on a queue handle, in every wait
// mode: concurrent callers, cancellation, Close, TryRecv, every other method after
// Close, and Remove (a queue is persistent: after Remove, opening it by name fails
// with fs.ErrNotExist). A queue has no deadline of its own: contexts carry them.
func TestConformancePosixMQ(t *testing.T) {
	for _, mode := range []ipc.WaitStrategy{ipc.WaitAuto, ipc.WaitPoller, ipc.WaitKernel} {
		t.Run(mode.String(), func(t *testing.T) {
			ipctest.RunConformance(t, func(t *testing.T) ipctest.Receiver {
				name := uniqueName(t)
				rx, err := posixmq.Create(name, posixmq.WithWait(mode), posixmq.WithAttr(4, 8))
				if err != nil {
					t.Fatal(err)
				}
				tx, err := posixmq.Open(name, posixmq.WriteOnly())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { rx.Close(); tx.Close(); posixmq.Remove(name) })
				ctx := context.Background()
				var b [8]byte
				return ipctest.Receiver{
					Recv: func(ctx context.Context) error {
						var b [8]byte
						_, _, err := rx.Recv(ctx, b[:])
						return err
					},
					Send:    func() error { return tx.Send(context.Background(), []byte{1}, 0) },
					Close:   rx.Close,
					TryRecv: func() error { _, _, err := rx.TryRecv(b[:]); return err },
					AfterClose: map[string]func() error{
						"Send":         func() error { return rx.Send(ctx, []byte{1}, 0) },
						"TrySend":      func() error { return rx.TrySend([]byte{1}, 0) },
						"Attr":         func() error { _, err := rx.Attr(); return err },
						"SetAttr":      func() error { _, err := rx.SetAttr(posixmq.Attr{}); return err },
						"Len":          func() error { _, err := rx.Len(); return err },
						"Status":       func() error { _, err := rx.Status(); return err },
						"File":         func() error { _, err := rx.File(); return err },
						"Notify":       func() error { _, err := rx.Notify(); return err },
						"NotifyFunc":   func() error { _, err := rx.NotifyFunc(func() {}); return err },
						"NotifyKernel": func() error { _, err := rx.NotifyKernel(); return err },
					},
					Remove: rx.Remove,
					Reopen: func() error {
						q, err := posixmq.Open(name)
						if err == nil {
							q.Close()
						}
						return err
					},
				}
			})
		})
	}
}
