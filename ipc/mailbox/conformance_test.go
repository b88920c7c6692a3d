package mailbox_test

import (
	"context"
	"testing"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/mailbox"
)

// TestConformanceMailbox runs the shared checks on the receive side of a persistent mailbox,
// for each backend and, on POSIX queues, each wait mode (System V queues always wait
// in the kernel): concurrent callers, cancellation, Close, TryRecv, the handle's
// other methods after Close, and Remove (opening the mailbox by name then fails with
// fs.ErrNotExist). A mailbox has no deadline of its own: contexts carry them. The
// sender is a second handle, opened by name.
func TestConformanceMailbox(t *testing.T) {
	for _, c := range []struct {
		backend mailbox.Backend
		wait    ipc.WaitStrategy
	}{{mailbox.PosixMQ, ipc.WaitAuto}, {mailbox.PosixMQ, ipc.WaitPoller}, {mailbox.PosixMQ, ipc.WaitKernel}, {mailbox.SysV, ipc.WaitKernel}} {
		t.Run(c.backend.String()+"/"+c.wait.String(), func(t *testing.T) {
			ipctest.RunConformance(t, func(t *testing.T) ipctest.Receiver {
				ns := newNS(t)
				const name = "conformance"
				rx, err := ns.CreateMailbox(name, mailbox.Persistent(), mailbox.WithBackend(c.backend),
					mailbox.WithWait(c.wait), mailbox.WithCapacity(8, 16))
				must(t, err)
				tx, err := ns.OpenMailbox(name)
				must(t, err)
				// tx destroys the mailbox at the end, whatever the check did to rx.
				t.Cleanup(func() { rx.Close(); tx.Remove() })
				ctx := context.Background()
				var b [16]byte
				return ipctest.Receiver{
					Recv: func(ctx context.Context) error {
						var b [16]byte
						_, err := rx.Recv(ctx, b[:])
						return err
					},
					Send:    func() error { return tx.Send(context.Background(), []byte{1}) },
					Close:   rx.Close,
					TryRecv: func() error { _, err := rx.TryRecv(b[:]); return err },
					AfterClose: map[string]func() error{
						"Get":     func() error { _, err := rx.Get(ctx, b[:]); return err },
						"Poll":    func() error { _, err := rx.Poll(b[:]); return err },
						"Irecv":   func() error { _, err := rx.Irecv(ctx, b[:]).Wait(ctx); return err },
						"Len":     func() error { _, err := rx.Len(); return err },
						"Send":    func() error { return rx.Send(ctx, []byte{1}) },
						"TrySend": func() error { return rx.TrySend([]byte{1}) },
						"Put":     func() error { return rx.Put(ctx, []byte{1}) },
						"Bsend":   func() error { return rx.Bsend(ctx, []byte{1}) },
						"Ssend":   func() error { return rx.Ssend(ctx, []byte{1}) },
						"Sendrecv": func() error {
							_, err := rx.Sendrecv(ctx, []byte{1}, b[:])
							return err
						},
					},
					Remove: rx.Remove,
					Reopen: func() error {
						m, err := ns.OpenMailbox(name)
						if err == nil {
							m.Close()
						}
						return err
					},
				}
			})
		})
	}
}
