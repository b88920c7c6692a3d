package sysv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
)

// recvErr is a receive's error.
func recvErr(_ int, _ int64, err error) error { return err }

// TestSendErrorText is issue 14 §5 for MSG-08 and MSG-09: a message over msgmax and
// a message type that is not positive are both EINVAL to the kernel, but their
// errors say which: the limit and the size, or the type. Both match unix.EINVAL and
// ipc.ErrInvalid, are *ipc.OpError and fit on one line.
func TestSendErrorText(t *testing.T) {
	q, err := CreateQueue(Private)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Remove()
	b, err := os.ReadFile("/proc/sys/kernel/msgmax")
	if err != nil {
		t.Fatal(err)
	}
	msgmax, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, msgmax+1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"MSG-09/TrySend", q.TrySend(1, big), fmt.Sprintf("%d-byte message over msgmax (%d bytes", msgmax+1, msgmax)},
		{"MSG-09/Send", q.Send(ctx, 1, big), fmt.Sprintf("%d-byte message over msgmax (%d bytes", msgmax+1, msgmax)},
		{"MSG-08/mtype0", q.TrySend(0, []byte("x")), "message type 0, want > 0"},
		{"MSG-08/mtype-5", q.Send(context.Background(), -5, []byte("x")), "message type -5, want > 0"},
		{"MSG-12/OfType(0)", recvErr(q.TryRecv(make([]byte, 8), OfType(0))), "selector's message type not > 0"},
	}
	for _, c := range cases {
		wantErr(t, c.err, unix.EINVAL, ipc.ErrInvalid)
		var oe *ipc.OpError
		if !errors.As(c.err, &oe) {
			t.Errorf("%s: %T is not an *ipc.OpError", c.name, c.err)
		}
		if msg := c.err.Error(); !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") {
			t.Errorf("%s: %q, want one line containing %q", c.name, msg, c.want)
		}
	}
}
