package sockets

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/internal/wait"
	"github.com/ipclab/ipclab/ipc"
)

// connect is connect(2) on a blocking socket, cancellable: the thread blocks in the
// kernel (a Unix connect waits there while the listener's backlog is full) and ctx
// interrupts it (internal/wait). A TCP connect interrupted by a signal goes on in the
// background, so EALREADY waits for it with poll(2) and EISCONN means done.
func connect(ctx context.Context, fd int, a *sys.Addr) error {
	var ws wait.Set
	return ws.Do(ctx, func() error {
		err := sys.Connect(fd, a)
		switch err {
		case unix.EISCONN:
			return nil
		case unix.EALREADY, unix.EINPROGRESS:
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
			if _, err := unix.Poll(pfd, -1); err != nil {
				return err
			}
			soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
			if err != nil {
				return err
			}
			if soerr != 0 {
				return unix.Errno(soerr)
			}
			return nil
		}
		return err
	})
}

// dial is socket(2) + optional autobind + connect(2), then the peer policy.
func dial(ctx context.Context, family, sotype int, a *sys.Addr, name string, c config) (*base, error) {
	kind := kindName(family, sotype)
	fd, err := unix.Socket(family, sotype|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, ipc.Wrap("socket", kind, err)
	}
	if c.autobind && family == unix.AF_UNIX {
		var any sys.Addr
		_ = any.SetUnix("")
		if err := sys.Bind(fd, &any); err != nil {
			unix.Close(fd)
			return nil, ipc.Wrap("bind", "@(autobind)", err)
		}
	}
	if err := connect(ctx, fd, a); err != nil {
		unix.Close(fd)
		return nil, ipc.Wrap("connect", kind+" "+name, err)
	}
	if family == unix.AF_INET && sotype == unix.SOCK_STREAM {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
			unix.Close(fd)
			return nil, ipc.Wrap("setsockopt TCP_NODELAY", kind+" "+name, err)
		}
	}
	b, err := newBase(fd, family, sotype, c)
	if err != nil {
		return nil, err
	}
	if sotype != unix.SOCK_DGRAM {
		if err := b.checkPeer(); err != nil {
			b.Close()
			return nil, err
		}
	}
	return b, nil
}

func dialUnix(ctx context.Context, sotype int, name string, opts []Option) (*base, error) {
	c, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	var a sys.Addr
	if err := setUnixName(&a, name, c.abstract); err != nil {
		return nil, &ipc.OpError{Op: "connect", Object: name, Err: err}
	}
	if name == "" {
		return nil, &ipc.OpError{Op: "connect", Err: fmt.Errorf("empty socket name: %w", ipc.ErrInvalid)}
	}
	return dial(ctx, unix.AF_UNIX, sotype, &a, name, c)
}

// DialStream connects to the Unix stream listener at name, waiting (while its
// backlog is full) until ctx ends. An abstract "@name" needs AllowAbstract, whose
// policy then vets the server's credentials: a squatter that bound the name first is
// refused with ErrPeerRejected.
func DialStream(ctx context.Context, name string, opts ...Option) (*StreamConn, error) {
	b, err := dialUnix(ctx, unix.SOCK_STREAM, name, opts)
	if err != nil {
		return nil, err
	}
	return newStream(b), nil
}

// DialSeqpacket connects to the Unix seqpacket listener at name (see DialStream).
func DialSeqpacket(ctx context.Context, name string, opts ...Option) (*SeqpacketConn, error) {
	b, err := dialUnix(ctx, unix.SOCK_SEQPACKET, name, opts)
	if err != nil {
		return nil, err
	}
	return newSeqpacket(b), nil
}

// DialDgram connects a Unix datagram socket to name, so Send needs no address. With
// AutoBind it first binds to a kernel-chosen abstract name, so the server can reply.
func DialDgram(ctx context.Context, name string, opts ...Option) (*DgramConn, error) {
	b, err := dialUnix(ctx, unix.SOCK_DGRAM, name, opts)
	if err != nil {
		return nil, err
	}
	return newDgram(b), nil
}
