package fifo

import (
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/pipe"
)

// TestConformanceFIFO runs the shared checks on a FIFO's read end, in every wait
// mode: concurrent callers, deadlines, cancellation, Close, TryRead, the read end's
// other methods after Close, and Remove (a FIFO is persistent: after Remove, opening
// it by name fails with fs.ErrNotExist).
func TestConformanceFIFO(t *testing.T) {
	for _, mode := range []ipc.WaitStrategy{ipc.WaitAuto, ipc.WaitPoller, ipc.WaitKernel} {
		t.Run(mode.String(), func(t *testing.T) {
			ipctest.RunConformance(t, func(t *testing.T) ipctest.Receiver {
				path := filepath.Join(t.TempDir(), "fifo")
				f, err := Create(path)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { f.Remove(); f.Close() })
				r, w, err := f.OpenReadWrite(WithPipeOptions(pipe.WithWait(mode)))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { r.Close(); w.Close() })
				ctx := context.Background()
				var b [1]byte
				tryRecv := func() error { _, err := r.TryRead(b[:]); return err }
				return ipctest.Receiver{
					Recv: func(ctx context.Context) error {
						var b [1]byte
						_, err := r.ReadContext(ctx, b[:])
						return err
					},
					Send:            func() error { _, err := w.Write([]byte{1}); return err },
					SetRecvDeadline: r.SetReadDeadline,
					Close:           r.Close,
					TryRecv:         tryRecv,
					AfterClose: map[string]func() error{
						"SetReadDeadline": func() error { return r.SetReadDeadline(time.Now()) },
						"SyscallConn": func() error {
							rc, err := r.SyscallConn()
							if err != nil {
								return err
							}
							return rc.Control(func(uintptr) {})
						},
						"Read":        func() error { _, err := r.Read(b[:]); return err },
						"ReadFull":    func() error { _, err := r.ReadFull(ctx, b[:]); return err },
						"WriteTo":     func() error { _, err := r.WriteTo(io.Discard); return err },
						"Buffered":    func() error { _, err := r.Buffered(); return err },
						"Capacity":    func() error { _, err := r.Capacity(); return err },
						"SetCapacity": func() error { _, err := r.SetCapacity(1 << 16); return err },
						"File":        func() error { _, err := r.File(); return err },
						"TeeTo":       func() error { _, err := r.TeeTo(ctx, w, 1); return err },
						"SpliceTo":    func() error { _, err := r.SpliceTo(ctx, w, 1); return err },
					},
					Remove: f.Remove,
					Reopen: func() error {
						g, err := Open(path)
						if err == nil {
							g.Close()
						}
						return err
					},
				}
			})
		})
	}
}
