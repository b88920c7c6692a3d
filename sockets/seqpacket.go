package sockets

import (
	"context"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
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
	if len(p) > 0 && c.canFastSend(ctx) {
		if _, ok, err := c.fastSend(p); ok {
			return c.wrapIO("sendmsg", err)
		}
		return c.sendFull(ctx, p) // no room: wait for some on the general path
	}
	_, err := c.send(ctx, p, nil, nil, nil, false)
	return c.wrapIO("sendmsg", err)
}

// sendFull sends p (not empty) on the general path, after a fast send found no
// room for it.
func (c *SeqpacketConn) sendFull(ctx context.Context, p []byte) error {
	_, err := c.sendSlow(ctx, p, nil, nil, nil, false)
	return c.wrapIO("sendmsg", err)
}

// TrySend sends p without waiting: ipc.ErrWouldBlock if there is no room.
func (c *SeqpacketConn) TrySend(p []byte) error {
	_, err := c.send(context.Background(), p, nil, nil, nil, true)
	return c.wrapIO("sendmsg", err)
}

// Recv receives one message into p and returns its length; io.EOF once the peer has
// closed. It does not allocate.
func (c *SeqpacketConn) Recv(ctx context.Context, p []byte) (int, error) {
	if c.canFastRecv(ctx) {
		r, err := c.fastRecv(p)
		return r.n, c.wrapIO("recvmsg", err)
	}
	n, _, err := c.ReadMsg(ctx, p, nil)
	return n, err
}

// Exchange sends req as one message and receives one message into resp, returning
// its length: Send followed by Recv, for request/reply protocols, with the errors
// of each (an *ipc.OpError whose Op, "sendmsg" or "recvmsg", says which failed; a
// failed receive means req was sent; end of file is a bare io.EOF, as from Recv).
// It is not atomic against other receivers on
// the connection: callers that share one serialise their exchanges. On a
// kernel-wait connection (ipc.WaitKernel) without PassCred or deadlines, and with a
// ctx that cannot end, both system calls run on the fast path back to back. It does
// not allocate.
func (c *SeqpacketConn) Exchange(ctx context.Context, req, resp []byte) (int, error) {
	if len(req) == 0 || !c.canFastRecv(ctx) || c.dl.Write.Load() != 0 {
		if err := c.Send(ctx, req); err != nil {
			return 0, err
		}
		return c.Recv(ctx, resp)
	}
	// The fast path (see fastpath.go), the receive written out here: after the
	// peer has run, every function on the way back from recvmsg costs cache misses.
	c.inflight.Add(1)
	if _, err := c.sendAnnounced(req); err != nil {
		c.inflight.Add(-1)
		if err != unix.EAGAIN {
			return 0, c.wrapIO("sendmsg", err)
		}
		if err := c.sendFull(ctx, req); err != nil { // no room: wait for some
			return 0, err
		}
		return c.Recv(ctx, resp)
	}
	for {
		if c.closed.Load() {
			c.inflight.Add(-1)
			return 0, c.wrapIO("recvmsg", errClosed)
		}
		if c.dl.Expired(false) { // set while the call waited (see setDeadline)
			c.inflight.Add(-1)
			return 0, c.wrapIO("recvmsg", os.ErrDeadlineExceeded)
		}
		n, rflags, errno := sys.RecvData(c.fd, resp, unix.MSG_CMSG_CLOEXEC|unix.MSG_TRUNC)
		if errno == 0 && n > 0 && rflags&(unix.MSG_CTRUNC|unix.MSG_TRUNC) == 0 {
			c.inflight.Add(-1)
			return n, nil
		}
		if errno != unix.EINTR {
			c.inflight.Add(-1)
			r, err := c.fastRecvEnd(resp, n, rflags, errno)
			return r.n, c.wrapIO("recvmsg", err)
		}
	}
}

// SendReadMsgCred sends out as one message, then receives as ReadMsgCred does: a
// server's reply and its wait for the next request in one call (the pattern of
// door_return). When the send fails, its error (an *ipc.OpError with Op "sendmsg")
// is returned before anything is received; otherwise the results are
// ReadMsgCred's. On a kernel-wait connection (ipc.WaitKernel) without deadlines,
// with a ctx that cannot end and room for at most 16 descriptors, both system calls
// run on the fast path back to back. It does not allocate.
func (c *SeqpacketConn) SendReadMsgCred(ctx context.Context, out, p []byte, fds []int) (n, nfds int, cred Cred, err error) {
	if len(out) == 0 || len(fds) > c.cfg.maxFds || !c.canFastSend(ctx) || !c.canFastRecvCtl(ctx, fds) {
		if err := c.Send(ctx, out); err != nil {
			return 0, 0, Cred{}, err
		}
		return c.ReadMsgCred(ctx, p, fds)
	}
	// The fast path (see fastpath.go), the receive written out here: after the
	// peer has run, every function on the way back from recvmsg costs cache misses.
	var buf [credSpace + fastFdSpace]byte
	oob := buf[:c.ctlSize(len(fds))]
	c.inflight.Add(1)
	if _, err := c.sendAnnounced(out); err != nil {
		c.inflight.Add(-1)
		if err != unix.EAGAIN {
			return 0, 0, Cred{}, c.wrapIO("sendmsg", err)
		}
		if err := c.sendFull(ctx, out); err != nil { // no room: wait for some
			return 0, 0, Cred{}, err
		}
		return c.ReadMsgCred(ctx, p, fds)
	}
	for {
		if c.closed.Load() {
			c.inflight.Add(-1)
			return 0, 0, Cred{}, c.wrapIO("recvmsg", errClosed)
		}
		n, oobn, rflags, e := sys.Recvmsg(c.fd, p, oob, nil, unix.MSG_CMSG_CLOEXEC|unix.MSG_TRUNC)
		if e != unix.EINTR {
			c.inflight.Add(-1)
			r, err := c.ctlResult(p, fds, oob[:oobn], n, rflags, e)
			return c.credResult(r, fds, err)
		}
	}
}

// TryRecv receives one message without waiting: ipc.ErrWouldBlock if none is queued.
func (c *SeqpacketConn) TryRecv(p []byte) (int, error) {
	r, _, err := c.recv(context.Background(), p, nil, true, false)
	return r.n, c.wrapIO("recvmsg", err)
}

// CloseRead shuts down the receiving side (shutdown(SHUT_RD)): later receives return
// io.EOF at once.
func (c *SeqpacketConn) CloseRead() error { return c.shutdown(unix.SHUT_RD) }

// CloseWrite shuts down the sending side (shutdown(SHUT_WR)): the peer, once it has
// received every message sent before, reads io.EOF; sending further fails with an
// error matching ipc.ErrPeerGone.
func (c *SeqpacketConn) CloseWrite() error { return c.shutdown(unix.SHUT_WR) }
