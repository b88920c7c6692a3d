package sockets

import (
	"context"
	"testing"
	"time"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
)

// TestConformanceSocket runs the shared checks for concurrent callers, deadlines,
// cancellation and Close on each Unix socket type, in every wait mode.
func TestConformanceSocket(t *testing.T) {
	type pair struct {
		recv    func(ctx context.Context, p []byte) (int, error)
		tryRecv func(p []byte) (int, error)
		send    func() error
		after   map[string]func() error
		rx      interface {
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
			return pair{recv: a.ReadContext, tryRecv: a.TryRead, rx: a, close: func() { a.Close(); b.Close() },
				send: func() error { _, err := b.Write([]byte{1}); return err },
				after: afterClose(a.base, map[string]func() error{
					"Write":     func() error { _, err := a.Write([]byte{1}); return err },
					"TryWrite":  func() error { _, err := a.TryWrite([]byte{1}); return err },
					"CloseRead": a.CloseRead,
				})}, nil
		}},
		{"seqpacket", func(opts ...Option) (pair, error) {
			a, b, err := SeqpacketPair(opts...)
			if err != nil {
				return pair{}, err
			}
			return pair{recv: a.Recv, tryRecv: a.TryRecv, rx: a, close: func() { a.Close(); b.Close() },
				send: func() error { return b.Send(context.Background(), []byte{1}) },
				after: afterClose(a.base, map[string]func() error{
					"Send":       func() error { return a.Send(context.Background(), []byte{1}) },
					"TrySend":    func() error { return a.TrySend([]byte{1}) },
					"CloseWrite": a.CloseWrite,
				})}, nil
		}},
		{"dgram", func(opts ...Option) (pair, error) {
			a, b, err := DgramPair(opts...)
			if err != nil {
				return pair{}, err
			}
			return pair{recv: a.Recv, tryRecv: a.TryRecv, rx: a, close: func() { a.Close(); b.Close() },
				send: func() error { return b.Send(context.Background(), []byte{1}) },
				after: afterClose(a.base, map[string]func() error{
					"Send":     func() error { return a.Send(context.Background(), []byte{1}) },
					"TrySend":  func() error { return a.TrySend([]byte{1}) },
					"RecvFrom": func() error { _, _, err := a.RecvFrom(context.Background(), make([]byte, 1)); return err },
				})}, nil
		}},
	}
	for _, k := range kinds {
		for _, mode := range []ipc.WaitStrategy{ipc.WaitAuto, ipc.WaitPoller, ipc.WaitKernel} {
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
						TryRecv: func() error {
							var b [1]byte
							_, err := p.tryRecv(b[:])
							return err
						},
						Send:            p.send,
						SetRecvDeadline: p.rx.SetReadDeadline,
						Close:           p.rx.Close,
						AfterClose:      p.after,
					}
				})
			})
		}
	}
}

// afterClose adds the methods every socket has to m, the type's own, for the
// checks after Close.
func afterClose(b *base, m map[string]func() error) map[string]func() error {
	bg := context.Background()
	buf, fds := make([]byte, 8), make([]int, 1)
	m["ReadMsg"] = func() error { _, _, err := b.ReadMsg(bg, buf, fds); return err }
	m["ReadMsgCred"] = func() error { _, _, _, err := b.ReadMsgCred(bg, buf, fds); return err }
	m["WriteMsg"] = func() error { _, err := b.WriteMsg(bg, []byte{1}, []int{0}); return err }
	m["WriteMsgCred"] = func() error { _, err := b.WriteMsgCred(bg, []byte{1}, nil, Cred{}); return err }
	m["SetPassCred"] = func() error { return b.SetPassCred(true) }
	m["SetDeadline"] = func() error { return b.SetDeadline(time.Now()) }
	m["SetReadDeadline"] = func() error { return b.SetReadDeadline(time.Now()) }
	m["SetWriteDeadline"] = func() error { return b.SetWriteDeadline(time.Now()) }
	m["PeerCred"] = func() error { _, err := b.PeerCred(); return err }
	m["PeerPidfd"] = func() error {
		f, err := b.PeerPidfd()
		if err == nil {
			f.Close()
		}
		return err
	}
	m["File"] = func() error {
		f, err := b.File()
		if err == nil {
			f.Close()
		}
		return err
	}
	return m
}
