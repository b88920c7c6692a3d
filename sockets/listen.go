package sockets

import (
	"context"
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

// listener is what stream and seqpacket listeners share: socket, bind, listen, accept.
type listener struct {
	b    *base
	wait ipc.WaitStrategy // accepted connections'
}

// listenUnix is socket(2) + bind(2) + listen(2) for a Unix stream or seqpacket
// socket at name (see bindName).
func listenUnix(sotype int, name string, opts []Option) (*listener, error) {
	c, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_UNIX, sotype|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, ipc.Wrap("socket", kindName(unix.AF_UNIX, sotype), err)
	}
	sf, err := bindName(fd, sotype, name, c)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.Listen(fd, c.backlog); err != nil {
		unix.Close(fd)
		sf.remove()
		return nil, ipc.Wrap("listen", name, err)
	}
	return newListener(fd, unix.AF_UNIX, sotype, sf, c)
}

func newListener(fd, family, sotype int, sf *socketFile, c config) (*listener, error) {
	// A listener in the default mode waits in the poller: accept4 has no flag that
	// keeps one call on a blocking socket from waiting, and a listener's wait is no
	// hot path. Accepted connections get the mode asked for.
	lc := c
	if lc.wait == ipc.WaitAuto {
		lc.wait = ipc.WaitPoller
	}
	b, err := newBase(fd, family, sotype, lc)
	if err != nil {
		sf.remove()
		return nil, err
	}
	l := &listener{b: b, wait: c.wait}
	if sf != nil {
		b.onClose = sf.remove
	}
	return l, nil
}

// accept is accept4(2) with SOCK_CLOEXEC (the engine sets O_NONBLOCK as the mode of
// the connection needs), then the peer policy.
func (l *listener) accept(ctx context.Context) (*base, error) {
	var nfd int
	err := l.b.c.FD.Wait(ctx, false, func(fd int, _ bool) (err error) {
		nfd, err = sys.Accept4(fd, nil, unix.SOCK_CLOEXEC)
		return err
	})
	if err != nil {
		return nil, l.b.wrap("accept4", err)
	}
	cfg := l.b.cfg
	cfg.wait = l.wait
	b, err := newBase(nfd, l.b.family, l.b.sotype, cfg)
	if err != nil {
		return nil, err
	}
	if l.b.family == unix.AF_INET {
		if err := unix.SetsockoptInt(nfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
			b.Close()
			return nil, b.wrap("setsockopt TCP_NODELAY", err)
		}
	}
	if err := b.checkPeer(); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// Addr returns the address the listener is bound to.
func (l *listener) Addr() net.Addr { return l.b.local }

// Close stops listening: a pending Accept returns an error matching net.ErrClosed,
// and the socket file, if the listener bound one and it is still there, is removed.
// Close is idempotent.
func (l *listener) Close() error { return l.b.Close() }

// Fd returns the listening descriptor (valid until Close).
func (l *listener) Fd() int { return l.b.Fd() }

// File returns a close-on-exec duplicate of the listening descriptor, for a child
// process (see FileStreamListener).
func (l *listener) File() (*os.File, error) { return l.b.File() }

// String describes the listener.
func (l *listener) String() string { return l.b.String() }

// StreamListener accepts Unix stream or TCP connections. It is a net.Listener. A
// listener bound to a path removes its socket file on Close (if the file is still
// the one it bound); one made by FileStreamListener leaves the file alone.
type StreamListener struct {
	*listener
}

var _ net.Listener = (*StreamListener)(nil)

// ListenStream listens for Unix stream connections at name. A path must lie in a
// directory owned by the caller that nobody else can write to (else the error matches
// ipc.ErrUntrustedObject); a stale socket file left there by a crashed run of ours is
// replaced only if it is a socket we own to which the kernel has no socket bound,
// otherwise bind fails with unix.EADDRINUSE: of several processes listening on one
// path at once exactly one wins, and a socket that is bound but not yet listening is
// never taken. The file gets mode 0600 (WithMode). An abstract "@name", or "" for an
// autobound name, needs AllowAbstract.
func ListenStream(name string, opts ...Option) (*StreamListener, error) {
	l, err := listenUnix(unix.SOCK_STREAM, name, opts)
	if err != nil {
		return nil, err
	}
	return &StreamListener{l}, nil
}

// Accept waits for a connection and returns it as a *StreamConn (net.Listener).
func (l *StreamListener) Accept() (net.Conn, error) {
	c, err := l.AcceptStream(context.Background())
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AcceptStream waits for a connection until ctx ends or the listener is closed.
// Accepted connections are close-on-exec, use the listener's options and, with a
// PeerPolicy, have passed it.
func (l *StreamListener) AcceptStream(ctx context.Context) (*StreamConn, error) {
	b, err := l.accept(ctx)
	if err != nil {
		return nil, err
	}
	return newStream(b), nil
}

// SeqpacketListener accepts Unix SOCK_SEQPACKET connections.
type SeqpacketListener struct {
	*listener
}

// ListenSeqpacket listens for Unix seqpacket connections at name, with the same
// path rules as ListenStream.
func ListenSeqpacket(name string, opts ...Option) (*SeqpacketListener, error) {
	l, err := listenUnix(unix.SOCK_SEQPACKET, name, opts)
	if err != nil {
		return nil, err
	}
	return &SeqpacketListener{l}, nil
}

// Accept waits for a connection until ctx ends or the listener is closed.
func (l *SeqpacketListener) Accept(ctx context.Context) (*SeqpacketConn, error) {
	b, err := l.accept(ctx)
	if err != nil {
		return nil, err
	}
	return newSeqpacket(b), nil
}

// ListenDgram binds a Unix datagram socket to name (same path rules as ListenStream;
// "" autobinds and, like "@name", needs AllowAbstract). The socket file is removed on
// Close.
func ListenDgram(name string, opts ...Option) (*DgramConn, error) {
	c, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, ipc.Wrap("socket", "unix-dgram", err)
	}
	sf, err := bindName(fd, unix.SOCK_DGRAM, name, c)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	b, err := newBase(fd, unix.AF_UNIX, unix.SOCK_DGRAM, c)
	if err != nil {
		sf.remove()
		return nil, err
	}
	if sf != nil {
		b.onClose = sf.remove
	}
	return newDgram(b), nil
}
