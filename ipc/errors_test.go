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

// TestNewSentinel: a package's own sentinel matches itself, each of its errnos and
// its other error, and nothing else.
func TestNewSentinel(t *testing.T) {
	s := ipc.NewSentinel("thing revoked", os.ErrClosed, unix.EBADF, unix.ESTALE)
	err := ipc.Wrap("call", "/x", s)
	for _, target := range []error{s, unix.EBADF, unix.ESTALE, os.ErrClosed} {
		if !errors.Is(err, target) {
			t.Errorf("%v does not match %v", err, target)
		}
	}
	for _, target := range []error{unix.EINVAL, os.ErrPermission, ipc.ErrRemoved, ipc.NewSentinel("thing revoked", os.ErrClosed, unix.EBADF)} {
		if errors.Is(err, target) {
			t.Errorf("%v matches %v", err, target)
		}
	}
	if got := err.Error(); got != "call /x: thing revoked" {
		t.Errorf("text %q", got)
	}
	if errors.Is(ipc.Wrap("call", "/x", ipc.NewSentinel("plain", nil)), os.ErrClosed) {
		t.Error("a sentinel without another error matches os.ErrClosed")
	}
}
