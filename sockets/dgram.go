package sockets

import (
	"context"
	"fmt"
	"net"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
)

// DgramConn is a datagram socket: Unix SOCK_DGRAM (reliable and ordered on one host,
// with boundaries; a full receiver makes the sender wait) or UDP on loopback. It may
// be connected (Send/Recv talk to one peer) or not (SendTo/RecvFrom). A receive
// returns one datagram; one longer than the buffer is an error matching
// ipc.ErrTruncated, its rest lost. Zero-length datagrams are valid. Safe for
// concurrent use.
//
// With a PeerPolicy (WithPeerPolicy or AllowAbstract) a Unix datagram socket turns
// on SO_PASSCRED and checks the sender of every datagram; a rejected datagram is
// dropped and the receive returns an error matching ErrPeerRejected.
type DgramConn struct {
	*base
}

func newDgram(b *base) *DgramConn { return &DgramConn{base: b} }

// Send sends p to the connected peer, waiting for room until ctx ends or the write
// deadline passes. It does not allocate.
func (c *DgramConn) Send(ctx context.Context, p []byte) error {
	_, err := c.c.Send(ctx, p)
	return c.wrap("sendmsg", err)
}

// TrySend is Send without waiting: ipc.ErrWouldBlock if the peer's queue is full.
func (c *DgramConn) TrySend(p []byte) error {
	_, err := c.c.TrySend(p)
	return c.wrap("sendmsg", err)
}

// SendTo sends p to addr (*net.UnixAddr or *net.UDPAddr with a loopback or
// multicast IP). A connected socket refuses it with an error matching unix.EISCONN.
// It does not allocate.
func (c *DgramConn) SendTo(ctx context.Context, p []byte, addr net.Addr) error {
	if c.connected {
		return c.wrap("sendto", fmt.Errorf("socket is connected: %w", unix.EISCONN))
	}
	if addr == nil {
		return c.wrap("sendto", fmt.Errorf("no destination: %w", ipc.ErrInvalid))
	}
	_, err := c.send(ctx, p, nil, nil, addr, false)
	return c.wrap("sendto", err)
}

// Recv receives one datagram into p and returns its length. It does not allocate.
func (c *DgramConn) Recv(ctx context.Context, p []byte) (int, error) {
	n, err := c.plainRecv(ctx, p)
	return n, c.wrap("recvmsg", err)
}

// TryRecv is Recv without waiting: ipc.ErrWouldBlock if nothing is queued.
func (c *DgramConn) TryRecv(p []byte) (int, error) {
	n, err := c.tryRecv(p)
	return n, c.wrap("recvmsg", err)
}

// RecvFrom receives one datagram and its sender's address; the address is nil for
// an unnamed Unix sender (one that never bound). It allocates the address.
func (c *DgramConn) RecvFrom(ctx context.Context, p []byte) (int, net.Addr, error) {
	r, from, err := c.recv(ctx, p, nil, false, true)
	return r.n, from, c.wrap("recvmsg", err)
}
