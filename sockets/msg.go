package sockets

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

// recvResult is what one recvmsg delivered.
type recvResult struct {
	n       int
	nfds    int
	cred    Cred
	hasCred bool
}

// recv is the one receive path: recvmsg(2) with MSG_CMSG_CLOEXEC (and MSG_TRUNC on
// message sockets: see recvFlags) into p, with a control buffer sized for len(fds)
// descriptors (plus credentials with PassCred). It walks every control message;
// descriptors beyond len(fds), a truncated control buffer (MSG_CTRUNC) or truncated
// data (MSG_TRUNC) close every descriptor that arrived and return an error. A
// truncated message returns len(p) bytes, the data actually copied, and an error
// naming its real length. It allocates nothing unless wantFrom.
func (b *base) recv(ctx context.Context, p []byte, fds []int, nowait, wantFrom bool) (r recvResult, from net.Addr, err error) {
	if len(fds) > b.cfg.maxFds {
		return r, nil, fmt.Errorf("fd buffer of %d exceeds the cap of %d: %w", len(fds), b.cfg.maxFds, ipc.ErrInvalid)
	}
	if !nowait && !wantFrom {
		if len(fds) == 0 && b.canFastRecv(ctx) {
			r, err := b.fastRecv(p)
			return r, nil, err
		} else if b.canFastRecvCtl(ctx, fds) {
			r, err := b.fastRecvCtl(p, fds)
			return r, nil, err
		}
	}
	o := &b.rd
	if err := b.take(ctx, o, nowait); err != nil {
		return r, nil, err
	}
	defer o.turn.Give()
	oob := 0
	if len(fds) > 0 {
		oob = unix.CmsgSpace(4 * len(fds))
	}
	if b.wantCred.Load() {
		oob += unix.CmsgSpace(unix.SizeofUcred)
	}
	o.p, o.oob = p, o.buf[:oob]
	o.flags = int(b.recvFlags)
	if nowait {
		o.flags |= unix.MSG_DONTWAIT
	}
	o.to = nil
	if wantFrom {
		o.to = &o.addr
	}
	err = b.exec(ctx, o, nowait)
	o.p, o.oob = nil, nil
	if err != nil {
		return r, nil, err
	}
	r.n = o.n
	var extra bool
	r.nfds, extra, r.cred, r.hasCred = parseControl(o.buf[:o.oobn], fds)
	switch {
	case o.rflags&unix.MSG_CTRUNC != 0:
		closeFds(fds[:r.nfds])
		b.poison()
		return recvResult{}, nil, ErrControlTruncated
	case extra:
		closeFds(fds[:r.nfds])
		b.poison()
		return recvResult{}, nil, ErrUnexpectedFds
	case o.rflags&unix.MSG_TRUNC != 0:
		closeFds(fds[:r.nfds])
		return recvResult{n: len(p)}, nil, truncated(o.n, len(p))
	}
	if dgramPolicy(b.sotype, b.cfg) {
		if !r.hasCred {
			closeFds(fds[:r.nfds])
			return recvResult{}, nil, ErrNoCred
		}
		if perr := b.applyPolicy(r.cred); perr != nil {
			closeFds(fds[:r.nfds])
			return recvResult{}, nil, perr
		}
	}
	if r.n == 0 && len(p) > 0 && b.sotype != unix.SOCK_DGRAM {
		closeFds(fds[:r.nfds])
		return recvResult{}, nil, io.EOF
	}
	if wantFrom {
		from = toNetAddr(&o.addr, b.sotype)
	}
	return r, from, nil
}

// poison shuts a connection down after a protocol error, so neither side goes on
// with a stream whose descriptors were lost.
func (b *base) poison() {
	if b.sotype != unix.SOCK_DGRAM {
		_ = b.control(func(fd int) error { return unix.Shutdown(fd, unix.SHUT_RDWR) })
	}
}

// parseControl walks every control message, storing received descriptors in fds and
// closing those that do not fit (extra reports that some did not).
func parseControl(oob []byte, fds []int) (nfds int, extra bool, cred Cred, hasCred bool) {
	for len(oob) > 0 {
		level, typ, data, rest, ok := sys.ParseCmsg(oob)
		if !ok {
			break
		}
		oob = rest
		if level != unix.SOL_SOCKET {
			continue
		}
		switch typ {
		case unix.SCM_RIGHTS:
			for ; len(data) >= 4; data = data[4:] {
				fd := int(int32(binary.NativeEndian.Uint32(data)))
				if nfds < len(fds) {
					fds[nfds] = fd
					nfds++
				} else {
					unix.Close(fd)
					extra = true
				}
			}
		case unix.SCM_CREDENTIALS:
			if u, ok := sys.Ucred(data); ok {
				cred, hasCred = Cred{Pid: u.Pid, Uid: u.Uid, Gid: u.Gid}, true
			}
		case unix.SCM_PIDFD:
			if len(data) >= 4 {
				unix.Close(int(int32(binary.NativeEndian.Uint32(data))))
			}
		}
	}
	return nfds, extra, cred, hasCred
}

func closeFds(fds []int) {
	for i, fd := range fds {
		unix.Close(fd)
		fds[i] = -1
	}
}

// send is the one send path: sendmsg(2) with MSG_NOSIGNAL (a gone peer is
// ErrPeerGone, never SIGPIPE), descriptors as one SCM_RIGHTS message and, when cred
// is not nil, explicit SCM_CREDENTIALS (which the kernel checks: an unprivileged
// sender cannot claim another identity). It allocates nothing.
func (b *base) send(ctx context.Context, p []byte, fds []int, cred *Cred, to net.Addr, nowait bool) (int, error) {
	if len(fds) > b.cfg.maxFds {
		return 0, fmt.Errorf("%d descriptors exceed the cap of %d: %w", len(fds), b.cfg.maxFds, ipc.ErrInvalid)
	}
	for _, fd := range fds {
		if fd < 0 {
			return 0, fmt.Errorf("descriptor %d: %w", fd, unix.EBADF)
		}
	}
	if len(p) == 0 && b.sotype == unix.SOCK_SEQPACKET {
		return 0, fmt.Errorf("empty seqpacket message (indistinguishable from end of file): %w", ipc.ErrInvalid)
	}
	if (len(fds) > 0 || cred != nil) && len(p) == 0 && b.sotype != unix.SOCK_DGRAM {
		return 0, fmt.Errorf("control data needs at least one data byte on a connection: %w", ipc.ErrInvalid)
	}
	if len(fds) == 0 && cred == nil && to == nil && !nowait && b.canFastSend(ctx) {
		if n, ok, err := b.fastSend(p); ok {
			return n, err
		}
	}
	return b.sendSlow(ctx, p, fds, cred, to, nowait)
}

// sendSlow is send's general path (in the write op's turn), for arguments send
// has checked, once the fast path has been tried or ruled out.
func (b *base) sendSlow(ctx context.Context, p []byte, fds []int, cred *Cred, to net.Addr, nowait bool) (int, error) {
	o := &b.wr
	if err := b.take(ctx, o, nowait); err != nil {
		return 0, err
	}
	defer o.turn.Give()
	oob := 0
	if len(fds) > 0 {
		data := sys.PutCmsg(o.buf, unix.SOL_SOCKET, unix.SCM_RIGHTS, 4*len(fds))
		for i, fd := range fds {
			binary.NativeEndian.PutUint32(data[4*i:], uint32(int32(fd)))
		}
		oob = unix.CmsgSpace(4 * len(fds))
	}
	if cred != nil {
		data := sys.PutCmsg(o.buf[oob:], unix.SOL_SOCKET, unix.SCM_CREDENTIALS, unix.SizeofUcred)
		sys.PutUcred(data, unix.Ucred{Pid: cred.Pid, Uid: cred.Uid, Gid: cred.Gid})
		oob += unix.CmsgSpace(unix.SizeofUcred)
	}
	o.to = nil
	if to != nil {
		if err := setNetAddr(&o.addr, to, b.family); err != nil {
			return 0, err
		}
		o.to = &o.addr
	}
	o.p, o.oob = p, o.buf[:oob]
	o.flags = unix.MSG_NOSIGNAL
	if nowait {
		o.flags |= unix.MSG_DONTWAIT
	}
	err := b.exec(ctx, o, nowait)
	o.p, o.oob = nil, nil
	if err != nil {
		return 0, err
	}
	return o.n, nil
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
		m, err = b.send(ctx, p[n:], nil, nil, nil, false)
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
		return r.n, 0, b.wrapIO("recvmsg", err)
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
	return n, b.wrapIO("sendmsg", err)
}

// ReadMsgCred is ReadMsg that also returns the sender's credentials for this
// message (SCM_CREDENTIALS). The socket needs PassCred (or SetPassCred) before the
// message is sent; without credentials it returns ErrNoCred.
func (b *base) ReadMsgCred(ctx context.Context, p []byte, fds []int) (n, nfds int, cred Cred, err error) {
	var r recvResult
	if len(fds) <= b.cfg.maxFds && b.canFastRecvCtl(ctx, fds) {
		r, err = b.fastRecvCtl(p, fds)
	} else {
		r, _, err = b.recv(ctx, p, fds, false, false)
	}
	return b.credResult(r, fds, err)
}

// credResult is ReadMsgCred's result for what recv (or a fast path) returned.
func (b *base) credResult(r recvResult, fds []int, err error) (n, nfds int, cred Cred, _ error) {
	if err == nil && !r.hasCred {
		closeFds(fds[:r.nfds])
		r, err = recvResult{}, ErrNoCred
	}
	if err != nil {
		return r.n, 0, Cred{}, b.wrapIO("recvmsg", err)
	}
	return r.n, r.nfds, r.cred, nil
}

// WriteMsgCred is WriteMsg with explicit credentials attached (SCM_CREDENTIALS). The
// kernel accepts only the sender's own pid, uid and gid (real, effective or saved)
// unless it is privileged (CAP_SYS_ADMIN for the pid, CAP_SETUID/CAP_SETGID for the
// ids); anything else fails with unix.EPERM.
func (b *base) WriteMsgCred(ctx context.Context, p []byte, fds []int, cred Cred) (int, error) {
	n, err := b.sendAll(ctx, p, fds, &cred)
	return n, b.wrapIO("sendmsg", err)
}

// SetPassCred turns SO_PASSCRED on or off (see PassCred).
func (b *base) SetPassCred(on bool) error {
	on = on || dgramPolicy(b.sotype, b.cfg) // the policy needs every datagram's credentials
	v := 0
	if on {
		v = 1
	}
	err := b.control(func(fd int) error { return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, v) })
	if err == nil {
		b.wantCred.Store(on)
	}
	return b.wrap("setsockopt SO_PASSCRED", err)
}

// wrapIO wraps an I/O error, leaving io.EOF bare as io.Reader callers expect.
func (b *base) wrapIO(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	return b.wrap(op, err)
}
