package stream

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/ipclab/ipclab/ipc"
)

// A Conn carries whole messages both ways between a source and a sink: one Send is
// one Recv at the other end. Recv must return when its context ends: a Sink reads
// ahead on its own goroutine and stops it that way on Close. sockets.SeqpacketConn, sockets.DgramConn (Unix or UDP)
// and sysv.Ring (one way; pair two with Duplex) are Conns; byte streams (pipes, Unix
// stream sockets, TCP) become Conns with Framed.
type Conn interface {
	Send(ctx context.Context, p []byte) error
	Recv(ctx context.Context, p []byte) (int, error)
}

// A ContextReader reads with a context: ipc/pipe's Reader and sockets.StreamConn
// are ContextReaders.
type ContextReader interface {
	ReadContext(ctx context.Context, p []byte) (int, error)
}

// A ContextWriter writes with a context: ipc/pipe's Writer and sockets.StreamConn
// are ContextWriters.
type ContextWriter interface {
	WriteContext(ctx context.Context, p []byte) (int, error)
}

// Framed makes a Conn of a byte stream: each message is written whole (the unit
// header carries its length), and Recv reads exactly one. A Send that ends (its
// context, an error) with a message written in part leaves the stream out of step:
// every later Send fails with ErrProtocol. Send and Recv may run at once (one each). r or w may be nil for a
// one-way stream (its Recv or Send then fails). A pipe pair, one each way, is
// Framed(r, w) on each side.
func Framed(r ContextReader, w ContextWriter) Conn { return &framed{r: r, w: w} }

type framed struct {
	r      ContextReader
	w      ContextWriter
	broken bool // a message was written in part: the byte stream is out of step
}

func (f *framed) Send(ctx context.Context, p []byte) error {
	if f.w == nil {
		return ipc.Wrap("send", "framed stream", fmt.Errorf("%w: no write side", ipc.ErrInvalid))
	}
	if f.broken {
		return ipc.Wrap("send", "framed stream", fmt.Errorf("%w: an earlier message was written in part", ErrProtocol))
	}
	for sent := 0; sent < len(p); {
		n, err := f.w.WriteContext(ctx, p[sent:])
		sent += n
		if err != nil {
			f.broken = sent > 0 && sent < len(p)
			return err
		}
	}
	return nil
}

func (f *framed) Recv(ctx context.Context, p []byte) (int, error) {
	if f.r == nil {
		return 0, ipc.Wrap("recv", "framed stream", fmt.Errorf("%w: no read side", ipc.ErrInvalid))
	}
	if len(p) < HeaderSize {
		return 0, ipc.Wrap("recv", "framed stream", fmt.Errorf("%w: buffer of %d bytes, shorter than a header", ipc.ErrInvalid, len(p)))
	}
	if err := f.full(ctx, p[:HeaderSize]); err != nil {
		return 0, err
	}
	var h header
	if err := h.parse(p[:HeaderSize]); err != nil {
		return 0, ipc.Wrap("recv", "framed stream", err)
	}
	n := HeaderSize + int(h.len)
	if n > len(p) {
		// The stream is now out of step: the rest of this unit is unread.
		return 0, ipc.Wrap("recv", "framed stream", fmt.Errorf("%w: unit of %d bytes, buffer of %d", ipc.ErrTruncated, n, len(p)))
	}
	if err := f.full(ctx, p[HeaderSize:n]); err != nil {
		return 0, err
	}
	return n, nil
}

// full reads exactly len(p) bytes; EOF in the middle is io.ErrUnexpectedEOF.
func (f *framed) full(ctx context.Context, p []byte) error {
	for got := 0; got < len(p); {
		n, err := f.r.ReadContext(ctx, p[got:])
		got += n
		if err == io.EOF && got > 0 && got < len(p) {
			return io.ErrUnexpectedEOF
		}
		if err != nil && got < len(p) {
			return err
		}
	}
	return nil
}

// Duplex makes one Conn of two one-way ones: Send goes out on out, Recv reads in
// (two sysv.Rings, or two Framed pipes).
func Duplex(out, in Conn) Conn { return duplex{out, in} }

type duplex struct{ out, in Conn }

func (d duplex) Send(ctx context.Context, p []byte) error        { return d.out.Send(ctx, p) }
func (d duplex) Recv(ctx context.Context, p []byte) (int, error) { return d.in.Recv(ctx, p) }

// A PacketConn is an unconnected datagram socket: sockets.DgramConn from ListenUDP
// or ListenDgram.
type PacketConn interface {
	SendTo(ctx context.Context, p []byte, addr net.Addr) error
	RecvFrom(ctx context.Context, p []byte) (int, net.Addr, error)
}

// Unconnected makes a Conn of an unconnected datagram socket that talks to one
// peer: peer if given, else the sender of the first datagram received (a sink
// listening for one source). Datagrams from anyone else are dropped unread. A
// source dials (sockets.DialUDP) and uses its connected socket as the Conn.
func Unconnected(c PacketConn, peer net.Addr) Conn { return &unconnected{c: c, peer: peer} }

type unconnected struct {
	c    PacketConn
	mu   sync.Mutex
	peer net.Addr
}

func (u *unconnected) Send(ctx context.Context, p []byte) error {
	u.mu.Lock()
	peer := u.peer
	u.mu.Unlock()
	if peer == nil {
		return ipc.Wrap("send", "datagram stream", fmt.Errorf("%w: no peer yet (nothing received)", ipc.ErrInvalid))
	}
	return u.c.SendTo(ctx, p, peer)
}

func (u *unconnected) Recv(ctx context.Context, p []byte) (int, error) {
	for {
		n, from, err := u.c.RecvFrom(ctx, p)
		if err != nil {
			return n, err
		}
		u.mu.Lock()
		if u.peer == nil {
			u.peer = from
		}
		ok := sameAddr(u.peer, from)
		u.mu.Unlock()
		if ok {
			return n, nil
		}
	}
}

// sameAddr reports whether a and b are one address, without the allocations of
// comparing their strings for the address types sockets returns.
func sameAddr(a, b net.Addr) bool {
	switch x := a.(type) {
	case *net.UDPAddr:
		y, ok := b.(*net.UDPAddr)
		return ok && x.Port == y.Port && x.Zone == y.Zone && x.IP.Equal(y.IP)
	case *net.UnixAddr:
		y, ok := b.(*net.UnixAddr)
		return ok && x.Name == y.Name && x.Net == y.Net
	}
	return a != nil && b != nil && a.String() == b.String()
}
