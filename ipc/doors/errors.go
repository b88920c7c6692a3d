package doors

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
)

// The package's sentinels are ipc sentinels (ipc.NewSentinel): each matches, with
// errors.Is, itself and the errno door_call(3C) would return, and, where one
// exists, the os error a caller may test instead. Calls return them inside an
// *ipc.OpError, like every ipclab error; a failure reported by the server (an
// error frame) maps back to the same value, so errors.Is gives the same answer for
// a condition found by the client and one reported by the server.
var (
	// ErrRevoked is returned by calls on a revoked door: calls in flight when
	// Revoke ran and every call after it. It matches unix.EBADF (what door_call(3C)
	// returns) and os.ErrClosed.
	ErrRevoked = ipc.NewSentinel("door revoked", os.ErrClosed, unix.EBADF)

	// ErrPermission is returned when the caller's credentials fail the door's
	// policy (by default: another uid than the server's). It matches unix.EACCES and
	// os.ErrPermission.
	ErrPermission = ipc.NewSentinel("caller not allowed by the door's policy", os.ErrPermission, unix.EACCES)

	// ErrTooBig is returned when an argument exceeds the door's MaxData, a result
	// exceeds the caller's MaxResult, or too many descriptors are passed. It matches
	// unix.E2BIG.
	ErrTooBig = ipc.NewSentinel("door data or descriptors over the limit", nil, unix.E2BIG)

	// ErrFdsRefused is returned when descriptors are passed to a door that refuses
	// them (RefuseFds). It matches unix.ENOTSUP.
	ErrFdsRefused = ipc.NewSentinel("door refuses descriptors", nil, unix.ENOTSUP)

	// ErrProtocol is returned when the peer sent a malformed frame; the connection
	// is closed. It matches unix.EPROTO.
	ErrProtocol = ipc.NewSentinel("door protocol violation", nil, unix.EPROTO)

	// ErrNotDoor is returned by Open and NewClient for an object that is not a
	// door: a path that is no socket, a socket of another type than seqpacket, or
	// a seqpacket server that does not answer the door handshake. The error also
	// matches what showed it (unix.ECONNREFUSED, unix.EPROTOTYPE, unix.ENOTSOCK,
	// ipc.ErrInvalid or ErrProtocol).
	ErrNotDoor = ipc.NewSentinel("not a door", nil)
)

// HandlerError carries the text of an error a door's handler returned.
type HandlerError struct {
	Msg string
}

func (e *HandlerError) Error() string { return "door handler: " + e.Msg }

// errGone is a vanished server (end of file on the connection).
var errGone = ipc.MapErrno(unix.ECONNRESET)

// codeError maps an error frame to the caller's error.
func codeError(code uint32, msg []byte) error {
	switch code {
	case codePerm:
		return ErrPermission
	case codeRevoked:
		return ErrRevoked
	case codeTooBig:
		return ErrTooBig
	case codeFdsRefused:
		return ErrFdsRefused
	case codeHandler:
		return &HandlerError{Msg: string(msg)}
	}
	return ErrProtocol
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
