package ipctest

import (
	"errors"
	"strings"
	"testing"

	"github.com/ipclab/ipclab/ipc"
)

// CheckOpError fails t unless err is an *ipc.OpError whose text is one line and that
// matches every target: the shape of every bad-input error the packages return.
func CheckOpError(t testing.TB, what string, err error, targets ...error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error", what)
		return
	}
	var oe *ipc.OpError
	if !errors.As(err, &oe) {
		t.Errorf("%s: %T (%v) is not an *ipc.OpError", what, err, err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("%s: error text has a newline: %q", what, err.Error())
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Errorf("%s: %q does not match %v", what, err, target)
		}
	}
}
