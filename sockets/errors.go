package sockets

import "github.com/ipclab/ipclab/internal/sockio"

// sentinel is an error value callers test with errors.Is.
type sentinel struct{ msg string }

func (s *sentinel) Error() string { return s.msg }

var (
	// ErrControlTruncated is returned when a received message's control data did not
	// fit (MSG_CTRUNC): descriptors were lost. Every descriptor that did arrive has
	// been closed and the connection shut down, since the stream of messages can no
	// longer be trusted. It matches ipc.ErrTruncated.
	ErrControlTruncated = sockio.ErrControlTruncated

	// ErrUnexpectedFds is returned when a message carried more descriptors than the
	// caller's buffer could take, or any when it passed none. All of them have been
	// closed and the connection shut down.
	ErrUnexpectedFds = sockio.ErrUnexpectedFds

	// ErrPeerRejected is returned when a peer's credentials fail the PeerPolicy; the
	// connection (or message) has been dropped.
	ErrPeerRejected error = &sentinel{"peer credentials rejected by policy"}

	// ErrNoCred is returned by ReadMsgCred when a message arrived without
	// credentials (SO_PASSCRED was not set when it was sent).
	ErrNoCred = sockio.ErrNoCred
)
