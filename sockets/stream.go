package sockets

import (
	"context"
	"net"

	"golang.org/x/sys/unix"
)

// StreamConn is a connected byte stream: a Unix SOCK_STREAM socket or a TCP
// connection on loopback. It is a net.Conn (Read and Write honour the deadlines) and
// safe for concurrent use. Every send uses MSG_NOSIGNAL, so writing to a connection
// whose peer has gone returns an error matching ipc.ErrPeerGone instead of raising
// SIGPIPE.
type StreamConn struct {
	*base
}

var _ net.Conn = (*StreamConn)(nil)

func newStream(b *base) *StreamConn { return &StreamConn{base: b} }

// Read reads up to len(p) bytes, waiting for data until the read deadline. It
// returns io.EOF once the peer has shut down its writing side and everything sent has
// been read. It does not allocate.
func (c *StreamConn) Read(p []byte) (int, error) {
	return c.ReadContext(context.Background(), p)
}

// ReadContext is Read that also gives up when ctx ends.
func (c *StreamConn) ReadContext(ctx context.Context, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := c.c.Recv(ctx, p)
	return n, c.wrap("read", err)
}

// TryRead reads what is available without waiting: ipc.ErrWouldBlock if nothing is.
func (c *StreamConn) TryRead(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := c.c.TryRecv(p)
	return n, c.wrap("read", err)
}

// Write writes all of p (sendmsg with MSG_NOSIGNAL), waiting for buffer space until
// the write deadline. It does not allocate.
func (c *StreamConn) Write(p []byte) (int, error) {
	return c.WriteContext(context.Background(), p)
}

// WriteContext is Write that also gives up when ctx ends; it returns how much was
// written by then.
func (c *StreamConn) WriteContext(ctx context.Context, p []byte) (int, error) {
	done := 0
	for {
		n, err := c.c.Send(ctx, p[done:])
		done += n
		if err != nil {
			return done, c.wrap("write", err)
		}
		if done >= len(p) {
			return done, nil
		}
	}
}

// TryWrite writes what fits now without waiting; ipc.ErrWouldBlock if nothing does.
func (c *StreamConn) TryWrite(p []byte) (int, error) {
	n, err := c.c.TrySend(p)
	return n, c.wrap("write", err)
}

// CloseRead shuts down the reading side (shutdown(SHUT_RD)).
func (c *StreamConn) CloseRead() error { return c.shutdown(unix.SHUT_RD) }

// CloseWrite shuts down the writing side (shutdown(SHUT_WR)); the peer reads io.EOF.
func (c *StreamConn) CloseWrite() error { return c.shutdown(unix.SHUT_WR) }

// SetNoDelay sets TCP_NODELAY (on by default for TCP: latency is the point on
// loopback). It fails on Unix sockets.
func (c *StreamConn) SetNoDelay(on bool) error {
	v := 0
	if on {
		v = 1
	}
	return c.wrap("setsockopt TCP_NODELAY", c.control(func(fd int) error {
		return unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, v)
	}))
}
