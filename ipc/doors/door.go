package doors

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/option"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/sockets"
)

// Defaults.
const (
	// DefaultMaxData is the largest argument a door accepts unless WithMaxData says
	// otherwise (S11: a hard cap, checked before anything is allocated).
	DefaultMaxData = 1 << 20
	// DefaultMaxFds is the most descriptors one call may carry by default.
	DefaultMaxFds = 16
	// DefaultPoolLimit is the goroutine limit of the shared pool and of private
	// pools made without a limit.
	DefaultPoolLimit = 64
	// takeoverDelay is how long a handler runs on the goroutine that read its call
	// before another goroutine takes over reading the connection (see Pool).
	takeoverDelay = 200 * time.Microsecond
)

// Handler serves a door's calls. ctx is cancelled when the caller gives up (a
// CANCEL frame, or its connection closes), when the door is revoked or closed, and
// once the handler has returned. call and its Data are valid only until the
// handler returns, and the reply is sent before the buffer behind Data is reused, so
// Reply.Data may be call.Data itself (an in-place result); call.Fds belong to the
// handler. A nil *Reply is an empty
// result; a returned error reaches the caller as a *HandlerError holding its text
// (or as ErrPermission, ErrTooBig, ErrFdsRefused, ErrRevoked when it wraps one).
type Handler func(ctx context.Context, call *Call) (*Reply, error)

// Reply is what a handler returns.
type Reply struct {
	// Data is the result; it may be as long as the caller's MaxResult.
	Data []byte
	// Fds are sent to the caller (at most as many as it accepts). They stay the
	// handler's unless Release is set.
	Fds []int
	// Release closes Fds once they have been sent, or once the reply is dropped
	// (DOOR_RELEASE).
	Release bool
}

// Option configures New.
type Option func(*config)

type config struct {
	maxData   int
	maxFds    int
	refuseFds bool
	policy    sockets.PeerPolicy
	onUnref   func()
	pool      *Pool
	private   int
	wait      ipc.WaitStrategy
	mode      fs.FileMode
	noShm     bool
	inPlace   bool
}

// WithMaxData sets the largest argument accepted (default DefaultMaxData). A
// larger one is refused with ErrTooBig before any memory is allocated for it.
func WithMaxData(n int) Option { return func(c *config) { c.maxData = n } }

// WithMaxFds sets the most descriptors one call may carry (default
// DefaultMaxFds, at most 252).
func WithMaxFds(n int) Option { return func(c *config) { c.maxFds = n } }

// RefuseFds makes the door refuse descriptors (DOOR_REFUSE_DESC): clients get
// ErrFdsRefused before sending, and the kernel drops any sent anyway
// (SO_PASSRIGHTS=0 on Linux 6.16+; otherwise they are closed on receipt and the
// connection is dropped). It also turns shared memory off, whose region is a
// descriptor.
func RefuseFds() Option { return func(c *config) { c.refuseFds = true } }

// WithPolicy sets who may call (default: sockets.SameUser, the server's effective
// uid). The policy is applied to the connecting process (SO_PEERCRED) and to the
// sender of every call (SCM_CREDENTIALS), since a connection can be handed to
// another process.
func WithPolicy(p sockets.PeerPolicy) Option { return func(c *config) { c.policy = p } }

// AllowUsers is WithPolicy(sockets.AllowUsers(uids...)).
func AllowUsers(uids ...uint32) Option { return WithPolicy(sockets.AllowUsers(uids...)) }

// OnUnref asks for unreferenced notifications (DOOR_UNREF_MULTI): f runs, in a
// goroutine of its own, each time the door's last client connection closes. A
// path the door is attached to is not a reference.
func OnUnref(f func()) Option { return func(c *config) { c.onUnref = f } }

// WithPool makes the door's handlers run in p, shared with other doors (the
// default is a pool shared by every door of the process).
func WithPool(p *Pool) Option { return func(c *config) { c.pool = p } }

// PrivatePool gives the door a pool of its own, of at most limit goroutines
// (DOOR_PRIVATE).
func PrivatePool(limit int) Option { return func(c *config) { c.private = limit } }

// WithWait sets how the door's connections wait: ipc.WaitAuto (the default: a
// reading goroutine sleeps in recvmsg while calls come quickly, and moves to the Go
// runtime poller when its connection is idle), ipc.WaitPoller, or ipc.WaitKernel
// (threads block in recvmsg, one per connection being read).
func WithWait(w ipc.WaitStrategy) Option { return func(c *config) { c.wait = w } }

// WithSocketMode sets the permission bits of the socket file Attach creates
// (default 0600: only the owner can connect). Other users need write permission
// on it, and search permission on its directory, to reach the door's policy.
func WithSocketMode(m fs.FileMode) Option { return func(c *config) { c.mode = m } }

// NoShm makes the door refuse a shared-memory region: all data travels through
// the socket.
func NoShm() Option { return func(c *config) { c.noShm = true } }

// ShmInPlace hands large arguments that came through shared memory to the handler
// in place, without copying them out of the region first (and sends a result that
// is the argument itself, an in-place echo or transformation, without copying it
// back). The caller can still write that memory while the handler reads it: a
// handler of such a door must copy whatever it validates before using it (S12).
func ShmInPlace() Option { return func(c *config) { c.inPlace = true } }

// Pool is a set of server goroutines that grows on demand up to a limit. A call is
// run by the goroutine that read it, so that a short call costs no hand-off and no
// timer; a per-door watchdog, ticking every 200µs while such handlers run (it
// sleeps after 50 ticks that found none), gives a connection whose handler has been running for a tick a new reading
// goroutine, which is how concurrent calls and cancellations get through. When
// the pool's limit of running handlers is reached, calls wait in a queue for the
// next free slot.
type Pool struct {
	limit   int
	running atomic.Int64
	peak    atomic.Int64
	queued  atomic.Int64 // len(queue), readable without mu
	mu      sync.Mutex
	queue   []*Call
}

// NewPool returns a pool of at most limit goroutines running handlers.
func NewPool(limit int) (*Pool, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("doors: pool limit %d: %w", limit, ipc.ErrInvalid)
	}
	return &Pool{limit: limit}, nil
}

var sharedPool = &Pool{limit: DefaultPoolLimit}

// Limit returns the pool's limit.
func (p *Pool) Limit() int { return p.limit }

// Stats returns the number of handlers running now and the most that ever ran at
// once.
func (p *Pool) Stats() (running, peak int) {
	return int(p.running.Load()), int(p.peak.Load())
}

// tryAcquire takes a slot if one is free, without a lock.
func (p *Pool) tryAcquire() bool {
	for {
		n := p.running.Load()
		if n >= int64(p.limit) {
			return false
		}
		if p.running.CompareAndSwap(n, n+1) {
			for pk := p.peak.Load(); n+1 > pk && !p.peak.CompareAndSwap(pk, n+1); pk = p.peak.Load() {
			}
			return true
		}
	}
}

// pop takes the oldest queued call (nil if none).
func (p *Pool) pop() *Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.queue) == 0 {
		return nil
	}
	call := p.queue[0]
	p.queue[0] = nil
	p.queue = p.queue[1:]
	p.queued.Add(-1)
	return call
}

// release frees a slot, handing it to the next queued call if there is one.
func (p *Pool) release() {
	if p.queued.Load() > 0 {
		if call := p.pop(); call != nil {
			call.conn.spawnRun(call)
			return
		}
	}
	p.running.Add(-1)
	p.dispatch()
}

// enqueue runs call when a slot is free.
func (p *Pool) enqueue(call *Call) {
	p.mu.Lock()
	p.queue = append(p.queue, call)
	p.queued.Add(1)
	p.mu.Unlock()
	p.dispatch()
}

// dispatch starts queued calls while slots are free. Whoever queues a call or
// frees a slot calls it afterwards, so no call is left waiting beside a free slot.
func (p *Pool) dispatch() {
	for p.queued.Load() > 0 && p.tryAcquire() {
		call := p.pop()
		if call == nil {
			p.running.Add(-1)
			continue
		}
		call.conn.spawnRun(call)
	}
}

// Door is the server side of a door: a handler, its attributes, and the
// connections of its clients.
type Door struct {
	// What every call touches comes first: the handler, the pool, the watchdog's
	// state, and (at the start of cfg) the limits and the policy.
	h    Handler
	pool *Pool
	// The watchdog hands a connection's reading to a new goroutine when a handler
	// runs long on the reading one (see Pool); it sleeps (wdParked) while none do.
	wdParked atomic.Bool
	cfg      config

	// How large arguments and results travelled (for tests), indexed by path: split
	// and shm are counted; inline ones, the hot path, are not.
	argPath, resPath [3]atomic.Int64
	ownReplies       atomic.Int64 // lock-free inline replies (for tests; see conn.finish)
	info             Info
	bufs             sync.Pool

	mu        sync.Mutex
	conns     map[*conn]struct{}
	lis       *sockets.SeqpacketListener
	revoked   bool
	closed    bool
	wg        sync.WaitGroup
	closeOnce sync.Once

	wdWake  chan struct{}
	wdStop  chan struct{}
	wdConns []*conn
}

// New creates a door served by h (door_create(3C)). It is reached by path once
// attached (Attach), or through descriptors made by NewClientFile. Close it when
// done.
func New(h Handler, opts ...Option) (*Door, error) {
	if h == nil {
		return nil, &ipc.OpError{Op: "door create", Err: fmt.Errorf("nil handler: %w", ipc.ErrInvalid)}
	}
	c := config{maxData: DefaultMaxData, maxFds: DefaultMaxFds, mode: 0o600}
	if err := option.Apply(&c, opts); err != nil {
		return nil, &ipc.OpError{Op: "door create", Err: err}
	}
	switch {
	case c.maxData <= 0 || c.maxData > 1<<30:
		return nil, &ipc.OpError{Op: "door create", Err: fmt.Errorf("max data %d out of (0, 1 GiB]: %w", c.maxData, ipc.ErrInvalid)}
	case c.maxFds < 0 || c.maxFds > maxWireFd-1:
		return nil, &ipc.OpError{Op: "door create", Err: fmt.Errorf("max fds %d out of [0, %d]: %w", c.maxFds, maxWireFd-1, ipc.ErrInvalid)}
	case c.private < 0:
		return nil, &ipc.OpError{Op: "door create", Err: fmt.Errorf("private pool limit %d: %w", c.private, ipc.ErrInvalid)}
	case c.wait != ipc.WaitAuto && c.wait != ipc.WaitPoller && c.wait != ipc.WaitKernel:
		return nil, &ipc.OpError{Op: "door create", Err: fmt.Errorf("wait strategy %v: %w", c.wait, ipc.ErrInvalid)}
	}
	if c.policy == nil {
		c.policy = sockets.SameUser()
	}
	if c.refuseFds {
		c.maxFds, c.noShm = 0, true
	}
	d := &Door{h: h, cfg: c, pool: c.pool, conns: map[*conn]struct{}{}}
	if d.pool == nil {
		d.pool = sharedPool
	}
	var attr Attr
	if c.private > 0 {
		d.pool = &Pool{limit: c.private}
		attr |= AttrPrivatePool
	}
	if c.refuseFds {
		attr |= AttrRefuseFds
	}
	if c.onUnref != nil {
		attr |= AttrUnref
	}
	if !c.noShm {
		attr |= AttrShm
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	d.info = Info{Pid: os.Getpid(), Uid: uint32(os.Geteuid()), ID: binary.NativeEndian.Uint64(id[:]),
		Attr: attr, MaxData: c.maxData, MaxFds: c.maxFds, Inline: min(defaultInline, c.maxData)}
	d.bufs.New = func() any { return d.newBuf() }
	d.wdWake, d.wdStop = make(chan struct{}, 1), make(chan struct{})
	d.wg.Add(1)
	go d.watchdog()
	return d, nil
}

// wakeWatchdog wakes the watchdog if it sleeps; a reading goroutine calls it when
// it starts a handler and finds wdParked set (which costs the call one load).
func (d *Door) wakeWatchdog() {
	select {
	case d.wdWake <- struct{}{}:
	default:
	}
}

// watchdog ticks every takeoverDelay while handlers run on reading goroutines: a
// connection whose inline handler is the same one it saw on the previous tick gets
// a new reading goroutine (so the handler has run for at least takeoverDelay). It
// sleeps after wdIdleTicks ticks that found no inline handler.
func (d *Door) watchdog() {
	defer d.wg.Done()
	t := time.NewTimer(takeoverDelay)
	defer t.Stop()
	idle := 0
	for {
		select {
		case <-d.wdStop:
			return
		case <-t.C:
		}
		if d.tick() {
			idle = 0
		} else if idle++; idle > wdIdleTicks {
			// A reading goroutine stores its call in running and then loads
			// wdParked; the watchdog stores wdParked and then looks at every running
			// (both stores are Swaps, ordered before the loads): one of the two sees
			// the other, so no handler starts unwatched.
			d.wdParked.Swap(true)
			if !d.tick() {
				select {
				case <-d.wdWake:
				case <-d.wdStop:
					return
				}
			}
			d.wdParked.Store(false)
			idle = 0
		}
		t.Reset(takeoverDelay)
	}
}

// wdIdleTicks is how many ticks without an inline handler the watchdog waits
// before it sleeps.
const wdIdleTicks = 50

// tick is one look of the watchdog at the connections: a handler it saw running
// on the reading goroutine last time and sees again is taken over. It reports
// whether any connection was running a handler inline.
func (d *Door) tick() bool {
	d.mu.Lock()
	d.wdConns = d.connList(d.wdConns[:0])
	d.mu.Unlock()
	active := false
	for _, c := range d.wdConns {
		cur := c.running.Load()
		if cur != nil && cur == c.wdSeen {
			c.takeover(cur)
			cur = nil
		}
		c.wdSeen = cur
		active = active || cur != nil
	}
	clear(d.wdConns)
	return active
}

// rbuf is a reading goroutine's buffers: one message (header and inline data) and
// the descriptors it may carry.
type rbuf struct {
	p     []byte
	fds   []int
	out   int    // length of the reply frame in p still to send (see conn.serve), or 0
	calls []Call // the rest of the current slab (see newCall)
}

// callSlab is how many Calls a reading goroutine allocates at once, so that a call
// costs an allocation only every callSlab calls. Each Call, its context included, is
// used for one call and never reset: a handler that keeps its context or its *Call
// after returning finds them as they were left (the context cancelled), at the price
// of keeping the slab's memory alive.
const callSlab = 32

// newCall returns a zero Call from the slab, starting a new slab when it is used up.
func (rb *rbuf) newCall() *Call {
	if len(rb.calls) == 0 {
		rb.calls = make([]Call, callSlab)
	}
	call := &rb.calls[0]
	rb.calls = rb.calls[1:]
	return call
}

func (d *Door) newBuf() *rbuf {
	return &rbuf{p: make([]byte, hdrSize+d.info.Inline), fds: make([]int, d.fdCap())}
}

// fdCap is how many descriptors one message may bring: the call's, or the region.
func (d *Door) fdCap() int {
	if d.cfg.refuseFds {
		return 0
	}
	return max(d.cfg.maxFds, 1)
}

// takeOver moves sc under a sock of the door's (see sock).
func (d *Door) takeOver(sc *sockets.SeqpacketConn) (*sock, error) {
	return takeOver(sc, d.cfg.wait, max(d.fdCap(), 1))
}

func (d *Door) sockOpts() []sockets.Option {
	o := []sockets.Option{sockets.WithWait(d.cfg.wait), sockets.WithMaxFds(max(d.fdCap(), 1)), sockets.PassCred()}
	if d.cfg.refuseFds {
		o = append(o, sockets.RefuseFds())
	}
	return o
}

// Info returns the door's description.
func (d *Door) Info() Info {
	d.mu.Lock()
	defer d.mu.Unlock()
	in := d.info
	if d.revoked {
		in.Attr |= AttrRevoked
	}
	return in
}

// Attach names the door in the file system (the fattach(3C) analogue): a
// SOCK_SEQPACKET socket bound at path, which must lie in a directory owned by the
// caller that nobody else can write to (see sockets.ListenSeqpacket). Clients
// reach it with Open. A door has at most one path at a time.
func (d *Door) Attach(path string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.revoked || d.closed {
		return &ipc.OpError{Op: "door attach", Object: path, Err: ErrRevoked}
	}
	if d.lis != nil {
		return &ipc.OpError{Op: "door attach", Object: path, Err: fmt.Errorf("already attached to %v: %w", d.lis.Addr(), unix.EBUSY)}
	}
	l, err := sockets.ListenSeqpacket(path, append(d.sockOpts(), sockets.WithMode(d.cfg.mode))...)
	if err != nil {
		return err
	}
	d.lis = l
	d.wg.Add(1)
	go d.acceptLoop(l)
	return nil
}

// Detach removes the door's name (fdetach(3C)): no new client can open it by
// path; connections made already keep working.
func (d *Door) Detach() error {
	d.mu.Lock()
	l := d.lis
	d.lis = nil
	d.mu.Unlock()
	if l == nil {
		return nil
	}
	return l.Close()
}

func (d *Door) acceptLoop(l *sockets.SeqpacketListener) {
	defer d.wg.Done()
	for {
		sc, err := l.Accept(context.Background())
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and the like: do not spin
			continue
		}
		cred, err := sc.PeerCred()
		if err == nil {
			err = d.cfg.policy(cred)
		}
		s, terr := d.takeOver(sc)
		if terr != nil {
			continue // EMFILE and the like: the client sees its connection go
		}
		d.adopt(s, err, true, cred)
	}
}

// NewClientFile returns a descriptor for a new connection to the door (one end of
// a socketpair; the door serves the other): the door descriptor of door_create,
// to hand to another process (exec.Cmd.ExtraFiles, SCM_RIGHTS), which opens it
// with NewClient. The kernel's SO_PEERCRED of such a connection names the server,
// so callers are vetted per call (SCM_CREDENTIALS).
func (d *Door) NewClientFile() (*os.File, error) {
	ours, theirs, err := sockets.SeqpacketPair(d.sockOpts()...)
	if err != nil {
		return nil, err
	}
	f, err := theirs.File()
	theirs.Close()
	if err != nil {
		ours.Close()
		return nil, err
	}
	s, err := d.takeOver(ours)
	if err != nil {
		f.Close()
		return nil, err
	}
	if !d.adopt(s, nil, false, sockets.Cred{}) {
		f.Close()
		return nil, &ipc.OpError{Op: "door connect", Err: ErrRevoked}
	}
	return f, nil
}

// Serve makes the door serve f, a connected SOCK_SEQPACKET socket (for instance
// one end of a socketpair made before fork); the caller keeps f and may close it.
func (d *Door) Serve(f *os.File) error {
	sc, err := sockets.FileSeqpacketConn(f, d.sockOpts()...)
	if err != nil {
		return err
	}
	s, err := d.takeOver(sc)
	if err != nil {
		return err
	}
	if !d.adopt(s, nil, false, sockets.Cred{}) {
		return &ipc.OpError{Op: "door serve", Object: f.Name(), Err: ErrRevoked}
	}
	return nil
}

// adopt starts serving sc. A connection whose peer failed the policy (rejected)
// is told so, then dropped.
func (d *Door) adopt(sc *sock, rejected error, fromPath bool, cred sockets.Cred) bool {
	c := &conn{d: d, sc: sc, fromPath: fromPath, peer: cred, calls: map[uint64]*Call{}}
	c.shmFree = sync.NewCond(&c.shmMu)
	c.wbuf = make([]byte, hdrSize+maxErrMsg+d.info.Inline)
	d.mu.Lock()
	if d.revoked || d.closed {
		d.mu.Unlock()
		sc.Close()
		return false
	}
	d.wg.Add(1)
	if rejected != nil {
		d.mu.Unlock()
		go c.reject(rejected)
		return true
	}
	d.conns[c] = struct{}{}
	d.mu.Unlock()
	go c.serve(d.bufs.Get().(*rbuf))
	return true
}

// Revoke revokes the door (door_revoke(3C)): the path is detached, calls in flight
// see their context cancelled and their callers get ErrRevoked at once, and every
// later call fails with ErrRevoked. Handlers still running finish in the
// background (Close waits for them).
func (d *Door) Revoke() error {
	d.mu.Lock()
	if d.revoked {
		d.mu.Unlock()
		return nil
	}
	d.revoked = true
	conns := d.connList(nil)
	d.mu.Unlock()
	err := d.Detach()
	for _, c := range conns {
		c.revoke()
	}
	return err
}

// Close revokes the door, closes every connection and waits for the door's
// goroutines, handlers included, to finish. Close is idempotent.
func (d *Door) Close() error {
	err := d.Revoke()
	d.mu.Lock()
	d.closed = true
	conns := d.connList(nil)
	d.mu.Unlock()
	for _, c := range conns {
		c.sc.Close()
	}
	d.closeOnce.Do(func() { close(d.wdStop) })
	d.wg.Wait()
	return err
}

// connList appends the door's connections to dst; d.mu must be held.
func (d *Door) connList(dst []*conn) []*conn {
	for c := range d.conns {
		dst = append(dst, c)
	}
	return dst
}

// dropConn forgets a closed connection and sends the unreferenced notification.
func (d *Door) dropConn(c *conn) {
	d.mu.Lock()
	_, ok := d.conns[c]
	delete(d.conns, c)
	unref := ok && len(d.conns) == 0 && !d.revoked && d.cfg.onUnref != nil
	if unref {
		d.wg.Add(1)
	}
	d.mu.Unlock()
	if unref {
		go func() {
			defer d.wg.Done()
			d.cfg.onUnref()
		}()
	}
}
