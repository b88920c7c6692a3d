package doors

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
)

var (
	// ErrRevoked is returned by calls on a revoked door: calls in flight when
	// Revoke ran and every call after it. It matches unix.EBADF (what door_call(3C)
	// returns) and os.ErrClosed.
	ErrRevoked = errors.New("door revoked")

	// ErrPermission is returned when the caller's credentials fail the door's
	// policy (by default: another uid than the server's). It matches unix.EACCES and
	// os.ErrPermission.
	ErrPermission = errors.New("caller not allowed by the door's policy")

	// ErrTooBig is returned when an argument exceeds the door's MaxData, a result
	// exceeds the caller's MaxResult, or too many descriptors are passed. It matches
	// unix.E2BIG.
	ErrTooBig = errors.New("door data or descriptors over the limit")

	// ErrFdsRefused is returned when descriptors are passed to a door that refuses
	// them (RefuseFds). It matches unix.ENOTSUP.
	ErrFdsRefused = errors.New("door refuses descriptors")

	// ErrProtocol is returned when the peer sent a malformed frame; the connection
	// is closed. It matches unix.EPROTO.
	ErrProtocol = errors.New("door protocol violation")

	// ErrNotDoor is returned by Open and NewClient for an object that is not a
	// door: a path that is no socket, a socket of another type than seqpacket, or
	// a seqpacket server that does not answer the door handshake. The error also
	// matches what showed it (unix.ECONNREFUSED, unix.EPROTOTYPE, unix.ENOTSOCK,
	// ipc.ErrInvalid or ErrProtocol).
	ErrNotDoor = errors.New("not a door")
)

// HandlerError carries the text of an error a door's handler returned.
type HandlerError struct {
	Msg string
}

func (e *HandlerError) Error() string { return "door handler: " + e.Msg }

// errIs lets the package's sentinels match their errnos.
type codeErr struct {
	err   error
	errno unix.Errno
	also  error
}

func (e *codeErr) Error() string { return e.err.Error() }
func (e *codeErr) Unwrap() []error {
	if e.also != nil {
		return []error{e.err, e.errno, e.also}
	}
	return []error{e.err, e.errno}
}

var (
	errRevoked    = &codeErr{ErrRevoked, unix.EBADF, os.ErrClosed}
	errPermission = &codeErr{ErrPermission, unix.EACCES, os.ErrPermission}
	errTooBig     = &codeErr{ErrTooBig, unix.E2BIG, nil}
	errFdsRefused = &codeErr{ErrFdsRefused, unix.ENOTSUP, nil}
	errProtocol   = &codeErr{ErrProtocol, unix.EPROTO, nil}
	// errGone is a vanished server (end of file on the connection).
	errGone = ipc.MapErrno(unix.ECONNRESET)
)

// codeError maps an error frame to the caller's error.
func codeError(code uint32, msg []byte) error {
	switch code {
	case codePerm:
		return errPermission
	case codeRevoked:
		return errRevoked
	case codeTooBig:
		return errTooBig
	case codeFdsRefused:
		return errFdsRefused
	case codeHandler:
		return &HandlerError{Msg: string(msg)}
	}
	return errProtocol
}

// errorCode maps a server-side failure to an error frame's code.
func errorCode(err error) uint32 {
	switch {
	case errors.Is(err, ErrRevoked):
		return codeRevoked
	case errors.Is(err, ErrPermission):
		return codePerm
	case errors.Is(err, ErrTooBig):
		return codeTooBig
	case errors.Is(err, ErrFdsRefused):
		return codeFdsRefused
	case errors.Is(err, ErrProtocol):
		return codeProtocol
	}
	return codeHandler
}
