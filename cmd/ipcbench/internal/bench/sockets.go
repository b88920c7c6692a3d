package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/sockets"
)

// The socket transports: unix-stream, unix-seqpacket, unix-dgram (socketpair), tcp and
// udp (a loopback connection made in the parent, one end handed to the peer). Each
// runs as Impl "ipclab" (package sockets, either wait strategy) or "raw" (blocking
// descriptors and bare sendmsg/recvmsg with MSG_NOSIGNAL, see sockets_raw.go);
// unix-stream and udp also as "std" (net.UnixConn, net.UDPConn).
//
// Unix endpoints also implement FdEndpoint, for a descriptor-passing scenario.

// FdEndpoint is an Endpoint that can pass descriptors with a message (SCM_RIGHTS).
// SendFds sends p with fds attached; RecvFds receives exactly len(p) bytes and up to
// len(fds) descriptors, returning how many arrived (the caller closes them).
type FdEndpoint interface {
	Endpoint
	SendFds(p []byte, fds []int) error
	RecvFds(p []byte, fds []int) (int, error)
}

type sockTransport struct {
	name   string
	family int
	sotype int
}

func init() {
	for _, t := range []sockTransport{
		{"unix-stream", unix.AF_UNIX, unix.SOCK_STREAM},
		{"unix-seqpacket", unix.AF_UNIX, unix.SOCK_SEQPACKET},
		{"unix-dgram", unix.AF_UNIX, unix.SOCK_DGRAM},
		{"tcp", unix.AF_INET, unix.SOCK_STREAM},
		{"udp", unix.AF_INET, unix.SOCK_DGRAM},
	} {
		Register(t)
	}
}

func (t sockTransport) Name() string { return t.name }

// Scenarios: Unix sockets also pass descriptors; UDP may drop datagrams when the
// receiver falls behind, so it runs ping-pong only (a lost message would stall a
// stream) and the qos scenario, whose streams count what they lose. Every socket
// carries a stream with quality of service: the message sockets a unit per message,
// the byte streams framed (stream.Framed).
func (t sockTransport) Scenarios() []string {
	switch {
	case t.family == unix.AF_UNIX:
		return []string{ScenarioPingPong, ScenarioStream, ScenarioFdPass, ScenarioQoS}
	case t.sotype == unix.SOCK_DGRAM:
		return []string{ScenarioPingPong, ScenarioQoS}
	}
	if t.name == "tcp" {
		// The TCP ping-pong is scenario rpc's baseline for ONC RPC over TCP.
		return []string{ScenarioPingPong, ScenarioStream, ScenarioQoS, ScenarioRPC}
	}
	return []string{ScenarioPingPong, ScenarioStream, ScenarioQoS}
}

func (t sockTransport) Waits() []ipc.WaitStrategy {
	return []ipc.WaitStrategy{ipc.WaitAuto, ipc.WaitPoller, ipc.WaitKernel}
}

// MaxSize is the largest datagram: 65507 for UDP; for Unix message sockets the
// default send buffer less the kernel's per-skb overhead allowance.
func (t sockTransport) MaxSize() int {
	switch {
	case t.sotype == unix.SOCK_STREAM:
		return 0
	case t.family == unix.AF_INET:
		return 65507
	}
	n := 212992
	if b, err := os.ReadFile("/proc/sys/net/core/wmem_default"); err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			n = v
		}
	}
	return n - 512
}

func (t sockTransport) Available() error { return nil }

func (t sockTransport) Cleanup(Params) error { return nil }

// Impls: unix-stream and udp also run as std (net.UnixConn, net.UDPConn), in every
// scenario but descriptor passing.
func (t sockTransport) Impls(scenario string) []string {
	if scenario != ScenarioFdPass && (t.name == "unix-stream" || t.name == "udp") {
		return Impls
	}
	return []string{ImplIpclab, ImplRaw}
}

// stdConn wraps one end of a connected pair as a net.Conn: the *net.UnixConn or
// *net.UDPConn a Go program gets from net.FileConn, in the runtime's poller.
func stdConn(f *os.File, stream bool) (Endpoint, error) {
	c, err := net.FileConn(f) // a non-blocking duplicate; f stays the caller's
	if err != nil {
		return nil, err
	}
	return &stdEndpoint{r: c, w: c, stream: stream, closer: []io.Closer{c}}, nil
}

func (t sockTransport) Setup(p *Params) (Endpoint, []*os.File, error) {
	if p.Impl == ImplStd {
		// A Go program that shares a connection with a child makes the pair the same
		// way (net has no socketpair) and wraps its end with net.FileConn.
		fds, err := rawSockPair(t.family, t.sotype)
		if err != nil {
			return nil, nil, err
		}
		ours := os.NewFile(uintptr(fds[0]), t.name)
		ep, err := stdConn(ours, t.sotype == unix.SOCK_STREAM)
		ours.Close()
		if err != nil {
			unix.Close(fds[1])
			return nil, nil, err
		}
		return ep, []*os.File{os.NewFile(uintptr(fds[1]), t.name)}, nil
	}
	if p.Impl == ImplRaw {
		fds, err := rawSockPair(t.family, t.sotype)
		if err != nil {
			return nil, nil, err
		}
		return &rawSockEP{fd: fds[0], stream: t.sotype == unix.SOCK_STREAM},
			[]*os.File{os.NewFile(uintptr(fds[1]), t.name)}, nil
	}
	opts := []sockets.Option{sockets.WithWait(p.Wait), sockets.WithMaxFds(1)}
	var ours, theirs sockConn
	var err error
	switch {
	case t.family == unix.AF_UNIX && t.sotype == unix.SOCK_STREAM:
		ours, theirs, err = pairOf(sockets.StreamPair(opts...))
	case t.family == unix.AF_UNIX && t.sotype == unix.SOCK_SEQPACKET:
		ours, theirs, err = pairOf(sockets.SeqpacketPair(opts...))
	case t.family == unix.AF_UNIX:
		ours, theirs, err = pairOf(sockets.DgramPair(opts...))
	case t.sotype == unix.SOCK_STREAM:
		ours, theirs, err = tcpPair(opts)
	default:
		ours, theirs, err = udpPair(opts)
	}
	if err != nil {
		return nil, nil, err
	}
	f, err := theirs.File()
	theirs.Close()
	if err != nil {
		ours.Close()
		return nil, nil, err
	}
	return newSockEP(ours), []*os.File{f}, nil
}

func (t sockTransport) Open(p Params, files []*os.File) (Endpoint, error) {
	if len(files) != 1 {
		return nil, fmt.Errorf("%s: want 1 file, got %d", t.name, len(files))
	}
	if p.Impl == ImplStd {
		return stdConn(files[0], t.sotype == unix.SOCK_STREAM)
	}
	if p.Impl == ImplRaw {
		fd, err := unix.FcntlInt(files[0].Fd(), unix.F_DUPFD_CLOEXEC, 0) // Fd() made it blocking
		if err != nil {
			return nil, err
		}
		return &rawSockEP{fd: fd, stream: t.sotype == unix.SOCK_STREAM}, nil
	}
	opts := []sockets.Option{sockets.WithWait(p.Wait), sockets.WithMaxFds(1)}
	var c sockConn
	var err error
	switch t.sotype {
	case unix.SOCK_STREAM:
		c, err = sockets.FileStreamConn(files[0], opts...)
	case unix.SOCK_SEQPACKET:
		c, err = sockets.FileSeqpacketConn(files[0], opts...)
	default:
		c, err = sockets.FileDgramConn(files[0], opts...)
	}
	if err != nil {
		return nil, err
	}
	return newSockEP(c), nil
}

// sockConn is what the three connection types share.
type sockConn interface {
	Close() error
	File() (*os.File, error)
	ReadMsg(ctx context.Context, p []byte, fds []int) (int, int, error)
	WriteMsg(ctx context.Context, p []byte, fds []int) (int, error)
}

func pairOf[C sockConn](a, b C, err error) (sockConn, sockConn, error) {
	if err != nil {
		return nil, nil, err
	}
	return a, b, nil
}

func tcpPair(opts []sockets.Option) (sockConn, sockConn, error) {
	l, err := sockets.ListenTCP("127.0.0.1:0", opts...)
	if err != nil {
		return nil, nil, err
	}
	defer l.Close()
	d, err := sockets.DialTCP(context.Background(), l.Addr().String(), opts...)
	if err != nil {
		return nil, nil, err
	}
	a, err := l.AcceptStream(context.Background())
	if err != nil {
		d.Close()
		return nil, nil, err
	}
	return a, d, nil
}

// udpPair connects two loopback UDP sockets to each other (made raw: the library
// dials one way only) and wraps both.
func udpPair(opts []sockets.Option) (sockConn, sockConn, error) {
	fds, err := rawSockPair(unix.AF_INET, unix.SOCK_DGRAM)
	if err != nil {
		return nil, nil, err
	}
	var conns [2]sockConn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "udp")
		c, err := sockets.FileDgramConn(f, opts...)
		f.Close()
		if err != nil {
			if i == 0 {
				unix.Close(fds[1])
			} else {
				conns[0].Close()
			}
			return nil, nil, err
		}
		conns[i] = c
	}
	return conns[0], conns[1], nil
}

// sockEP drives a sockets connection with preallocated state: no allocation per
// message, and direct (not interface) calls on the hot path.
type sockEP struct {
	c      sockConn
	stream *sockets.StreamConn
	seq    *sockets.SeqpacketConn
	dgram  *sockets.DgramConn
	ctx    context.Context
}

func newSockEP(c sockConn) *sockEP {
	ep := &sockEP{c: c, ctx: context.Background()}
	switch v := c.(type) {
	case *sockets.StreamConn:
		ep.stream = v
	case *sockets.SeqpacketConn:
		ep.seq = v
	case *sockets.DgramConn:
		ep.dgram = v
	}
	return ep
}

func (e *sockEP) Send(p []byte) error {
	var err error
	switch {
	case e.stream != nil:
		_, err = e.stream.Write(p)
	case e.seq != nil:
		err = e.seq.Send(e.ctx, p)
	default:
		err = e.dgram.Send(e.ctx, p)
	}
	return err
}

func (e *sockEP) SendFds(p []byte, fds []int) error {
	_, err := e.c.WriteMsg(e.ctx, p, fds)
	return err
}

func (e *sockEP) Recv(p []byte) error {
	var n int
	var err error
	switch {
	case e.stream != nil:
		for n < len(p) && err == nil {
			var m int
			m, err = e.stream.Read(p[n:])
			n += m
		}
	case e.seq != nil:
		n, err = e.seq.Recv(e.ctx, p)
	default:
		n, err = e.dgram.Recv(e.ctx, p)
	}
	if err == nil && n != len(p) {
		err = fmt.Errorf("short message: %d of %d bytes", n, len(p))
	}
	return err
}

func (e *sockEP) RecvFds(p []byte, fds []int) (int, error) {
	n, nfds, err := e.c.ReadMsg(e.ctx, p, fds)
	if err != nil {
		return 0, err
	}
	for n < len(p) && e.stream != nil {
		m, err := e.stream.Read(p[n:])
		if err != nil {
			return nfds, err
		}
		n += m
	}
	if n != len(p) {
		return nfds, fmt.Errorf("short message: %d of %d bytes", n, len(p))
	}
	return nfds, nil
}

func (e *sockEP) Close() error { return e.c.Close() }
