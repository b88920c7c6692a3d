package rpc

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/option"
	"github.com/ipclab/ipclab/internal/wait"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/doors"
	"github.com/ipclab/ipclab/sockets"
)

// Semantics is a call semantics: what a caller may conclude about how often the
// server ran the procedure.
type Semantics int

const (
	// Maybe sends the call once and waits for the reply until the deadline. The
	// client never repeats it, but a network may duplicate the datagram: the
	// procedure runs at most once only where the server drops duplicates, with a
	// reply cache (WithReplyCache); then a call that returned nil ran exactly once.
	// (Against a server without a cache, through a relay that duplicated 5% of
	// datagrams, 113 of 2000 maybe calls ran twice.)
	Maybe Semantics = iota + 1
	// AtLeastOnce retransmits the call, with the same xid, until a reply comes or
	// the deadline passes: a call that returns nil ran at least once (perhaps more:
	// each retransmission that reaches a server without a reply cache runs again).
	AtLeastOnce
	// AtMostOnce retransmits like AtLeastOnce and relies on the server's reply
	// cache (WithReplyCache) to run the procedure at most once and answer
	// retransmissions from the cache. Against a server without a cache it is
	// AtLeastOnce: the client cannot tell.
	AtMostOnce
)

// String returns the semantics' name.
func (s Semantics) String() string {
	switch s {
	case Maybe:
		return "maybe"
	case AtLeastOnce:
		return "at-least-once"
	case AtMostOnce:
		return "at-most-once"
	}
	return fmt.Sprintf("Semantics(%d)", int(s))
}

// ClientOption configures Dial.
type ClientOption func(*clientConfig)

type clientConfig struct {
	cred      OpaqueAuth
	sem       Semantics
	retry     time.Duration
	maxRetry  time.Duration
	timeout   time.Duration
	maxRecord int
	batchMax  int
	inet      netip.Prefix
}

// WithInetPrefix lets the client reach a server at an IPv4 address in p, a private
// (RFC 1918) prefix of a network the caller made, besides loopback: see
// sockets.AllowInetPrefix. Calls over it come from another host; the package doc
// says why a server does not trust their AUTH_SYS credentials.
func WithInetPrefix(p netip.Prefix) ClientOption { return func(c *clientConfig) { c.inet = p } }

// WithBatchLimit bounds the one-way calls a TCP client holds unsent (default 1
// MiB): a Send or Batch that would exceed it, with the socket full, fails with
// ipc.ErrWouldBlock instead of waiting for the server.
func WithBatchLimit(n int) ClientOption { return func(c *clientConfig) { c.batchMax = n } }

// WithCred sends cred (AUTH_NONE by default) with every call; AuthSys.Encode makes an
// AUTH_SYS credential.
func WithCred(cred OpaqueAuth) ClientOption { return func(c *clientConfig) { c.cred = cred } }

// WithSemantics sets the client's call semantics (default: AtLeastOnce over UDP, as
// Sun RPC does; over TCP every semantics sends a call once per connection).
func WithSemantics(s Semantics) ClientOption { return func(c *clientConfig) { c.sem = s } }

// WithRetransmit sets the first retransmission interval over UDP (default 100 ms);
// each later interval doubles, up to max.
func WithRetransmit(first, max time.Duration) ClientOption {
	return func(c *clientConfig) { c.retry, c.maxRetry = first, max }
}

// WithTimeout bounds a UDP call whose context has no deadline (default 25 s, as
// rpcgen's clients); 0 means no bound.
func WithTimeout(d time.Duration) ClientOption { return func(c *clientConfig) { c.timeout = d } }

// WithClientMaxRecord sets the largest reply record the client accepts (default
// DefaultMaxRecord).
func WithClientMaxRecord(n int) ClientOption { return func(c *clientConfig) { c.maxRecord = n } }

// CallOption configures one call.
type CallOption func(*callConfig)

type callConfig struct {
	sem Semantics
	set bool
}

// CallSemantics sets the semantics of one call, overriding the client's.
func CallSemantics(s Semantics) CallOption { return func(c *callConfig) { c.sem, c.set = s, true } }

// Client calls one version of one program on one server, over TCP, UDP or a door. Calls are
// serialised: one is in flight at a time, and a call waiting for its turn gives up
// when its context ends or the client closes. It is safe for concurrent use.
type Client struct {
	prog, vers uint32
	network    string
	addr       string
	cfg        clientConfig
	name       string

	// turn lets one call at a time use the client, and guards what follows but
	// connMu's: a call waiting for it gives up when its context ends or the
	// client closes.
	turn wait.Turn
	tcp  *sockets.StreamConn
	rr   *recordReader
	udp  *sockets.DgramConn
	door *doors.Client
	in   []byte
	// batch holds one-way calls not yet written to the TCP connection: queued by
	// Batch, or left over by a Send that could not write them without waiting.
	batch []byte
	inner encoder // a wrapped call's inner message
	enc   encoder
	dec   decoder
	xid   uint32

	// connMu guards closed and the swaps of tcp (made holding the turn too), so that
	// Close can close the sockets of a call in flight without waiting for it.
	connMu sync.Mutex
	closed bool
	sent   atomic.Uint64
}

// errClosed is a call on a closed Client. It matches os.ErrClosed and net.ErrClosed.
var errClosed error = closedError{}

type closedError struct{}

func (closedError) Error() string { return "client closed" }

func (closedError) Is(target error) bool { return target == os.ErrClosed || target == net.ErrClosed }

// Dial returns a client for version vers of program prog at addr, a loopback
// "127.x.y.z:port" (or an address of WithInetPrefix), over network "tcp" or "udp". A TCP client connects here (and
// again on the next call after the connection fails); a UDP client's socket is
// connected to addr.
func Dial(ctx context.Context, network, addr string, prog, vers uint32, opts ...ClientOption) (*Client, error) {
	if network != "tcp" && network != "udp" {
		return nil, invalid("dial", fmt.Sprintf("%d/%d@%s:%s", prog, vers, network, addr), "network %q, want tcp or udp", network)
	}
	c, err := newClient(ctx, network, addr, prog, vers, opts)
	if err != nil {
		return nil, err
	}
	if network == "udp" {
		u, err := sockets.DialUDP(ctx, addr, sockets.AllowInetPrefix(c.cfg.inet))
		if err != nil {
			return nil, err
		}
		c.udp = u
		c.in = make([]byte, maxDatagram+1)
		return c, nil
	}
	if err := c.connect(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// newClient checks the options and returns a client with no transport yet.
func newClient(ctx context.Context, network, addr string, prog, vers uint32, opts []ClientOption) (*Client, error) {
	cfg := clientConfig{retry: 100 * time.Millisecond, maxRetry: 2 * time.Second, timeout: 25 * time.Second, maxRecord: DefaultMaxRecord, batchMax: 1 << 20}
	name := fmt.Sprintf("%d/%d@%s:%s", prog, vers, network, addr)
	if err := option.Apply(&cfg, opts); err != nil {
		return nil, opErr("dial", name, err)
	}
	switch {
	case cfg.cred.Flavor != FlavorNone && cfg.cred.Flavor != FlavorSys, len(cfg.cred.Body) > maxAuthBody:
		return nil, invalid("dial", name, "credential of flavour %d and %d bytes", cfg.cred.Flavor, len(cfg.cred.Body))
	case cfg.sem != 0 && (cfg.sem < Maybe || cfg.sem > AtMostOnce):
		return nil, invalid("dial", name, "semantics %d", int(cfg.sem))
	case cfg.retry <= 0 || cfg.maxRetry < cfg.retry || cfg.timeout < 0:
		return nil, invalid("dial", name, "retransmission %v..%v, timeout %v", cfg.retry, cfg.maxRetry, cfg.timeout)
	case cfg.maxRecord < 24 || cfg.maxRecord > 1<<30:
		return nil, invalid("dial", name, "max record %d", cfg.maxRecord)
	case cfg.batchMax < 0 || cfg.batchMax > 1<<30:
		return nil, invalid("dial", name, "batch limit %d", cfg.batchMax)
	case ctx == nil:
		return nil, invalid("dial", name, "nil context")
	}
	if cfg.sem == 0 {
		cfg.sem = AtLeastOnce
	}
	c := &Client{prog: prog, vers: vers, network: network, addr: addr, cfg: cfg, name: name}
	c.turn.Init()
	var x [4]byte
	_, _ = rand.Read(x[:])
	c.xid = binary.BigEndian.Uint32(x[:])
	c.enc.b = make([]byte, 0, 4096)
	return c, nil
}

func (c *Client) connect(ctx context.Context) error {
	t, err := sockets.DialTCP(ctx, c.addr, sockets.AllowInetPrefix(c.cfg.inet))
	if err != nil {
		return err
	}
	c.connMu.Lock()
	defer c.connMu.Unlock()
	if c.closed {
		t.Close()
		return errClosed
	}
	c.tcp = t
	c.rr = newRecordReader(t, c.cfg.maxRecord)
	return nil
}

// Prog returns the program number the client calls.
func (c *Client) Prog() uint32 { return c.prog }

// Vers returns the program version the client calls.
func (c *Client) Vers() uint32 { return c.vers }

// Transmissions returns how many call messages the client has sent,
// retransmissions included.
func (c *Client) Transmissions() uint64 { return c.sent.Load() }

// Close closes the client's socket; a call in flight returns at once with an error
// matching os.ErrClosed (and net.ErrClosed), as does every later call. It is
// idempotent; later calls return nil.
func (c *Client) Close() error {
	c.connMu.Lock()
	if c.closed {
		c.connMu.Unlock()
		return nil
	}
	c.closed = true
	u, t, d := c.udp, c.tcp, c.door
	c.connMu.Unlock()
	c.turn.Close() // calls waiting for their turn end now
	if d != nil {
		return d.Close()
	}
	if u != nil {
		return u.Close()
	}
	if t != nil {
		return t.Close()
	}
	return nil
}

func (c *Client) isClosed() bool {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	return c.closed
}

// Call calls procedure proc with args and decodes the result into res (Void, or
// nil, for void). It returns nil on SUCCESS; otherwise an *ipc.OpError matching the
// reply's sentinel (ErrProcUnavail, ErrGarbageArgs, ErrAuth, ...), ErrProtocol for
// a reply that does not decode, or the context's or the transport's error. With a
// context that cannot end and no deadline, a TCP call allocates nothing beyond what
// args and res themselves need.
func (c *Client) Call(ctx context.Context, proc uint32, args, res Value, opts ...CallOption) error {
	if ctx == nil {
		return invalid("call", c.name, "nil context")
	}
	sem := c.cfg.sem
	if len(opts) > 0 {
		var cc callConfig
		if err := option.Apply(&cc, opts); err != nil {
			return opErr("call", c.name, err)
		}
		if cc.set {
			if cc.sem < Maybe || cc.sem > AtMostOnce {
				return invalid("call", c.name, "semantics %d", int(cc.sem))
			}
			sem = cc.sem
		}
	}
	if args == nil {
		args = Void
	}
	if res == nil {
		res = Void
	} else if res != Void && nilValue(res) {
		return invalid("call", c.name, "result into a nil %s", typeName(res))
	}
	return c.call(ctx, c.prog, c.vers, proc, args, res, sem)
}

// call makes a two-way call of procedure proc of version vers of program prog
// (the client's, or the control program's).
func (c *Client) call(ctx context.Context, prog, vers, proc uint32, args, res Value, sem Semantics) error {
	if err := c.take(ctx, "call"); err != nil {
		return err
	}
	defer c.turn.Give()
	if c.isClosed() {
		return opErr("call", c.name, errClosed)
	}
	c.xid++
	h := CallHeader{XID: c.xid, Prog: prog, Vers: vers, Proc: proc, Cred: c.cfg.cred}
	var mark int
	c.enc.b = c.enc.b[:0]
	if c.door == nil && (c.tcp != nil || c.udp == nil) {
		c.enc.b = append(c.enc.b, 0, 0, 0, 0)
		mark = 4
	}
	c.enc.b = appendCall(c.enc.b, &h)
	if err := c.enc.appendValue(args); err != nil {
		return invalid("call", c.name, "arguments: %v", err)
	}
	var results []byte
	var rh ReplyHeader
	var err error
	if c.door != nil {
		rh, results, err = c.roundTripDoor(ctx, h.XID)
	} else if c.udp != nil {
		if len(c.enc.b) > maxDatagram {
			return opErr("call", c.name, fmt.Errorf("call of %d bytes does not fit a datagram: %w", len(c.enc.b), ErrTooBig))
		}
		rh, results, err = c.roundTripUDP(ctx, h.XID, sem)
	} else {
		if len(c.enc.b)-mark > c.cfg.maxRecord {
			return opErr("call", c.name, ErrTooBig)
		}
		putMark(c.enc.b, len(c.enc.b)-4)
		rh, results, err = c.roundTripTCP(ctx, h.XID)
	}
	if err != nil {
		if c.isClosed() {
			err = errClosed
		}
		return opErr("call", c.name, err)
	}
	if err := replyError(&rh); err != nil {
		return opErr("call", c.name, err)
	}
	if err := c.dec.decodeValue(results, res); err != nil {
		return opErr("call", c.name, protoErr("results: %v", err))
	}
	return nil
}

// take waits for the client's turn (see Client.turn) under ctx: it fails with
// ctx's error when ctx ends first, with errClosed once the client is closed. On
// success the caller gives the turn back.
func (c *Client) take(ctx context.Context, op string) error {
	if err := c.turn.Take(ctx, nil, false); err != nil {
		if errors.Is(err, os.ErrClosed) {
			err = errClosed
		}
		return opErr(op, c.name, err)
	}
	return nil
}

// roundTripTCP sends the call in c.enc.b and reads records until the reply with xid.
// A transport failure closes the connection; the next call connects again.
func (c *Client) roundTripTCP(ctx context.Context, xid uint32) (ReplyHeader, []byte, error) {
	if c.tcp == nil {
		if err := c.connect(ctx); err != nil {
			return ReplyHeader{}, nil, err
		}
	}
	broken := func(err error) (ReplyHeader, []byte, error) {
		c.tcp.Close()
		c.connMu.Lock()
		c.tcp, c.rr = nil, nil
		c.connMu.Unlock()
		c.batch = c.batch[:0] // one-way calls queued for the broken connection are lost
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = ipc.MapErrno(unix.ECONNRESET)
		}
		return ReplyHeader{}, nil, err
	}
	if len(c.batch) > 0 {
		// Batched one-way calls go first, flushed by this two-way call.
		if _, err := c.tcp.WriteContext(ctx, c.batch); err != nil {
			return broken(err)
		}
		c.batch = c.batch[:0]
	}
	c.sent.Add(1)
	if _, err := c.tcp.WriteContext(ctx, c.enc.b); err != nil {
		return broken(err)
	}
	for {
		rec, err := c.rr.next(ctx)
		if err != nil {
			return broken(err)
		}
		rxid, mt, err := msgType(rec)
		if err != nil || mt != msgReply {
			return broken(protoErr("record that is no reply"))
		}
		if rxid != xid {
			continue // the late reply of an abandoned call
		}
		h, results, err := parseReply(rec)
		if err != nil {
			return broken(err)
		}
		return h, results, nil
	}
}

// roundTripUDP sends the call in c.enc.b and waits for its reply, retransmitting it
// by the semantics.
func (c *Client) roundTripUDP(ctx context.Context, xid uint32, sem Semantics) (ReplyHeader, []byte, error) {
	deadline, has := ctx.Deadline()
	ctxDeadline := has // the deadline is the context's, not the client's timeout
	if !has && c.cfg.timeout > 0 {
		deadline, has = time.Now().Add(c.cfg.timeout), true
	}
	// Each wait below sets the read deadline it needs (none when next is zero), so
	// the one left behind by a call is never reset: only this client reads the socket.
	interval := c.cfg.retry
	for {
		c.sent.Add(1)
		if err := c.udp.Send(ctx, c.enc.b); err != nil && !errors.Is(err, unix.ECONNREFUSED) {
			return ReplyHeader{}, nil, err
		}
		// Wait until the next retransmission is due, or the deadline.
		var next time.Time
		if sem != Maybe {
			next = time.Now().Add(interval)
			interval = min(2*interval, c.cfg.maxRetry)
		}
		if has && (next.IsZero() || deadline.Before(next)) {
			next = deadline
		}
		for {
			if err := c.udp.SetReadDeadline(next); err != nil {
				return ReplyHeader{}, nil, err
			}
			n, err := c.udp.Recv(ctx, c.in)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					if has && !time.Now().Before(deadline) {
						if ctxDeadline {
							// The socket's deadline was the context's: say so,
							// whether or not ctx's own timer has fired yet.
							if cerr := ctx.Err(); cerr != nil {
								return ReplyHeader{}, nil, cerr
							}
							return ReplyHeader{}, nil, context.DeadlineExceeded
						}
						return ReplyHeader{}, nil, err
					}
					break // retransmit
				}
				if errors.Is(err, unix.ECONNREFUSED) {
					if sem == Maybe {
						return ReplyHeader{}, nil, err
					}
					continue // nobody there yet: keep waiting, retransmit when due
				}
				return ReplyHeader{}, nil, err
			}
			if n == len(c.in) {
				continue // too long to be a reply we can take
			}
			rec := c.in[:n]
			rxid, mt, err := msgType(rec)
			if err != nil || mt != msgReply || rxid != xid {
				continue // a stranger's datagram or a late duplicate
			}
			h, results, err := parseReply(rec)
			if err != nil {
				continue
			}
			return h, results, nil
		}
	}
}

// Pending is an asynchronous call started by Client.Go.
type Pending struct {
	done chan struct{}
	err  error
}

// Done is closed when the call has ended.
func (p *Pending) Done() <-chan struct{} { return p.done }

// Wait waits for the call to end and returns its error, as Call would have.
func (p *Pending) Wait() error {
	<-p.done
	return p.err
}

// Go starts a call and returns at once, as net/rpc's Client.Go: the call goes out
// when the client's calls before it have ended (calls on one client are sent one at
// a time), and Pending.Done is closed when it ends; ctx bounds it as it bounds Call.
// args and res must stay untouched until then.
func (c *Client) Go(ctx context.Context, proc uint32, args, res Value, opts ...CallOption) *Pending {
	p := &Pending{done: make(chan struct{})}
	if ctx == nil {
		p.err = invalid("call", c.name, "nil context")
		close(p.done)
		return p
	}
	go func() {
		defer close(p.done)
		p.err = c.Call(ctx, proc, args, res, opts...)
	}()
	return p
}
