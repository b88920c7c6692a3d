package fifo

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/pipe"
)

// TestConformanceCallers runs the shared checks for concurrent callers, deadlines,
// cancellation and Close on a FIFO's read end, in both wait modes.
func TestConformanceCallers(t *testing.T) {
	for _, mode := range []ipc.WaitStrategy{ipc.WaitAuto, ipc.WaitPoller, ipc.WaitKernel} {
		t.Run(mode.String(), func(t *testing.T) {
			ipctest.RunConformance(t, func(t *testing.T) ipctest.Receiver {
				f, err := Create(filepath.Join(t.TempDir(), "fifo"))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { f.Remove(); f.Close() })
				r, w, err := f.OpenReadWrite(WithPipeOptions(pipe.WithWait(mode)))
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
