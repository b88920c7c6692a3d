package sockets

import (
	"context"

	"github.com/ipclab/ipclab/internal/sockio"
)

// Exchange is the engine's request/reply pair (sockio.Conn.Exchange, what a door
// client's call is) on a SeqpacketConn, with the errors the package's methods give:
// an *ipc.OpError whose Op, "sendmsg" or "recvmsg", says which call failed.
func (c *SeqpacketConn) Exchange(ctx context.Context, req, resp []byte) (int, error) {
	n, sent, err := c.c.Exchange(ctx, req, resp)
	if !sent {
		return 0, c.wrap("sendmsg", err)
	}
	return n, c.wrap("recvmsg", err)
}

// SendReadMsgCred is the engine's reply-and-receive pair (sockio.Conn.SendRecvMsg,
// what a door server's loop is) on a SeqpacketConn, with ReadMsgCred's results.
func (c *SeqpacketConn) SendReadMsgCred(ctx context.Context, out, p []byte, fds []int) (n, nfds int, cred Cred, err error) {
	r, sent, err := c.c.SendRecvMsg(ctx, out, p, fds)
	if !sent {
		return 0, 0, Cred{}, c.wrap("sendmsg", err)
	}
	if err == nil && !r.HasCred {
		sockio.CloseFds(fds[:r.Nfds])
		err = ErrNoCred
	}
	if err != nil {
		return r.N, 0, Cred{}, c.wrap("recvmsg", err)
	}
	return r.N, r.Nfds, Cred{Pid: r.Cred.Pid, Uid: r.Cred.Uid, Gid: r.Cred.Gid}, nil
}

// parseControl is sockio.ParseControl with the package's Cred.
func parseControl(oob []byte, fds []int) (nfds int, extra bool, cred Cred, hasCred bool) {
	nfds, extra, uc, hasCred := sockio.ParseControl(oob, fds)
	return nfds, extra, Cred{Pid: uc.Pid, Uid: uc.Uid, Gid: uc.Gid}, hasCred
}

var closeFds = sockio.CloseFds
