package sockets

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
)

// fromFile duplicates f's descriptor (close-on-exec) after checking it is a socket of
// the wanted type; f stays the caller's to close. A nil f is an error matching
// ipc.ErrInvalid.
func fromFile(f *os.File, sotype int, opts []Option, listening bool) (*base, ipc.WaitStrategy, error) {
	if f == nil {
		return nil, 0, &ipc.OpError{Op: "file", Err: fmt.Errorf("nil *os.File: %w", ipc.ErrInvalid)}
	}
	c, err := buildConfig(opts)
	if err != nil {
		return nil, 0, err
	}
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, 0, ipc.Wrap("dup", f.Name(), err)
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		unix.Close(fd)
		return nil, 0, ipc.Wrap("getsockopt SO_TYPE", f.Name(), err)
	}
	family, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		unix.Close(fd)
		return nil, 0, ipc.Wrap("getsockopt SO_DOMAIN", f.Name(), err)
	}
	if typ != sotype || (family != unix.AF_UNIX && family != unix.AF_INET) {
		unix.Close(fd)
		return nil, 0, &ipc.OpError{Op: "file", Object: f.Name(), Err: fmt.Errorf("socket is %s, want %s: %w",
			kindName(family, typ), kindName(family, sotype), ipc.ErrInvalid)}
	}
	wait := c.wait
	if listening && c.wait == ipc.WaitAuto {
		c.wait = ipc.WaitPoller // see newListener
	}
	b, err := newBase(fd, family, sotype, c)
	return b, wait, err
}

// FileStreamConn makes a *StreamConn of a duplicate of f, a connected stream socket
// (inherited from a parent or received with ReadMsg). f remains open. A nil f, or
// one that is not a stream socket, is an error matching ipc.ErrInvalid (or the
// errno, such as unix.ENOTSOCK), never a panic; the same holds for the other File
// constructors.
func FileStreamConn(f *os.File, opts ...Option) (*StreamConn, error) {
	b, _, err := fromFile(f, unix.SOCK_STREAM, opts, false)
	if err != nil {
		return nil, err
	}
	return newStream(b), nil
}

// FileSeqpacketConn makes a *SeqpacketConn of a duplicate of f.
func FileSeqpacketConn(f *os.File, opts ...Option) (*SeqpacketConn, error) {
	b, _, err := fromFile(f, unix.SOCK_SEQPACKET, opts, false)
	if err != nil {
		return nil, err
	}
	return newSeqpacket(b), nil
}

// FileDgramConn makes a *DgramConn of a duplicate of f.
func FileDgramConn(f *os.File, opts ...Option) (*DgramConn, error) {
	b, _, err := fromFile(f, unix.SOCK_DGRAM, opts, false)
	if err != nil {
		return nil, err
	}
	return newDgram(b), nil
}

// FileStreamListener makes a *StreamListener of a duplicate of f, a listening stream
// socket. Its Close does not remove any socket file: whoever bound it owns the path.
func FileStreamListener(f *os.File, opts ...Option) (*StreamListener, error) {
	b, wait, err := fromFile(f, unix.SOCK_STREAM, opts, true)
	if err != nil {
		return nil, err
	}
	return &StreamListener{&listener{b: b, wait: wait}}, nil
}
