package sockets

import (
	"context"
	"fmt"
	"io"

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

// fastRecv receives into p; ok is false when the general path must be taken.
func (b *base) fastRecv(ctx context.Context, p []byte) (r recvResult, ok bool, err error) {
	if ctx != background || b.rdl.Load() != 0 || b.wantCred.Load() {
		return r, false, nil
	}
	b.inflight.Add(1)
	var n, rflags int
	for {
		if b.closed.Load() {
			b.inflight.Add(-1)
			return r, true, errClosed
		}
		n, _, rflags, err = sys.Recvmsg(b.fd, p, nil, nil, unix.MSG_CMSG_CLOEXEC)
		if err != unix.EINTR {
			break
		}
	}
	b.inflight.Add(-1)
	switch {
	case b.closed.Load() && (err != nil || n == 0):
		return r, true, errClosed
	case err != nil:
		return r, true, err
	case rflags&unix.MSG_CTRUNC != 0:
		// Descriptors sent where none were expected: with no control buffer the
		// kernel discarded them and installed nothing.
		b.poison()
		return r, true, ErrControlTruncated
	case rflags&unix.MSG_TRUNC != 0:
		return recvResult{n: len(p)}, true, fmt.Errorf("%d-byte message into a %d-byte buffer: %w", n, len(p), ipc.ErrTruncated)
	case n == 0 && len(p) > 0 && b.sotype != unix.SOCK_DGRAM:
		return r, true, io.EOF
	}
	r.n = n
	return r, true, nil
}

// fastSend sends p if it fits now; ok is false when the general path must be
// taken (a context or deadline to honour, or no room: EAGAIN).
func (b *base) fastSend(ctx context.Context, p []byte) (n int, ok bool, err error) {
	if ctx != background || b.wdl.Load() != 0 {
		return 0, false, nil
	}
	b.inflight.Add(1)
	defer b.inflight.Add(-1)
	for {
		if b.closed.Load() {
			return 0, true, errClosed
		}
		n, err = sys.Sendmsg(b.fd, p, nil, nil, unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, false, nil
		}
		return n, true, err
	}
}
