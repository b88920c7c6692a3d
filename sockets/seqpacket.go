package sockets

import (
	"context"

	"golang.org/x/sys/unix"
)

// SeqpacketConn is a connected Unix SOCK_SEQPACKET socket: reliable, ordered
// messages with boundaries, as doors use. A receive returns exactly one message; a
// buffer too short for it is an error matching ipc.ErrTruncated and the rest of the
// message is lost (so size buffers for the largest message). Messages must not be
// empty (an empty read means the peer has gone: io.EOF). Descriptors and credentials
// travel with ReadMsg/WriteMsg and ReadMsgCred/WriteMsgCred. Safe for concurrent use.
type SeqpacketConn struct {
	*base
}

func newSeqpacket(b *base) *SeqpacketConn { return &SeqpacketConn{base: b} }

// Send sends p as one message (sendmsg with MSG_NOSIGNAL), waiting for buffer space
// until ctx ends or the write deadline passes. It does not allocate.
func (c *SeqpacketConn) Send(ctx context.Context, p []byte) error {
	_, err := c.c.Send(ctx, p)
	return c.wrap("sendmsg", err)
}

// TrySend sends p without waiting: ipc.ErrWouldBlock if there is no room.
func (c *SeqpacketConn) TrySend(p []byte) error {
	_, err := c.c.TrySend(p)
	return c.wrap("sendmsg", err)
}

// Recv receives one message into p and returns its length; io.EOF once the peer has
// closed. It does not allocate.
func (c *SeqpacketConn) Recv(ctx context.Context, p []byte) (int, error) {
	n, err := c.c.Recv(ctx, p)
	return n, c.wrap("recvmsg", err)
}

// TryRecv receives one message without waiting: ipc.ErrWouldBlock if none is queued.
func (c *SeqpacketConn) TryRecv(p []byte) (int, error) {
	n, err := c.c.TryRecv(p)
	return n, c.wrap("recvmsg", err)
}

// CloseRead shuts down the receiving side (shutdown(SHUT_RD)): later receives return
// io.EOF at once.
func (c *SeqpacketConn) CloseRead() error { return c.shutdown(unix.SHUT_RD) }

// CloseWrite shuts down the sending side (shutdown(SHUT_WR)): the peer, once it has
// received every message sent before, reads io.EOF; sending further fails with an
// error matching ipc.ErrPeerGone.
func (c *SeqpacketConn) CloseWrite() error { return c.shutdown(unix.SHUT_WR) }
