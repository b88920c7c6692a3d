package sockets

import (
	"context"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

// The kernel-mode fast path: a plain send or receive (no descriptors, credentials,
// address, context or deadline) is one system call with its arguments on the
// stack, announced in b.inflight instead of under the op mutex and the thread
// registry. Measured across processes, every layer and lock on this path shows up
// against a bare recvmsg/sendmsg, because each message costs a context switch that
// leaves the caches and branch predictors cold. Close wakes a fast receive by
// shutting the receive side down; a fast send never blocks (MSG_DONTWAIT), and one
// that would is retried on the general path, where Close can interrupt it.

// canFastRecv reports whether a plain receive under ctx may take the fast path.
func (b *base) canFastRecv(ctx context.Context) bool {
	return b.hot && ctx.Done() == nil && b.dl.Read.Load() == 0 && !b.wantCred.Load()
}

// canFastSend reports whether a plain send under ctx may take the fast path.
func (b *base) canFastSend(ctx context.Context) bool {
	return b.hot && ctx.Done() == nil && b.dl.Write.Load() == 0
}

// fastRecv receives into p (canFastRecv must hold) and returns what the general path
// (recv) would for the same message.
func (b *base) fastRecv(p []byte) (r recvResult, err error) {
	for {
		b.inflight.Add(1)
		if b.closed.Load() {
			b.inflight.Add(-1)
			return r, errClosed
		}
		n, rflags, errno := sys.RecvData(b.fd, p, int(b.recvFlags))
		b.inflight.Add(-1)
		if errno == 0 && n > 0 && rflags&(unix.MSG_CTRUNC|unix.MSG_TRUNC) == 0 {
			r.n = n
			return r, nil
		}
		if errno != unix.EINTR {
			return b.fastRecvEnd(p, n, rflags, errno)
		}
		if b.dl.Expired(false) { // set while the call waited (see setDeadline)
			return r, os.ErrDeadlineExceeded
		}
	}
}

// fastRecvEnd finishes a fast receive that did not simply deliver data.
func (b *base) fastRecvEnd(p []byte, n, rflags int, errno unix.Errno) (r recvResult, err error) {
	if errno != 0 {
		err = errno
	}
	switch {
	case b.closed.Load() && (err != nil || n == 0):
		return r, errClosed
	case err != nil:
		return r, err
	case rflags&unix.MSG_CTRUNC != 0:
		// Descriptors sent where none were expected: with no control buffer the
		// kernel discarded them and installed nothing.
		b.poison()
		return r, ErrControlTruncated
	case rflags&unix.MSG_TRUNC != 0:
		return recvResult{n: len(p)}, truncated(n, len(p))
	case n == 0 && len(p) > 0 && b.sotype != unix.SOCK_DGRAM:
		return r, io.EOF
	}
	r.n = n
	return r, nil
}

// truncated is the error for a message of n bytes (its real length, with MSG_TRUNC
// passed to recvmsg) received into a buffer of size bytes: the buffer holds its
// first size bytes, the rest is lost. A kernel that returned only the copied length
// gets no made-up figure.
func truncated(n, size int) error {
	if n > size {
		return fmt.Errorf("%d-byte message into a %d-byte buffer, %d bytes lost: %w", n, size, n-size, ipc.ErrTruncated)
	}
	return fmt.Errorf("message longer than the %d-byte buffer: %w", size, ipc.ErrTruncated)
}

// canFastRecvCtl reports whether a receive under ctx that collects descriptors or
// the sender's credentials may take the fast path (fastRecvCtl). Datagram sockets
// with a peer policy take the general path, which applies it.
func (b *base) canFastRecvCtl(ctx context.Context, fds []int) bool {
	return b.hot && len(fds) <= fastFds && ctx.Done() == nil && b.dl.Read.Load() == 0 &&
		!dgramPolicy(b.sotype, b.cfg)
}

// fastFds is the most descriptors fastRecvCtl takes room for (a door's default,
// doors.DefaultMaxFds); more go the general way.
const fastFds = 16

// Control buffer sizes: CMSG_SPACE(sizeof(struct ucred)) on 64-bit systems (the
// most it is), CMSG_SPACE(4 * fastFds).
const (
	credSpace   = 32
	fastFdSpace = 16 + 4*fastFds
)

// fastRecvCtl is fastRecv with a control buffer on the stack, for up to len(fds)
// descriptors and, with wantCred, the sender's credentials. What it returns is what
// the general path (recv) returns for the same message.
func (b *base) fastRecvCtl(p []byte, fds []int) (recvResult, error) {
	var buf [credSpace + fastFdSpace]byte
	oob := buf[:b.ctlSize(len(fds))]
	b.inflight.Add(1)
	for {
		if b.closed.Load() {
			b.inflight.Add(-1)
			return recvResult{}, errClosed
		}
		n, oobn, rflags, e := sys.Recvmsg(b.fd, p, oob, nil, int(b.recvFlags))
		if e != unix.EINTR {
			b.inflight.Add(-1)
			return b.ctlResult(p, fds, oob[:oobn], n, rflags, e)
		}
	}
}

// ctlSize is the control buffer a fast receive needs for nfds descriptors (at most
// fastFds) and, with wantCred, the sender's credentials.
func (b *base) ctlSize(nfds int) int {
	size := 0
	if nfds > 0 {
		size = unix.CmsgSpace(4 * nfds)
	}
	if b.wantCred.Load() {
		size += unix.CmsgSpace(unix.SizeofUcred)
	}
	return size
}

// ctlResult finishes a fast receive with a control buffer: what recvmsg returned
// (n bytes, control data oob, flags rflags, error e, never EINTR) becomes what the
// general path (recv) returns for the same message.
func (b *base) ctlResult(p []byte, fds []int, oob []byte, n, rflags int, e error) (r recvResult, err error) {
	if e != nil {
		errno, _ := e.(unix.Errno) // sys.Recvmsg fails only with an errno
		return b.fastRecvEnd(p, 0, 0, errno)
	}
	var extra bool
	r.nfds, extra, r.cred, r.hasCred = parseControl(oob, fds)
	switch {
	case rflags&unix.MSG_CTRUNC != 0:
		closeFds(fds[:r.nfds])
		b.poison()
		return recvResult{}, ErrControlTruncated
	case extra:
		closeFds(fds[:r.nfds])
		b.poison()
		return recvResult{}, ErrUnexpectedFds
	case rflags&unix.MSG_TRUNC != 0 || (n == 0 && (b.closed.Load() || len(p) > 0 && b.sotype != unix.SOCK_DGRAM)):
		closeFds(fds[:r.nfds])
		return b.fastRecvEnd(p, n, rflags, 0)
	}
	r.n = n
	return r, nil
}

// fastSend sends p if it fits now (canFastSend must hold); ok is false when the
// general path must be taken (no room: EAGAIN).
func (b *base) fastSend(p []byte) (n int, ok bool, err error) {
	b.inflight.Add(1)
	n, err = b.sendAnnounced(p)
	b.inflight.Add(-1)
	if err == unix.EAGAIN {
		return 0, false, nil
	}
	return n, true, err
}

// sendAnnounced sends p without waiting (MSG_DONTWAIT) for a fast path that has
// announced itself in inflight, again after EINTR while the connection is open. Its
// error is unix.EAGAIN when there is no room, errClosed once Close has begun.
func (b *base) sendAnnounced(p []byte) (int, error) {
	for {
		if b.closed.Load() {
			return 0, errClosed
		}
		n, errno := sys.SendData(b.fd, p, unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
		switch errno {
		case 0:
			return n, nil
		case unix.EINTR:
			continue
		}
		return 0, errno
	}
}
