package sockets

import (
	"context"
	"testing"
	"time"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
)

// TestConformance runs the shared checks for concurrent callers, deadlines,
// cancellation and Close on each Unix socket type, in both wait modes.
func TestConformance(t *testing.T) {
	type pair struct {
		recv func(ctx context.Context, p []byte) (int, error)
		send func() error
		rx   interface {
			SetReadDeadline(time.Time) error
			Close() error
		}
		close func()
	}
	kinds := []struct {
		name string
		open func(opts ...Option) (pair, error)
	}{
		{"stream", func(opts ...Option) (pair, error) {
			a, b, err := StreamPair(opts...)
			if err != nil {
				return pair{}, err
			}
			return pair{recv: a.ReadContext, rx: a, close: func() { a.Close(); b.Close() },
				send: func() error { _, err := b.Write([]byte{1}); return err }}, nil
		}},
		{"seqpacket", func(opts ...Option) (pair, error) {
			a, b, err := SeqpacketPair(opts...)
			if err != nil {
				return pair{}, err
			}
			return pair{recv: a.Recv, rx: a, close: func() { a.Close(); b.Close() },
				send: func() error { return b.Send(context.Background(), []byte{1}) }}, nil
		}},
		{"dgram", func(opts ...Option) (pair, error) {
			a, b, err := DgramPair(opts...)
			if err != nil {
				return pair{}, err
			}
			return pair{recv: a.Recv, rx: a, close: func() { a.Close(); b.Close() },
				send: func() error { return b.Send(context.Background(), []byte{1}) }}, nil
		}},
	}
	for _, k := range kinds {
		for _, mode := range []ipc.WaitStrategy{ipc.WaitPoller, ipc.WaitKernel} {
			t.Run(k.name+"/"+mode.String(), func(t *testing.T) {
				ipctest.RunConformance(t, func(t *testing.T) ipctest.Receiver {
					p, err := k.open(WithWait(mode))
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(p.close)
					return ipctest.Receiver{
						Recv: func(ctx context.Context) error {
							var b [1]byte
							_, err := p.recv(ctx, b[:])
							return err
						},
						Send:            p.send,
						SetRecvDeadline: p.rx.SetReadDeadline,
						Close:           p.rx.Close,
					}
				})
			})
		}
	}
}
