package rpc

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/xdrpp/goxdr/xdr"

	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/sockets"
)

// ControlProg is the program number of the control program every Server serves
// (version 1) beside its own, for the call forms ONC RPC has no message for. Its
// procedures take another call message (the inner call, checked and run exactly
// as if it had come by itself, credentials and auth policy included):
//
//   - 1 ONEWAY(opaque call<>): run the inner call, send no reply at all;
//   - 2 DEFER(opaque call<>) returns unsigned hyper ticket: acknowledge at once,
//     run the inner call in the background and keep its reply under the ticket;
//   - 3 COLLECT(unsigned hyper ticket) returns opaque reply<>: the inner call's
//     reply message, or nothing while it still runs (over TCP and doors the server
//     waits up to half a second for it first; over UDP, whose socket one goroutine
//     reads for every client, it answers at once). A ticket unknown to the server
//     (never issued, or evicted) is SYSTEM_ERR. Results are kept in memory: a
//     restarted server knows no ticket of its predecessor.
//
// Tickets are 64-bit random numbers, valid on any connection and transport of the
// server: a client collects a result after reconnecting, or from another client.
const ControlProg uint32 = 0x3ffffff0

const (
	controlVers     = 1
	procOneWay      = 1
	procDefer       = 2
	procCollect     = 3
	collectWait     = 500 * time.Millisecond
	defaultDeferMax = 1024
)

// Ticket names a deferred call's result on its server (Client.Defer, Collect).
type Ticket uint64

// WithDeferredLimit sets how many deferred calls' results a server keeps (default
// 1024). When a new deferred call finds the table full, the oldest completed result
// is evicted (collected or not); when every entry still runs, the call is refused
// with SYSTEM_ERR.
func WithDeferredLimit(n int) ServerOption { return func(c *serverConfig) { c.deferMax = n } }

type deferredCall struct {
	done  chan struct{}
	reply []byte
}

// controlProcs are the procedures of ControlProg version 1 that reply.
func (s *Server) controlProcs() map[uint32]ProcFunc {
	return map[uint32]ProcFunc{procDefer: s.deferProc, procCollect: s.collectProc}
}

// oneWay runs a ONEWAY call's inner call; nothing is sent back.
func (s *Server) oneWay(args []byte, transport string, from net.Addr, cred *sockets.Cred) {
	var d decoder
	var inner []byte
	if err := d.decodeValue(args, xdr.XdrVecOpaque{Bytes: &inner, Bound: uint32(s.cfg.maxRecord)}); err != nil {
		s.stats.garbage.Add(1)
		return
	}
	h, iargs, err := parseCall(inner)
	if err != nil || h.Prog == ControlProg {
		s.stats.garbage.Add(1)
		return
	}
	enc := encoderPool.Get().(*encoder)
	enc.b = enc.b[:0]
	s.answer(&h, iargs, transport, from, enc, cred)
	encoderPool.Put(enc)
}

var encoderPool = sync.Pool{New: func() any { return &encoder{b: make([]byte, 0, 512)} }}

func (s *Server) deferProc(ctx context.Context, c *Call) error {
	var inner []byte
	if err := c.Args(xdr.XdrVecOpaque{Bytes: &inner, Bound: uint32(s.cfg.maxRecord)}); err != nil {
		return err
	}
	inner = append([]byte(nil), inner...)
	h, iargs, err := parseCall(inner)
	if err != nil || h.Prog == ControlProg {
		return fmt.Errorf("deferred call: %v: %w", err, ErrGarbageArgs)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	t := binary.BigEndian.Uint64(b[:])
	d := &deferredCall{done: make(chan struct{})}
	s.deferMu.Lock()
	if len(s.deferred) >= s.cfg.deferMax && !s.evictDeferred() {
		s.deferMu.Unlock()
		return errors.New("too many deferred calls running")
	}
	s.deferred[t] = d
	s.deferOrder = append(s.deferOrder, t)
	s.deferMu.Unlock()
	var cred *sockets.Cred
	if c.cred != nil {
		cr := *c.cred
		cred = &cr
	}
	transport, from := c.Transport, c.Addr
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		enc := &encoder{b: make([]byte, 0, 256)}
		s.answer(&h, iargs, transport, from, enc, cred)
		d.reply = enc.b
		close(d.done)
	}()
	return c.Result(xdr.XDR_uint64(&t))
}

// evictDeferred drops the oldest completed deferred result; s.deferMu is held.
func (s *Server) evictDeferred() bool {
	for i, t := range s.deferOrder {
		d := s.deferred[t]
		select {
		case <-d.done:
			delete(s.deferred, t)
			s.deferOrder = append(s.deferOrder[:i], s.deferOrder[i+1:]...)
			return true
		default:
		}
	}
	return false
}

func (s *Server) collectProc(ctx context.Context, c *Call) error {
	var t uint64
	if err := c.Args(xdr.XDR_uint64(&t)); err != nil {
		return err
	}
	s.deferMu.Lock()
	d := s.deferred[t]
	s.deferMu.Unlock()
	if d == nil {
		return fmt.Errorf("unknown deferred-call ticket %#x", t)
	}
	var reply []byte
	if c.Transport == "udp" {
		// One goroutine reads a UDP socket for every client: never hold it.
		select {
		case <-d.done:
			reply = d.reply
		default:
		}
	} else {
		tm := time.NewTimer(collectWait)
		defer tm.Stop()
		select {
		case <-d.done:
			reply = d.reply
		case <-tm.C:
		case <-ctx.Done():
		}
	}
	return c.Result(xdr.XdrVecOpaque{Bytes: &reply, Bound: uint32(s.cfg.maxRecord)})
}

// wrap encodes the call of procedure proc with args as an inner call message
// into c.inner.
func (c *Client) wrap(proc uint32, args Value) ([]byte, error) {
	if args == nil {
		args = Void
	}
	c.xid++
	h := CallHeader{XID: c.xid, Prog: c.prog, Vers: c.vers, Proc: proc, Cred: c.cfg.cred}
	c.inner.b = appendCall(c.inner.b[:0], &h)
	if err := c.inner.appendValue(args); err != nil {
		return nil, invalid("call", c.name, "arguments: %v", err)
	}
	return c.inner.b, nil
}

// Send makes a one-way call of procedure proc with args: no reply comes, and the
// client never waits for the server. Over TCP the call is written if the socket
// takes it now, otherwise kept (with the calls before it) and written by the next
// Send, Flush or two-way call; when more than the batch limit (WithBatchLimit) is
// waiting, Send fails with an error matching ipc.ErrWouldBlock. Over UDP it is one
// datagram sent without waiting. A one-way call has maybe semantics: it is never
// retransmitted, and is lost with a connection that breaks. Calls on one TCP
// connection run in the order sent, so a two-way call that returns has seen every
// one-way call sent before it run. Over a door (synchronous by nature) Send is an
// error matching ipc.ErrInvalid.
func (c *Client) Send(ctx context.Context, proc uint32, args Value) error {
	return c.oneWay(ctx, proc, args, false)
}

// Batch queues a one-way call of procedure proc without writing it (ONC RPC's
// batched calls, TCP only): the next two-way call, or Flush, writes the whole
// batch ahead of itself, in order. A batch over the batch limit is an error
// matching ipc.ErrWouldBlock (Flush it first).
func (c *Client) Batch(ctx context.Context, proc uint32, args Value) error {
	return c.oneWay(ctx, proc, args, true)
}

func (c *Client) oneWay(ctx context.Context, proc uint32, args Value, batch bool) error {
	if ctx == nil {
		return invalid("send", c.name, "nil context")
	}
	if c.door != nil || (batch && c.udp != nil) {
		return invalid("send", c.name, "one-way calls over %s", c.network)
	}
	if err := c.take(ctx, "send"); err != nil {
		return err
	}
	defer c.turn.Give()
	if c.isClosed() {
		return opErr("send", c.name, errClosed)
	}
	inner, err := c.wrap(proc, args)
	if err != nil {
		return err
	}
	c.xid++
	h := CallHeader{XID: c.xid, Prog: ControlProg, Vers: controlVers, Proc: procOneWay, Cred: c.cfg.cred}
	if c.udp != nil {
		c.enc.b = appendCall(c.enc.b[:0], &h)
		c.enc.b = appendOpaque(c.enc.b, inner)
		if len(c.enc.b) > maxDatagram {
			return opErr("send", c.name, ErrTooBig)
		}
		c.sent.Add(1)
		if err := c.udp.TrySend(c.enc.b); err != nil {
			return opErr("send", c.name, err)
		}
		return nil
	}
	c.enc.b = append(c.enc.b[:0], 0, 0, 0, 0)
	c.enc.b = appendCall(c.enc.b, &h)
	c.enc.b = appendOpaque(c.enc.b, inner)
	if len(c.enc.b)-4 > c.cfg.maxRecord {
		return opErr("send", c.name, ErrTooBig)
	}
	putMark(c.enc.b, len(c.enc.b)-4)
	if !batch && len(c.batch) > 0 {
		if err := c.tryFlush(ctx); err != nil {
			return opErr("send", c.name, err)
		}
	}
	if len(c.batch)+len(c.enc.b) > c.cfg.batchMax {
		return opErr("send", c.name, fmt.Errorf("%d bytes of one-way calls unsent: %w", len(c.batch), ipc.ErrWouldBlock))
	}
	c.batch = append(c.batch, c.enc.b...)
	c.sent.Add(1)
	if !batch {
		if err := c.tryFlush(ctx); err != nil {
			return opErr("send", c.name, err)
		}
	}
	return nil
}

// tryFlush writes what of the batch the socket takes now. the caller holds c.turn.
func (c *Client) tryFlush(ctx context.Context) error {
	if c.tcp == nil {
		if err := c.connect(ctx); err != nil {
			return err
		}
	}
	for len(c.batch) > 0 {
		n, err := c.tcp.TryWrite(c.batch)
		if n > 0 {
			c.batch = c.batch[:copy(c.batch, c.batch[n:])]
		}
		if errors.Is(err, ipc.ErrWouldBlock) {
			return nil
		}
		if err != nil {
			c.tcp.Close()
			c.connMu.Lock()
			c.tcp, c.rr = nil, nil
			c.connMu.Unlock()
			c.batch = c.batch[:0]
			return err
		}
	}
	return nil
}

// Flush writes the one-way calls waiting in the batch, waiting (under ctx) for the
// socket to take them.
func (c *Client) Flush(ctx context.Context) error {
	if ctx == nil {
		return invalid("flush", c.name, "nil context")
	}
	if err := c.take(ctx, "flush"); err != nil {
		return err
	}
	defer c.turn.Give()
	if c.isClosed() {
		return opErr("flush", c.name, errClosed)
	}
	if len(c.batch) == 0 || c.tcp == nil {
		return nil
	}
	if _, err := c.tcp.WriteContext(ctx, c.batch); err != nil {
		c.tcp.Close()
		c.connMu.Lock()
		c.tcp, c.rr = nil, nil
		c.connMu.Unlock()
		c.batch = c.batch[:0]
		return opErr("flush", c.name, err)
	}
	c.batch = c.batch[:0]
	return nil
}

// Defer makes a deferred-synchronous call of procedure proc with args: the server
// acknowledges it at once with a ticket and runs it in the background; Collect
// gets the result later, on this client or another one (after a reconnection, say)
// of the same server. The acknowledgement is a two-way call with the client's
// semantics.
func (c *Client) Defer(ctx context.Context, proc uint32, args Value) (Ticket, error) {
	if ctx == nil {
		return 0, invalid("defer", c.name, "nil context")
	}
	if err := c.take(ctx, "defer"); err != nil {
		return 0, err
	}
	if c.isClosed() {
		c.turn.Give()
		return 0, opErr("defer", c.name, errClosed)
	}
	inner, err := c.wrap(proc, args)
	inner = append([]byte(nil), inner...)
	c.turn.Give()
	if err != nil {
		return 0, err
	}
	var t uint64
	if err := c.call(ctx, ControlProg, controlVers, procDefer, xdr.XdrVecOpaque{Bytes: &inner, Bound: uint32(len(inner))}, xdr.XDR_uint64(&t), c.cfg.sem); err != nil {
		return 0, err
	}
	return Ticket(t), nil
}

// Collect waits until the deferred call of ticket t has ended, or ctx ends, and
// decodes its result into res as Call would (its error is the call's: a status
// that is not SUCCESS matches its sentinel). A ticket the server does not know
// (never issued, evicted, or from a server that restarted) matches ErrSystemErr.
func (c *Client) Collect(ctx context.Context, t Ticket, res Value) error {
	if ctx == nil {
		return invalid("collect", c.name, "nil context")
	}
	if res == nil {
		res = Void
	} else if res != Void && nilValue(res) {
		return invalid("collect", c.name, "result into a nil %s", typeName(res))
	}
	tv := uint64(t)
	pause := time.Millisecond
	for {
		var reply []byte
		if err := c.call(ctx, ControlProg, controlVers, procCollect, xdr.XDR_uint64(&tv), xdr.XdrVecOpaque{Bytes: &reply, Bound: uint32(c.cfg.maxRecord)}, c.cfg.sem); err != nil {
			return err
		}
		if len(reply) == 0 {
			// Still running. Over TCP and doors the server waited for it a while
			// already; over UDP it answers at once, and the client backs off.
			select {
			case <-ctx.Done():
				return opErr("collect", c.name, ctx.Err())
			case <-time.After(pause):
			}
			pause = min(2*pause, 50*time.Millisecond)
			continue
		}
		rh, results, err := parseReply(reply)
		if err != nil {
			return opErr("collect", c.name, err)
		}
		if err := replyError(&rh); err != nil {
			return opErr("collect", c.name, err)
		}
		var d decoder
		if err := d.decodeValue(results, res); err != nil {
			return opErr("collect", c.name, protoErr("results: %v", err))
		}
		return nil
	}
}
