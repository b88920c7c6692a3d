package doors

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
)

// TestSentinels: the package's errors are ipc sentinels and match what they always
// matched, whether the client found the condition itself or the server reported it
// in an error frame (codeError), and each maps back to its own wire code.
func TestSentinels(t *testing.T) {
	for _, c := range []struct {
		s     *ipc.Sentinel
		code  uint32
		text  string
		match []error
		not   []error
	}{
		{ErrRevoked, codeRevoked, "door revoked", []error{unix.EBADF, os.ErrClosed}, []error{os.ErrPermission, unix.EACCES}},
		{ErrPermission, codePerm, "caller not allowed by the door's policy", []error{unix.EACCES, os.ErrPermission}, []error{os.ErrClosed, unix.EBADF}},
		{ErrTooBig, codeTooBig, "door data or descriptors over the limit", []error{unix.E2BIG}, []error{os.ErrClosed, ipc.ErrInvalid}},
		{ErrFdsRefused, codeFdsRefused, "door refuses descriptors", []error{unix.ENOTSUP}, []error{os.ErrClosed, unix.E2BIG}},
		{ErrProtocol, codeProtocol, "door protocol violation", []error{unix.EPROTO}, []error{os.ErrClosed, ErrNotDoor}},
	} {
		for _, err := range []error{
			&ipc.OpError{Op: "door call", Object: "/d", Err: c.s},
			&ipc.OpError{Op: "door call", Object: "/d", Err: codeError(c.code, nil)},
		} {
			for _, target := range append([]error{c.s}, c.match...) {
				if !errors.Is(err, target) {
					t.Errorf("%v does not match %v", err, target)
				}
			}
			for _, target := range c.not {
				if errors.Is(err, target) {
					t.Errorf("%v matches %v", err, target)
				}
			}
		}
		if got := c.s.Error(); got != c.text {
			t.Errorf("text %q, want %q", got, c.text)
		}
		if got := errorCode(c.s); got != c.code {
			t.Errorf("%v goes on the wire as code %d, want %d", c.s, got, c.code)
		}
	}
	if got := errorCode(unix.EBADF); got != codeHandler {
		t.Errorf("a handler's own EBADF goes on the wire as code %d, want the handler code %d", got, codeHandler)
	}
	if !errors.Is(&notDoorError{"a FIFO", unix.ECONNREFUSED}, ErrNotDoor) || errors.Is(ErrNotDoor, os.ErrClosed) {
		t.Error("ErrNotDoor matches wrongly")
	}
}
