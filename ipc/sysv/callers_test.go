package sysv

import (
	"context"
	"testing"

	"github.com/ipclab/ipclab/internal/ipctest"
)

// TestConformanceCallers runs the shared checks for concurrent callers, deadlines,
// cancellation and Close on a message queue handle. A queue has no deadline of its
// own: contexts carry them. The sender is a second handle on the same queue.
func TestConformanceCallers(t *testing.T) {
	ipctest.RunConformance(t, func(t *testing.T) ipctest.Receiver {
		rx := tmpQueue(t)
		tx, err := OpenQueueID(rx.ID())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tx.Remove(); tx.Close() }) // rx may be closed by then
		return ipctest.Receiver{
			Recv: func(ctx context.Context) error {
				var b [8]byte
				_, _, err := rx.Recv(ctx, b[:], Any())
				return err
			},
			Send:  func() error { return tx.Send(context.Background(), 1, []byte{1}) },
			Close: rx.Close,
		}
	})
}
