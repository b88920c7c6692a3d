package rpc

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipclab/ipclab/internal/option"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/sockets"
)

// ProcFunc serves one procedure of a program version. It decodes its arguments with
// c.Args, does the work and encodes its result with c.Result (a procedure that
// returns void need not call it). Returning an error sends an error reply instead
// of the result: ErrGarbageArgs (what c.Args returns for bad arguments) sends
// GARBAGE_ARGS, an *AuthError sends AUTH_ERROR with its reason, ErrProcUnavail
// PROC_UNAVAIL, anything else SYSTEM_ERR. ctx ends when the server closes.
type ProcFunc func(ctx context.Context, c *Call) error

// Call is one incoming call as its ProcFunc sees it. It and everything in it are
// valid only until the ProcFunc returns.
type Call struct {
	Header    CallHeader
	Transport string   // "tcp", "udp" or "door"
	Addr      net.Addr // the caller's address (a DoorAddr over a door)

	cred     *sockets.Cred // the kernel's word on the caller, over a door
	durable  bool          // the server has a durable reply log
	effect   []byte        // what Effect recorded
	args     []byte
	dec      decoder
	enc      *encoder
	repStart int // where the reply starts in enc.b
	resStart int
	hasRes   bool
}

// Args decodes the call's arguments into v, which must take all of them. Bad
// arguments are an error matching ErrGarbageArgs: return it and the caller gets
// GARBAGE_ARGS.
func (c *Call) Args(v Value) error {
	if v == nil || nilValue(v) {
		return invalid("args", "", "nil value")
	}
	if err := c.dec.decodeValue(c.args, v); err != nil {
		return opErr("decode arguments", typeName(v), fmt.Errorf("%v: %w", err, ErrGarbageArgs))
	}
	return nil
}

// Result encodes v as the call's result. A second call replaces the first. A value
// out of its bounds is an error matching ipc.ErrInvalid (the caller gets
// SYSTEM_ERR if the ProcFunc returns it).
func (c *Call) Result(v Value) error {
	if v == nil {
		return invalid("result", "", "nil value")
	}
	c.enc.b = c.enc.b[:c.resStart]
	if err := c.enc.appendValue(v); err != nil {
		c.enc.b = c.enc.b[:c.resStart]
		return invalid("encode result", typeName(v), "%v", err)
	}
	c.hasRes = true
	return nil
}

// AuthSys returns the caller's AUTH_SYS credential. Over TCP and UDP it is what
// the client claims (see the package doc before trusting it), and a call with
// another flavour is an *AuthError (AUTH_TOOWEAK): return it to refuse the call.
// Over a door it is the caller's uid and gid as the kernel vouches for them
// (SCM_CREDENTIALS), with Machine "localhost", whatever the client claimed.
func (c *Call) AuthSys() (AuthSys, error) {
	if c.cred != nil {
		return AuthSys{Machine: "localhost", UID: c.cred.Uid, GID: c.cred.Gid}, nil
	}
	if c.Header.Cred.Flavor != FlavorSys {
		return AuthSys{}, &AuthError{Stat: AuthTooWeak}
	}
	a, err := DecodeAuthSys(c.Header.Cred.Body)
	if err != nil {
		return AuthSys{}, &AuthError{Stat: AuthBadCred}
	}
	return a, nil
}

// PeerCred returns the caller's credentials as the kernel vouches for them, and
// true, for a call over a door; false over TCP and UDP.
func (c *Call) PeerCred() (sockets.Cred, bool) {
	if c.cred == nil {
		return sockets.Cred{}, false
	}
	return *c.cred, true
}

// ServerOption configures NewServer.
type ServerOption func(*serverConfig)

type serverConfig struct {
	maxRecord   int
	policy      func(c *Call) error
	cacheSize   int
	cacheMinAge time.Duration
	cacheBytes  int
	deferMax    int
	durable     bool
	durablePath string
	replay      func(Effect) error
	idle        time.Duration
	maxConns    int
	inet        netip.Prefix
}

// DefaultIdleTimeout is how long a server waits, by default, for a TCP
// connection's next call record to arrive in full (WithIdleTimeout).
const DefaultIdleTimeout = 2 * time.Minute

// DefaultMaxConns is how many TCP connections a server serves at once by default
// (WithMaxConns).
const DefaultMaxConns = 1024

// WithServerInetPrefix lets ListenTCP and ListenUDP bind to an IPv4 address in p,
// a private (RFC 1918) prefix of a network the caller made, besides loopback (see
// sockets.AllowInetPrefix), and the UDP server answer clients there. Calls over it
// come from other hosts: AUTH_SYS credentials in them are claims, not facts.
func WithServerInetPrefix(p netip.Prefix) ServerOption {
	return func(c *serverConfig) { c.inet = p }
}

// WithIdleTimeout bounds how long the server waits for a TCP connection's next
// call record, from the end of the previous reply (or the accept) to the record's
// last byte (default DefaultIdleTimeout): a connection that stays silent, or sends
// a record too slowly, is closed (within 1.25 times d), so that a client cannot
// hold the server's resources with connections that say nothing. 0 means no bound.
func WithIdleTimeout(d time.Duration) ServerOption { return func(c *serverConfig) { c.idle = d } }

// WithMaxConns bounds the TCP connections the server serves at once (default
// DefaultMaxConns): a connection accepted beyond it is closed at once, before
// anything is read from it.
func WithMaxConns(n int) ServerOption { return func(c *serverConfig) { c.maxConns = n } }

// WithMaxRecord sets the largest call record or datagram the server accepts
// (default DefaultMaxRecord); a longer record closes the TCP connection before its
// bytes are read.
func WithMaxRecord(n int) ServerOption { return func(c *serverConfig) { c.maxRecord = n } }

// WithAuthPolicy makes the server vet every call's credentials before it looks the
// procedure up: policy returns nil to accept, an *AuthError to refuse with its
// reason, any other error to refuse with AUTH_TOOWEAK.
func WithAuthPolicy(policy func(c *Call) error) ServerOption {
	return func(c *serverConfig) { c.policy = policy }
}

// DefaultCacheAge is a reply-cache minimum age that covers a client's default
// retransmission window (WithTimeout's 25 s) with room to spare.
const DefaultCacheAge = 30 * time.Second

// WithReplyCache gives the server a duplicate-request cache of entries calls
// (at-most-once, see the package doc), for UDP and door calls (a TCP client does
// not retransmit on a connection; over a new one it is a new client), which takes
// only calls that pass the credential, policy, program and procedure checks and
// reach a handler: a call whose (transport, client address, xid,
// program, version, procedure) is in the cache is answered from it, or dropped while
// its first copy is still running, and its handler never runs twice. The cache
// never evicts an entry younger than minAge: when it is full of younger entries a
// new call is dropped unanswered (the client's retransmission comes back later), so
// at-most-once holds for every client that stops retransmitting within minAge.
func WithReplyCache(entries int, minAge time.Duration) ServerOption {
	return func(c *serverConfig) { c.cacheSize, c.cacheMinAge = entries, minAge }
}

// DefaultCacheBytes bounds the bytes of the replies a reply cache holds unless
// WithReplyCacheBytes says otherwise.
const DefaultCacheBytes = 32 << 20

// WithReplyCacheBytes bounds the bytes of the replies the reply cache
// (WithReplyCache) holds (default DefaultCacheBytes); over it, the cache counts as
// full, with the same eviction rule as for its entries.
func WithReplyCacheBytes(n int) ServerOption { return func(c *serverConfig) { c.cacheBytes = n } }

// ServerStats counts what a server did.
type ServerStats struct {
	Calls      uint64 // call messages received, duplicates included
	Handled    uint64 // handler runs
	CacheHits  uint64 // calls answered from the reply cache
	InProgress uint64 // duplicates dropped because the first copy was running
	CacheFull  uint64 // calls dropped because the cache was full of young entries
	Garbage    uint64 // records or datagrams dropped as malformed
}

type progVers struct{ prog, vers uint32 }

// Server serves ONC RPC programs over TCP (record marking) and UDP at once: one
// goroutine per TCP connection and one per UDP socket read calls and run their
// handlers in turn.
type Server struct {
	cfg    serverConfig
	ctx    context.Context
	cancel context.CancelFunc
	cache  *replyCache
	log    *durableLog
	logMu  sync.Mutex
	ctl    map[uint32]ProcFunc

	deferMu    sync.Mutex
	deferred   map[uint64]*deferredCall
	deferOrder []uint64

	mu        sync.Mutex
	progs     map[progVers]map[uint32]ProcFunc
	tcp       []*sockets.StreamListener
	udp       []*sockets.DgramConn
	conns     map[*sockets.StreamConn]*idleClock
	reaper    bool // the idle reaper runs (WithIdleTimeout)
	doors     []serverDoor
	binder    []binderBinding // door binder entries to remove at Close
	bindings  []binding       // rpcbind registrations to undo at Close
	closed    bool
	wg        sync.WaitGroup
	closeErr  error
	closeOnce sync.Once

	stats struct {
		calls, handled, hits, inProgress, full, garbage atomic.Uint64
	}
}

// NewServer returns a server with no programs and no listeners.
func NewServer(opts ...ServerOption) (*Server, error) {
	cfg := serverConfig{maxRecord: DefaultMaxRecord, deferMax: defaultDeferMax, idle: DefaultIdleTimeout, maxConns: DefaultMaxConns,
		cacheBytes: DefaultCacheBytes}
	if err := option.Apply(&cfg, opts); err != nil {
		return nil, opErr("new server", "", err)
	}
	if cfg.maxRecord < 28 || cfg.maxRecord > 1<<30 {
		return nil, invalid("new server", "", "max record %d outside [28, 1 GiB]", cfg.maxRecord)
	}
	if cfg.cacheSize < 0 || (cfg.cacheSize > 0 && cfg.cacheMinAge < 0) || cfg.cacheBytes < 1 {
		return nil, invalid("new server", "", "reply cache of %d entries and %d bytes, min age %v", cfg.cacheSize, cfg.cacheBytes, cfg.cacheMinAge)
	}
	if cfg.idle < 0 || cfg.maxConns < 1 {
		return nil, invalid("new server", "", "idle timeout %v, connection limit %d", cfg.idle, cfg.maxConns)
	}
	if cfg.deferMax < 1 {
		return nil, invalid("new server", "", "deferred-call limit %d", cfg.deferMax)
	}
	s := &Server{cfg: cfg, progs: map[progVers]map[uint32]ProcFunc{}, conns: map[*sockets.StreamConn]*idleClock{},
		deferred: map[uint64]*deferredCall{}}
	s.ctl = s.controlProcs()
	if cfg.durable && cfg.cacheSize == 0 {
		cfg.cacheSize, cfg.cacheMinAge = 4096, DefaultCacheAge
		s.cfg = cfg
	}
	if cfg.durable && (cfg.durablePath == "" || strings.ContainsRune(cfg.durablePath, 0)) {
		return nil, invalid("new server", cfg.durablePath, "bad reply log path")
	}
	if cfg.cacheSize > 0 {
		s.cache = newReplyCache(cfg.cacheSize, cfg.cacheMinAge)
		s.cache.maxBytes = cfg.cacheBytes
	}
	if cfg.durable {
		l, err := openDurable(cfg.durablePath, s.cache, cfg.replay)
		if err != nil {
			return nil, err
		}
		s.log = l
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Register makes the server serve version vers of program prog with procs, by
// procedure number. Procedure 0, the null procedure, answers with void unless procs
// has one. Registering a program version twice is an error.
func (s *Server) Register(prog, vers uint32, procs map[uint32]ProcFunc) error {
	obj := fmt.Sprintf("%d/%d", prog, vers)
	for p, f := range procs {
		if f == nil {
			return invalid("register", obj, "procedure %d has a nil function", p)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return opErr("register", obj, net.ErrClosed)
	}
	if _, dup := s.progs[progVers{prog, vers}]; dup {
		return invalid("register", obj, "program version already registered")
	}
	s.progs[progVers{prog, vers}] = maps.Clone(procs)
	return nil
}

// ListenTCP serves on a TCP listener bound to addr, a loopback "127.x.y.z:port"
// (or an address of WithServerInetPrefix; port 0 picks a free one), and returns its address.
func (s *Server) ListenTCP(addr string) (*net.TCPAddr, error) {
	l, err := sockets.ListenTCP(addr, sockets.AllowInetPrefix(s.cfg.inet))
	if err != nil {
		return nil, err
	}
	return s.ServeTCP(l)
}

// ServeTCP serves on a TCP listener made elsewhere (one inherited from a parent
// process, say: sockets.FileStreamListener), which the server then owns and
// closes, and returns its address.
func (s *Server) ServeTCP(l *sockets.StreamListener) (*net.TCPAddr, error) {
	if l == nil {
		return nil, invalid("serve", "", "nil listener")
	}
	ta, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return nil, invalid("serve", l.Addr().String(), "not a TCP listener")
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return nil, opErr("listen", ta.String(), net.ErrClosed)
	}
	s.tcp = append(s.tcp, l)
	s.wg.Add(1)
	if s.cfg.idle > 0 && !s.reaper {
		s.reaper = true
		s.wg.Add(1)
		go s.reapIdle()
	}
	s.mu.Unlock()
	go s.acceptLoop(l)
	return ta, nil
}

// ListenUDP serves on a UDP socket bound to addr, a loopback "127.x.y.z:port" (or an
// address of WithServerInetPrefix), and returns its address.
func (s *Server) ListenUDP(addr string) (*net.UDPAddr, error) {
	u, err := sockets.ListenUDP(addr, sockets.AllowInetPrefix(s.cfg.inet))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		u.Close()
		return nil, opErr("listen", addr, net.ErrClosed)
	}
	s.udp = append(s.udp, u)
	s.wg.Add(1)
	s.mu.Unlock()
	go s.udpLoop(u)
	return u.LocalAddr().(*net.UDPAddr), nil
}

// Stats returns what the server has done so far.
func (s *Server) Stats() ServerStats {
	return ServerStats{
		Calls: s.stats.calls.Load(), Handled: s.stats.handled.Load(), CacheHits: s.stats.hits.Load(),
		InProgress: s.stats.inProgress.Load(), CacheFull: s.stats.full.Load(), Garbage: s.stats.garbage.Load(),
	}
}

// Close stops the server: it unregisters what Advertise registered with rpcbind,
// closes every listener and connection, cancels the handlers' context and waits for
// the server's goroutines to end. It is idempotent; later calls return nil.
func (s *Server) Close() error {
	first := false
	s.closeOnce.Do(func() {
		first = true
		s.mu.Lock()
		s.closed = true
		bindings := s.bindings
		s.bindings = nil
		var errs []error
		for _, bb := range s.binder {
			errs = append(errs, bb.b.Unset(bb.pv.prog, bb.pv.vers))
		}
		s.binder = nil
		for _, d := range s.doors {
			errs = append(errs, d.d.Close())
		}
		for _, l := range s.tcp {
			errs = append(errs, l.Close())
		}
		for _, u := range s.udp {
			errs = append(errs, u.Close())
		}
		for c := range s.conns {
			errs = append(errs, c.Close())
		}
		s.mu.Unlock()
		s.cancel()
		s.wg.Wait()
		errs = append(errs, unsetAll(bindings))
		if s.log != nil {
			errs = append(errs, s.log.close())
		}
		s.closeErr = ipc.Join(errs...)
	})
	if !first {
		return nil
	}
	return s.closeErr
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) acceptLoop(l *sockets.StreamListener) {
	defer s.wg.Done()
	for {
		c, err := l.AcceptStream(context.Background())
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.isClosed() {
				return
			}
			// Out of descriptors and the like: do not spin.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		if len(s.conns) >= s.cfg.maxConns {
			// Over the limit: refuse it rather than let it wait unserved.
			s.mu.Unlock()
			c.Close()
			continue
		}
		clock := new(idleClock)
		clock.wait()
		s.conns[c] = clock
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c, clock)
	}
}

// serveConn reads records from one TCP connection and answers each in turn.
func (s *Server) serveConn(c *sockets.StreamConn, clock *idleClock) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	rr := newRecordReader(c, s.cfg.maxRecord)
	enc := &encoder{b: make([]byte, 0, 4096)}
	from := c.RemoteAddr()
	key := "tcp " + from.String()
	for {
		clock.wait()
		rec, err := rr.next(context.Background())
		clock.busy()
		if err != nil {
			if errors.Is(err, ErrProtocol) {
				s.stats.garbage.Add(1)
			}
			return
		}
		enc.b = append(enc.b[:0], 0, 0, 0, 0)
		if !s.dispatch(rec, "tcp", from, key, enc, nil) {
			continue
		}
		putMark(enc.b, len(enc.b)-4)
		if _, err := c.WriteContext(context.Background(), enc.b); err != nil {
			return
		}
		faultPoint("rpc-after-reply")
	}
}

// idleClock says since when a TCP connection has waited for its next call record
// (nanoseconds on epoch's monotonic clock), or 0 while one of its calls is being
// handled, for the idle reaper. The reads themselves carry no deadline: a
// deadline would take every read off the engine's fast path.
type idleClock struct{ since atomic.Int64 }

// epoch is the origin of idleClock's monotonic readings.
var epoch = time.Now()

func (k *idleClock) wait() { k.since.Store(int64(time.Since(epoch)) | 1) }
func (k *idleClock) busy() { k.since.Store(0) }

// reapIdle closes, until the server closes, every TCP connection that has waited
// longer than the idle timeout for its next record (WithIdleTimeout); it looks
// four times per timeout, so a connection goes between 1 and 1.25 timeouts.
func (s *Server) reapIdle() {
	defer s.wg.Done()
	t := time.NewTicker(max(s.cfg.idle/4, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		now := int64(time.Since(epoch))
		s.mu.Lock()
		for c, k := range s.conns {
			if since := k.since.Load(); since != 0 && now-since > int64(s.cfg.idle) {
				c.Close() // serveConn's read returns and it leaves
			}
		}
		s.mu.Unlock()
	}
}

// udpLoop reads datagrams from one UDP socket and answers each in turn.
func (s *Server) udpLoop(u *sockets.DgramConn) {
	defer s.wg.Done()
	buf := make([]byte, min(s.cfg.maxRecord, maxDatagram)+1)
	enc := &encoder{b: make([]byte, 0, maxDatagram)}
	for {
		n, from, err := u.RecvFrom(context.Background(), buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.isClosed() {
				return
			}
			continue // an ICMP error of an earlier reply, say
		}
		if n == len(buf) { // over the limit (or truncated): not a call we can take
			s.stats.garbage.Add(1)
			continue
		}
		enc.b = enc.b[:0]
		if !s.dispatch(buf[:n], "udp", from, "udp "+from.String(), enc, nil) {
			continue
		}
		if len(enc.b) > maxDatagram {
			// The result does not fit a datagram: say so rather than send nothing.
			h, _, _ := parseCall(buf[:n])
			enc.b = appendReply(enc.b[:0], &ReplyHeader{XID: h.XID, Accepted: true, Stat: SystemErr})
		}
		_ = u.SendTo(context.Background(), enc.b, from)
		faultPoint("rpc-after-reply")
	}
}

// dispatch answers one call message into enc.b (after what is there). It returns
// false when no reply is to be sent: a malformed message, a reply, a duplicate
// whose first copy is running, or a call the full reply cache cannot take.
func (s *Server) dispatch(msg []byte, transport string, from net.Addr, client string, enc *encoder, cred *sockets.Cred) bool {
	s.stats.calls.Add(1)
	start := len(enc.b)
	h, args, err := parseCall(msg)
	if err == errRPCVers {
		enc.b = appendReply(enc.b, &ReplyHeader{XID: h.XID, Reject: rejectRPCMismatch, Low: rpcVersion, High: rpcVersion})
		return true
	}
	if err != nil {
		s.stats.garbage.Add(1)
		return false
	}
	var key cacheKey
	if s.cache != nil || s.log != nil {
		key = cacheKey{client: client, xid: h.XID, prog: h.Prog, vers: h.Vers, proc: h.Proc}
	}
	// The reply cache is for retransmissions, which a TCP client never sends on
	// the connection that had the call (and a new connection is a new client
	// address): TCP calls do not use it.
	cache := s.cache
	if transport == "tcp" {
		cache = nil
	}
	if h.Prog == ControlProg && h.Vers == controlVers && h.Proc == procOneWay {
		// One-way: never a reply; the reply cache (if any) drops duplicates.
		if cache != nil {
			if st, _ := cache.begin(key); st != cacheNew {
				s.stats.hits.Add(1)
				return false
			}
		}
		s.oneWay(args, transport, from, cred)
		if cache != nil {
			cache.finish(key, []byte{})
		}
		return false
	}
	// Only a call that passes the checks and reaches a handler takes a cache
	// entry: refusals are cheap to repeat, and must not fill the cache.
	f, c := s.vet(&h, args, transport, from, enc, cred)
	if f == nil {
		return true
	}
	if cache != nil {
		switch st, reply := cache.begin(key); st {
		case cacheDone:
			s.stats.hits.Add(1)
			enc.b = append(enc.b[:start], reply...)
			return true
		case cacheRunning:
			s.stats.inProgress.Add(1)
			return false
		case cacheFull:
			s.stats.full.Add(1)
			return false
		}
	}
	faultPoint("rpc-before-handler")
	effect := s.run(f, c)
	faultPoint("rpc-after-handler")
	if s.log != nil {
		s.logMu.Lock()
		err := s.log.commit(key, effect, enc.b[start:])
		s.logMu.Unlock()
		if err != nil {
			// Not durable: never send a success that a restart could forget.
			enc.b = appendReply(enc.b[:start], &ReplyHeader{XID: h.XID, Accepted: true, Stat: SystemErr})
		}
	}
	if cache != nil {
		cache.finish(key, enc.b[start:])
	}
	return true
}

// testFaultPoint, when set (by the package's tests), is called at the named
// points of a call's life on the server: "rpc-before-handler",
// "rpc-after-handler" (before the reply is recorded and sent) and
// "rpc-after-reply" (TCP and UDP), where a test may crash or stop the process.
var testFaultPoint func(name string)

func faultPoint(name string) {
	if testFaultPoint != nil {
		testFaultPoint(name)
	}
}

// answer runs the call's checks and handler and appends the reply to enc.b. It
// returns the effect the handler recorded (Call.Effect) if it succeeded.
func (s *Server) answer(h *CallHeader, args []byte, transport string, from net.Addr, enc *encoder, cred *sockets.Cred) []byte {
	f, c := s.vet(h, args, transport, from, enc, cred)
	if f == nil {
		return nil
	}
	return s.run(f, c)
}

// vet runs the call's checks (credentials, policy, program, version, procedure).
// A call refused, or one to a null procedure without a handler, has its reply
// appended to enc.b and vet returns a nil ProcFunc; otherwise it returns the
// handler and the Call to run it with (run), with a SUCCESS header in enc.b.
func (s *Server) vet(h *CallHeader, args []byte, transport string, from net.Addr, enc *encoder, cred *sockets.Cred) (ProcFunc, *Call) {
	start := len(enc.b)
	deny := func(stat AuthStat) {
		enc.b = appendReply(enc.b[:start], &ReplyHeader{XID: h.XID, Reject: rejectAuthError, Auth: stat})
	}
	accept := func(stat AcceptStat, low, high uint32) {
		enc.b = appendReply(enc.b[:start], &ReplyHeader{XID: h.XID, Accepted: true, Stat: stat, Low: low, High: high})
	}
	switch h.Cred.Flavor {
	case FlavorNone:
	case FlavorSys:
		if _, err := DecodeAuthSys(h.Cred.Body); err != nil {
			deny(AuthBadCred)
			return nil, nil
		}
	default:
		deny(AuthRejectedCred)
		return nil, nil
	}
	if h.Verf.Flavor != FlavorNone {
		deny(AuthBadVerf)
		return nil, nil
	}
	c := &Call{Header: *h, Transport: transport, Addr: from, args: args, enc: enc, cred: cred, durable: s.log != nil, repStart: start}
	if s.cfg.policy != nil {
		if err := s.cfg.policy(c); err != nil {
			if ae, ok := isAuth(err); ok {
				deny(ae.Stat)
			} else {
				deny(AuthTooWeak)
			}
			return nil, nil
		}
	}
	s.mu.Lock()
	procs, ok := s.progs[progVers{h.Prog, h.Vers}]
	if !ok && h.Prog == ControlProg && h.Vers == controlVers {
		procs, ok = s.ctl, true
	}
	var low, high uint32
	if !ok {
		for pv := range s.progs {
			if pv.prog == h.Prog {
				if !ok || pv.vers < low {
					low = pv.vers
				}
				if !ok || pv.vers > high {
					high = pv.vers
				}
				ok = true
			}
		}
		s.mu.Unlock()
		if ok {
			accept(ProgMismatch, low, high)
		} else {
			accept(ProgUnavail, 0, 0)
		}
		return nil, nil
	}
	f := procs[h.Proc]
	s.mu.Unlock()
	if f == nil {
		if h.Proc == 0 {
			accept(Success, 0, 0)
		} else {
			accept(ProcUnavail, 0, 0)
		}
		return nil, nil
	}
	accept(Success, 0, 0)
	c.resStart = len(enc.b)
	return f, c
}

// run runs a vetted call's handler and completes its reply in c.enc.b (from the
// header vet wrote). It returns the effect the handler recorded (Call.Effect) if
// it succeeded.
func (s *Server) run(f ProcFunc, c *Call) []byte {
	h, enc := &c.Header, c.enc
	start := c.repStart
	deny := func(stat AuthStat) {
		enc.b = appendReply(enc.b[:start], &ReplyHeader{XID: h.XID, Reject: rejectAuthError, Auth: stat})
	}
	accept := func(stat AcceptStat) {
		enc.b = appendReply(enc.b[:start], &ReplyHeader{XID: h.XID, Accepted: true, Stat: stat})
	}
	s.stats.handled.Add(1)
	err := runProc(s.ctx, f, c)
	switch {
	case err == nil:
		if !c.hasRes {
			enc.b = enc.b[:c.resStart]
		}
		return c.effect
	case errors.Is(err, ErrGarbageArgs):
		accept(GarbageArgs)
	case errors.Is(err, ErrProcUnavail):
		accept(ProcUnavail)
	default:
		if ae, ok := isAuth(err); ok {
			deny(ae.Stat)
		} else {
			accept(SystemErr)
		}
	}
	return nil
}

// runProc runs a handler; a panic in it becomes SYSTEM_ERR for this call rather
// than the end of the server.
func runProc(ctx context.Context, f ProcFunc, c *Call) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panic: %v", r)
		}
	}()
	return f(ctx, c)
}
