package sockets

import (
	"context"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

// ListenTCP listens for TCP connections on addr, "127.x.y.z:port" (port 0 picks a
// free one; see Addr). Only loopback addresses are accepted (and those of
// AllowInetPrefix). Accepted connections
// have TCP_NODELAY set.
func ListenTCP(addr string, opts ...Option) (*StreamListener, error) {
	c, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	fd, err := bindInet4(unix.SOCK_STREAM, addr, "listen", c.inet)
	if err != nil {
		return nil, err
	}
	if err := unix.Listen(fd, c.backlog); err != nil {
		unix.Close(fd)
		return nil, ipc.Wrap("listen", addr, err)
	}
	l, err := newListener(fd, unix.AF_INET, unix.SOCK_STREAM, nil, c)
	if err != nil {
		return nil, err
	}
	return &StreamListener{l}, nil
}

// DialTCP connects to addr, a loopback "127.x.y.z:port", with TCP_NODELAY set.
func DialTCP(ctx context.Context, addr string, opts ...Option) (*StreamConn, error) {
	b, err := dialInet4(ctx, unix.SOCK_STREAM, addr, opts)
	if err != nil {
		return nil, err
	}
	return newStream(b), nil
}

// ListenUDP binds a UDP socket to addr, a loopback "127.x.y.z:port".
func ListenUDP(addr string, opts ...Option) (*DgramConn, error) {
	c, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	fd, err := bindInet4(unix.SOCK_DGRAM, addr, "bind", c.inet)
	if err != nil {
		return nil, err
	}
	b, err := newBase(fd, unix.AF_INET, unix.SOCK_DGRAM, c)
	if err != nil {
		return nil, err
	}
	return newDgram(b), nil
}

// DialUDP connects a UDP socket to addr, a loopback "127.x.y.z:port".
func DialUDP(ctx context.Context, addr string, opts ...Option) (*DgramConn, error) {
	b, err := dialInet4(ctx, unix.SOCK_DGRAM, addr, opts)
	if err != nil {
		return nil, err
	}
	return newDgram(b), nil
}

// dialInet4 connects a socket of sotype to addr, a loopback "127.x.y.z:port".
func dialInet4(ctx context.Context, sotype int, addr string, opts []Option) (*base, error) {
	c, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	var a sys.Addr
	if err := setInet4(&a, addr, false, c.inet); err != nil {
		return nil, &ipc.OpError{Op: "connect", Object: addr, Err: err}
	}
	return dial(ctx, unix.AF_INET, sotype, &a, addr, c)
}

// bindInet4 makes a close-on-exec IPv4 socket of sotype bound to addr, a loopback
// "127.x.y.z:port"; op names the caller's operation in an address error.
func bindInet4(sotype int, addr, op string, allow netip.Prefix) (int, error) {
	var a sys.Addr
	if err := setInet4(&a, addr, false, allow); err != nil {
		return -1, &ipc.OpError{Op: op, Object: addr, Err: err}
	}
	proto := "tcp"
	if sotype == unix.SOCK_DGRAM {
		proto = "udp"
	}
	fd, err := unix.Socket(unix.AF_INET, sotype|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, ipc.Wrap("socket", proto, err)
	}
	if err := sys.Bind(fd, &a); err != nil {
		unix.Close(fd)
		return -1, ipc.Wrap("bind", addr, err)
	}
	return fd, nil
}
