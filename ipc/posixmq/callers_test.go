package posixmq_test

import (
	"context"
	"testing"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/posixmq"
)

// TestConformanceCallers runs the shared checks for concurrent callers, deadlines,
// cancellation and Close on a queue handle, in both wait modes. A queue has no
// deadline of its own: contexts carry them.
func TestConformanceCallers(t *testing.T) {
	for _, mode := range []ipc.WaitStrategy{ipc.WaitPoller, ipc.WaitKernel} {
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
				t.Cleanup(func() { rx.Close(); tx.Close(); posixmq.Unlink(name) })
				return ipctest.Receiver{
					Recv: func(ctx context.Context) error {
						var b [8]byte
						_, _, err := rx.Recv(ctx, b[:])
						return err
					},
					Send:  func() error { return tx.Send(context.Background(), []byte{1}, 0) },
					Close: rx.Close,
				}
			})
		})
	}
}
