package doors_test

import (
	"context"
	"path/filepath"
	"testing"

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

func conformanceCallers(t *testing.T, w ipc.WaitStrategy) {
	ipctest.RunConformance(t, func(t *testing.T) ipctest.Receiver {
		release := make(chan struct{}, 16)
		d, err := doors.New(func(ctx context.Context, c *doors.Call) (*doors.Reply, error) {
			select {
			case <-release:
				return &doors.Reply{Data: []byte{1}}, nil
			case <-ctx.Done(): // the caller gave up or went
				return nil, ctx.Err()
			}
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
		return ipctest.Receiver{
			Recv: func(ctx context.Context) error {
				_, _, err := c.Call(ctx, []byte{0}, nil)
				return err
			},
			Send:  func() error { release <- struct{}{}; return nil },
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
