package pipe

import (
	"context"
	"testing"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
)

// TestConformance runs the shared checks for concurrent callers, deadlines,
// cancellation and Close on a pipe's read end, in both wait modes.
func TestConformance(t *testing.T) {
	for _, mode := range []ipc.WaitStrategy{ipc.WaitPoller, ipc.WaitKernel} {
		t.Run(mode.String(), func(t *testing.T) {
			ipctest.RunConformance(t, func(t *testing.T) ipctest.Receiver {
				r, w, err := New(WithWait(mode))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { r.Close(); w.Close() })
				return ipctest.Receiver{
					Recv: func(ctx context.Context) error {
						var b [1]byte
						_, err := r.ReadContext(ctx, b[:])
						return err
					},
					Send:            func() error { _, err := w.Write([]byte{1}); return err },
					SetRecvDeadline: r.SetReadDeadline,
					Close:           r.Close,
				}
			})
		})
	}
}
