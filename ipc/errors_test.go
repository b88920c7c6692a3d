package ipc_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
)

func TestJoin(t *testing.T) {
	if ipc.Join() != nil || ipc.Join(nil, nil) != nil {
		t.Fatal("Join of no errors is not nil")
	}
	a := ipc.Wrap("close", "/q", unix.EBADF)
	b := errors.Join(os.ErrClosed, unix.EPIPE) // lines of its own
	err := ipc.Join(nil, a, b)
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("%q has a newline", err)
	}
	for _, target := range []error{unix.EBADF, os.ErrClosed, unix.EPIPE} {
		if !errors.Is(err, target) {
			t.Errorf("%v does not match %v", err, target)
		}
	}
	if got, want := ipc.Join(a).Error(), a.Error(); got != want {
		t.Errorf("one error: %q, want %q", got, want)
	}
}
