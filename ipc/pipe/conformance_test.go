package pipe

import (
	"context"
	"testing"
	"time"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
)

// TestConformancePipe runs the shared checks for concurrent callers, deadlines,
// cancellation, Try calls and Close on a pipe's read end, in every wait mode.
func TestConformancePipe(t *testing.T) {
	for _, mode := range []ipc.WaitStrategy{ipc.WaitAuto, ipc.WaitPoller, ipc.WaitKernel} {
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
					TryRecv: func() error {
						var b [1]byte
						_, err := r.TryRead(b[:])
						return err
					},
					AfterClose: map[string]func() error{
						"Read":     func() error { _, err := r.Read(make([]byte, 1)); return err },
						"Buffered": func() error { _, err := r.Buffered(); return err },
						"Capacity": func() error { _, err := r.Capacity(); return err },
						"SetCapacity": func() error {
							_, err := r.SetCapacity(4096)
							return err
						},
						"File":            func() error { _, err := r.File(); return err },
						"SetReadDeadline": func() error { return r.SetReadDeadline(time.Now()) },
						"TeeTo": func() error {
							_, err := r.TeeTo(context.Background(), w, 1)
							return err
						},
					},
				}
			})
		})
	}
}
