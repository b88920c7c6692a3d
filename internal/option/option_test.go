package option_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/doors"
	"github.com/ipclab/ipclab/ipc/fifo"
	"github.com/ipclab/ipclab/ipc/mailbox"
	"github.com/ipclab/ipclab/ipc/pipe"
	"github.com/ipclab/ipclab/ipc/posixmq"
	"github.com/ipclab/ipclab/ipc/sysv"
	"github.com/ipclab/ipclab/sockets"
)

func TestMain(m *testing.M) { ipctest.Main(m) }

// TestNilOptionIsBadInput: a nil option given to any constructor is an error
// matching ipc.ErrInvalid (an *ipc.OpError), not a panic, and makes no object.
func TestNilOptionIsBadInput(t *testing.T) {
	dir := t.TempDir()
	handler := func(context.Context, *doors.Call) (*doors.Reply, error) { return nil, nil }
	for name, call := range map[string]func() error{
		"pipe.New":    func() error { _, _, err := pipe.New(nil); return err },
		"fifo.Create": func() error { _, err := fifo.Create(filepath.Join(dir, "f"), nil); return err },
		"fifo.WithPipeOptions": func() error {
			_, err := fifo.Create(filepath.Join(dir, "g"), fifo.WithPipeOptions(nil))
			return err
		},
		"posixmq.Create":     func() error { _, err := posixmq.Create("/ipclab-nil-option", nil); return err },
		"sysv.CreateQueue":   func() error { _, err := sysv.CreateQueue(sysv.Private, nil); return err },
		"sysv.CreateSemSet":  func() error { _, err := sysv.CreateSemSet(sysv.Private, 1, nil); return err },
		"sysv.CreateSegment": func() error { _, err := sysv.CreateSegment(sysv.Private, 4096, nil); return err },
		"sysv.CreateRing":    func() error { _, err := sysv.CreateRing(4096, nil); return err },
		"sysv.WithRingOptions": func() error {
			_, err := sysv.CreateRing(4096, sysv.WithRingOptions(nil))
			return err
		},
		"doors.New":             func() error { _, err := doors.New(handler, nil); return err },
		"doors.Open":            func() error { _, err := doors.Open(context.Background(), filepath.Join(dir, "d"), nil); return err },
		"sockets.SeqpacketPair": func() error { _, _, err := sockets.SeqpacketPair(nil); return err },
		"mailbox.CreateMailbox": func() error {
			ns, err := mailbox.Open(filepath.Join(dir, "ns"))
			if err != nil {
				return fmt.Errorf("namespace: %v", err)
			}
			_, err = ns.CreateMailbox("m", nil)
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			err := func() (err error) {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("panic: %v", r)
					}
				}()
				return call()
			}()
			var oe *ipc.OpError
			if !errors.Is(err, ipc.ErrInvalid) || !errors.As(err, &oe) {
				t.Fatalf("nil option: %v, want an *ipc.OpError matching ipc.ErrInvalid", err)
			}
		})
	}
}
