package sockets

import (
	"context"
	"net"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sockio"
	"github.com/ipclab/ipclab/internal/sys"
)

// recvResult is what one recvmsg delivered.
type recvResult struct {
	n       int
	nfds    int
	cred    Cred
	hasCred bool
}

// recv is the receive path of every call that is more than a plain receive: it
// collects up to len(fds) descriptors, the sender's credentials with PassCred, and
// with wantFrom the sender's address (which it allocates), and applies a datagram
// socket's peer policy (see sockio.Conn.RecvMsg). It allocates nothing otherwise.
func (b *base) recv(ctx context.Context, p []byte, fds []int, nowait, wantFrom bool) (r recvResult, from net.Addr, err error) {
	var addr sys.Addr
	var ap *sys.Addr
	if wantFrom {
		ap = &addr
	}
	res, err := b.c.RecvMsg(ctx, p, fds, ap, nowait)
	r = recvResult{n: res.N, nfds: res.Nfds, hasCred: res.HasCred,
		cred: Cred{Pid: res.Cred.Pid, Uid: res.Cred.Uid, Gid: res.Cred.Gid}}
	if err != nil {
		return r, nil, err
	}
	if dgramPolicy(b.sotype, b.cfg) {
		if !r.hasCred {
			sockio.CloseFds(fds[:r.nfds])
			return recvResult{}, nil, ErrNoCred
		}
		if perr := b.applyPolicy(r.cred); perr != nil {
			sockio.CloseFds(fds[:r.nfds])
			return recvResult{}, nil, perr
		}
	}
	if wantFrom {
		from = toNetAddr(&addr, b.sotype)
	}
	return r, from, nil
}

// plainRecv is a receive of data alone: the engine's hot path, unless a datagram
// policy needs every sender's credentials. It does not allocate.
func (b *base) plainRecv(ctx context.Context, p []byte) (int, error) {
	if dgramPolicy(b.sotype, b.cfg) {
		r, _, err := b.recv(ctx, p, nil, false, false)
		return r.n, err
	}
	return b.c.Recv(ctx, p)
}

// tryRecv is plainRecv without waiting.
func (b *base) tryRecv(p []byte) (int, error) {
	if dgramPolicy(b.sotype, b.cfg) {
		r, _, err := b.recv(context.Background(), p, nil, true, false)
		return r.n, err
	}
	return b.c.TryRecv(p)
}

// send is the send path of every call: sendmsg(2) with MSG_NOSIGNAL (a gone peer is
// ErrPeerGone, never SIGPIPE), descriptors and credentials as control messages, to
// the address to when not nil (see sockio.Conn.SendMsg). It allocates nothing.
func (b *base) send(ctx context.Context, p []byte, fds []int, cred *Cred, to net.Addr, nowait bool) (int, error) {
	var uc *unix.Ucred
	if cred != nil {
		uc = &unix.Ucred{Pid: cred.Pid, Uid: cred.Uid, Gid: cred.Gid}
	}
	if to == nil {
		return b.c.SendMsg(ctx, p, fds, uc, nil, nowait)
	}
	var addr sys.Addr
	if err := setNetAddr(&addr, to, b.family, b.cfg.inet); err != nil {
		return 0, err
	}
	return b.c.SendMsg(ctx, p, fds, uc, &addr, nowait)
}

// sendAll sends all of p on a stream, the descriptors and credentials with the first
// part; on other socket types a message goes in one call.
func (b *base) sendAll(ctx context.Context, p []byte, fds []int, cred *Cred) (int, error) {
	n, err := b.send(ctx, p, fds, cred, nil, false)
	if b.sotype != unix.SOCK_STREAM {
		return n, err
	}
	for err == nil && n < len(p) {
		var m int
		m, err = b.c.Send(ctx, p[n:])
		n += m
	}
	return n, err
}

// ReadMsg receives data into p and up to len(fds) descriptors (at most the WithMaxFds
// cap) into fds, waiting until something arrives, ctx ends or the read deadline
// passes. It returns the byte count and the number of descriptors stored. Received
// descriptors are close-on-exec (MSG_CMSG_CLOEXEC) and owned by the caller.
//
// On a stream, a read returns at most up to the next message that carried
// descriptors, and io.EOF when the peer has closed. On seqpacket and datagram sockets
// it returns one message; a message longer than p is an error matching
// ipc.ErrTruncated (the rest is lost). More descriptors than fds can take, or a
// truncated control buffer, close every received descriptor and return
// ErrUnexpectedFds or ErrControlTruncated; on any error no descriptor is left open.
// It does not allocate.
func (b *base) ReadMsg(ctx context.Context, p []byte, fds []int) (n, nfds int, err error) {
	r, _, err := b.recv(ctx, p, fds, false, false)
	if err != nil {
		return r.n, 0, b.wrap("recvmsg", err)
	}
	return r.n, r.nfds, nil
}

// WriteMsg sends p with the descriptors fds (SCM_RIGHTS) attached, waiting for
// buffer space until ctx ends or the write deadline passes. On a stream all of p is
// written (the descriptors travel with its first byte); p must not be empty when fds
// is not. Sending AF_UNIX sockets inside SCM_RIGHTS can build reference cycles only
// the kernel's garbage collector reclaims; avoid it. It does not allocate.
func (b *base) WriteMsg(ctx context.Context, p []byte, fds []int) (int, error) {
	n, err := b.sendAll(ctx, p, fds, nil)
	return n, b.wrap("sendmsg", err)
}

// ReadMsgCred is ReadMsg that also returns the sender's credentials for this
// message (SCM_CREDENTIALS). The socket needs PassCred (or SetPassCred) before the
// message is sent; without credentials it returns ErrNoCred. It does not allocate.
func (b *base) ReadMsgCred(ctx context.Context, p []byte, fds []int) (n, nfds int, cred Cred, err error) {
	r, _, err := b.recv(ctx, p, fds, false, false)
	if err == nil && !r.hasCred {
		sockio.CloseFds(fds[:r.nfds])
		r, err = recvResult{}, ErrNoCred
	}
	if err != nil {
		return r.n, 0, Cred{}, b.wrap("recvmsg", err)
	}
	return r.n, r.nfds, r.cred, nil
}

// WriteMsgCred is WriteMsg with explicit credentials attached (SCM_CREDENTIALS). The
// kernel accepts only the sender's own pid, uid and gid (real, effective or saved)
// unless it is privileged (CAP_SYS_ADMIN for the pid, CAP_SETUID/CAP_SETGID for the
// ids); anything else fails with unix.EPERM.
func (b *base) WriteMsgCred(ctx context.Context, p []byte, fds []int, cred Cred) (int, error) {
	n, err := b.sendAll(ctx, p, fds, &cred)
	return n, b.wrap("sendmsg", err)
}

// SetPassCred turns SO_PASSCRED on or off (see PassCred).
func (b *base) SetPassCred(on bool) error {
	on = on || dgramPolicy(b.sotype, b.cfg) // the policy needs every datagram's credentials
	return b.wrap("setsockopt SO_PASSCRED", b.c.SetPassCred(on))
}
