package sockets

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
)

// Socketpair is socketpair(2), the raw layer beneath the *Pair constructors: it
// returns two connected descriptors, always close-on-exec. typ is a socket type
// optionally or'ed with unix.SOCK_NONBLOCK; other flag bits are rejected before the
// call (ipc.ErrInvalid). Errors are the kernel's: unix.EAFNOSUPPORT for a domain
// without pairs, unix.EOPNOTSUPP for TCP or UDP, unix.EPROTONOSUPPORT for a
// mismatched protocol.
func Socketpair(domain, typ, proto int) ([2]int, error) {
	const typeMask = 0xf
	if typ&^(typeMask|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC) != 0 || typ&typeMask == 0 {
		return [2]int{-1, -1}, &ipc.OpError{Op: "socketpair", Err: fmt.Errorf("type %#x: %w", typ, ipc.ErrInvalid)}
	}
	fds, err := unix.Socketpair(domain, typ|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return [2]int{-1, -1}, ipc.Wrap("socketpair", fmt.Sprintf("domain %d type %#x proto %d", domain, typ, proto), err)
	}
	return fds, nil
}

func pair(sotype int, opts []Option) (*base, *base, error) {
	c, err := buildConfig(opts)
	if err != nil {
		return nil, nil, err
	}
	fds, err := Socketpair(unix.AF_UNIX, sotype, 0)
	if err != nil {
		return nil, nil, err
	}
	a, err := newBase(fds[0], unix.AF_UNIX, sotype, c)
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	b, err := newBase(fds[1], unix.AF_UNIX, sotype, c)
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	return a, b, nil
}

// StreamPair returns two connected Unix stream sockets (socketpair(2)), for a parent
// and the child it hands one end to (see File).
func StreamPair(opts ...Option) (*StreamConn, *StreamConn, error) {
	a, b, err := pair(unix.SOCK_STREAM, opts)
	if err != nil {
		return nil, nil, err
	}
	return newStream(a), newStream(b), nil
}

// SeqpacketPair returns two connected Unix seqpacket sockets.
func SeqpacketPair(opts ...Option) (*SeqpacketConn, *SeqpacketConn, error) {
	a, b, err := pair(unix.SOCK_SEQPACKET, opts)
	if err != nil {
		return nil, nil, err
	}
	return newSeqpacket(a), newSeqpacket(b), nil
}

// DgramPair returns two connected Unix datagram sockets.
func DgramPair(opts ...Option) (*DgramConn, *DgramConn, error) {
	a, b, err := pair(unix.SOCK_DGRAM, opts)
	if err != nil {
		return nil, nil, err
	}
	return newDgram(a), newDgram(b), nil
}
