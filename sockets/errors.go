package sockets

import "github.com/ipclab/ipclab/ipc"

// sentinel is an error value callers test with errors.Is; also is a broader error it
// matches too.
type sentinel struct {
	msg  string
	also error
}

func (s *sentinel) Error() string        { return s.msg }
func (s *sentinel) Is(target error) bool { return s.also != nil && target == s.also }

var (
	// ErrControlTruncated is returned when a received message's control data did not
	// fit (MSG_CTRUNC): descriptors were lost. Every descriptor that did arrive has
	// been closed and the connection shut down, since the stream of messages can no
	// longer be trusted. It matches ipc.ErrTruncated.
	ErrControlTruncated error = &sentinel{"control message truncated (MSG_CTRUNC); received descriptors closed", ipc.ErrTruncated}

	// ErrUnexpectedFds is returned when a message carried more descriptors than the
	// caller's buffer could take, or any when it passed none. All of them have been
	// closed and the connection shut down.
	ErrUnexpectedFds error = &sentinel{"unexpected descriptors received; all closed", nil}

	// ErrPeerRejected is returned when a peer's credentials fail the PeerPolicy; the
	// connection (or message) has been dropped.
	ErrPeerRejected error = &sentinel{"peer credentials rejected by policy", nil}

	// ErrNoCred is returned by ReadMsgCred when a message arrived without
	// credentials (SO_PASSCRED was not set when it was sent).
	ErrNoCred error = &sentinel{"message carried no credentials (enable PassCred)", nil}
)
