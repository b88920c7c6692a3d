package sysv

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

// Signal says how a Ring's sides wake each other.
type Signal uint8

const (
	// SignalFutex sleeps on a futex word in the segment: the cheapest wake-up.
	SignalFutex Signal = iota
	// SignalSemaphore sleeps in semop on a semaphore set beside the segment, so the
	// wait is visible to System V tooling (ipcs, GETNCNT).
	SignalSemaphore
)

// String returns "futex" or "sem".
func (s Signal) String() string {
	if s == SignalSemaphore {
		return "sem"
	}
	return "futex"
}

// Ring layout: a 256-byte header in three cache lines, then the data area.
const (
	ringMagic   = 0x52435049 // "IPCR"
	ringVersion = 1

	offMagic    = 0
	offVersion  = 4
	offCapacity = 8
	offSignal   = 16
	offSemID    = 20
	offHead     = 64  // producer's position (bytes ever written)
	offDataSeq  = 72  // futex: bumped when data is published to a waiting consumer
	offConsWait = 76  // consumer is (about to be) asleep
	offTail     = 128 // consumer's position (bytes ever consumed)
	offRoomSeq  = 136 // futex: bumped when room is made for a waiting producer
	offProdWait = 140 // producer is (about to be) asleep
	ringHeader  = 256

	recHeader  = 4          // length word before each record
	wrapMarker = 0xffffffff // length word: skip to the start of the data area
)

// RingOption configures a Ring.
type RingOption func(*ringConfig)

type ringConfig struct {
	signal Signal
	wait   ipc.WaitStrategy
	spin   time.Duration
	opts   []Option
}

// WithSignal chooses how the sides wake each other (default SignalFutex). Set by the
// creator; the peer finds it in the header.
func WithSignal(s Signal) RingOption { return func(c *ringConfig) { c.signal = s } }

// WithRingWait chooses how this side waits: ipc.WaitKernel (sleep at once, the
// default) or ipc.WaitSpin (poll for up to the spin time, then sleep).
func WithRingWait(w ipc.WaitStrategy) RingOption { return func(c *ringConfig) { c.wait = w } }

// WithSpin sets how long WaitSpin polls before sleeping (default 20µs).
func WithSpin(d time.Duration) RingOption { return func(c *ringConfig) { c.spin = d } }

// WithRingOptions passes options (WithMode, WithOwner...) to the segment and the
// semaphore set the ring creates or opens.
func WithRingOptions(opts ...Option) RingOption {
	return func(c *ringConfig) { c.opts = append(c.opts, opts...) }
}

// Ring is a single-producer single-consumer message ring in a shared memory segment,
// ipclab's fastest path between two processes: a message costs two copies (in and
// out) and, only when the other side sleeps, one wake-up.
//
// One process (goroutine) sends and one receives; a Ring value offers both Send and
// Recv, but at most one goroutine may call each at a time across all processes
// attached to the ring. Everything the peer writes in the segment (positions, lengths)
// is read once into private memory and validated before use: a corrupted or hostile
// peer produces an error (ipc.ErrInvalid), never an out-of-bounds access.
type Ring struct {
	seg  *Segment
	sem  *SemSet // SignalSemaphore only
	sig  Signal
	wait ipc.WaitStrategy
	spin time.Duration
	data []byte // the data area
	cap  uint64 // len(data), a power of two (private copy)

	head, tail        *atomic.Uint64
	dataSeq, consWait *atomic.Uint32
	roomSeq, prodWait *atomic.Uint32
	sendPos, recvPos  uint64 // private copies of our own position
	ownsSem           bool
	waiters           *object
}

// CreateRing creates a ring whose data area holds capacity bytes (a power of two, at
// least 64) in a new Private segment (and, for SignalSemaphore, a new semaphore set).
// Pass SegmentID to the peer for OpenRing. Remove it once the peer has attached.
func CreateRing(capacity int, opts ...RingOption) (*Ring, error) {
	c, err := ringOptions(opts)
	if err != nil {
		return nil, err
	}
	if capacity < 64 || capacity&(capacity-1) != 0 || capacity > 1<<40 {
		return nil, ipc.Wrap("ring", "create", ipc.ErrInvalid)
	}
	seg, err := CreateSegment(Private, ringHeader+capacity, c.opts...)
	if err != nil {
		return nil, err
	}
	semID := int32(-1)
	var sem *SemSet
	if c.signal == SignalSemaphore {
		if sem, err = CreateSemSet(Private, 2, c.opts...); err != nil {
			seg.Remove()
			seg.Detach()
			return nil, err
		}
		semID = int32(sem.ID())
	}
	m := seg.Bytes()
	binary.NativeEndian.PutUint64(m[offCapacity:], uint64(capacity))
	binary.NativeEndian.PutUint32(m[offSignal:], uint32(c.signal))
	binary.NativeEndian.PutUint32(m[offSemID:], uint32(semID))
	binary.NativeEndian.PutUint32(m[offVersion:], ringVersion)
	sys.Uint32At(m, offMagic).Store(ringMagic) // last: publishes the header
	r := newRing(seg, sem, c, uint64(capacity))
	r.ownsSem = sem != nil
	return r, nil
}

// OpenRing attaches the ring in segment id, created by CreateRing in another process,
// after checking the segment's owner and mode (WithRingOptions(WithOwner(...))) and
// validating its header.
func OpenRing(id int, opts ...RingOption) (*Ring, error) {
	c, err := ringOptions(opts)
	if err != nil {
		return nil, err
	}
	seg, err := OpenSegmentID(id, c.opts...)
	if err != nil {
		return nil, err
	}
	m := seg.Bytes()
	bad := func(why string) (*Ring, error) {
		seg.Detach()
		return nil, ipc.Wrap("ring", seg.name, fmt.Errorf("%s: %w", why, ipc.ErrInvalid))
	}
	if len(m) < ringHeader+64 || sys.Uint32At(m, offMagic).Load() != ringMagic ||
		binary.NativeEndian.Uint32(m[offVersion:]) != ringVersion {
		return bad("not an ipclab ring")
	}
	capacity := binary.NativeEndian.Uint64(m[offCapacity:])
	if capacity < 64 || capacity&(capacity-1) != 0 || capacity > uint64(len(m)-ringHeader) {
		return bad("bad capacity")
	}
	c.signal = Signal(binary.NativeEndian.Uint32(m[offSignal:]))
	var sem *SemSet
	switch c.signal {
	case SignalFutex:
	case SignalSemaphore:
		semID := int32(binary.NativeEndian.Uint32(m[offSemID:]))
		if semID < 0 {
			return bad("bad semaphore id")
		}
		if sem, err = OpenSemSetID(int(semID), c.opts...); err != nil {
			seg.Detach()
			return nil, err
		}
		if sem.Len() != 2 {
			sem.Close()
			return bad("bad semaphore set")
		}
	default:
		return bad("unknown signal")
	}
	return newRing(seg, sem, c, capacity), nil
}

func ringOptions(opts []RingOption) (ringConfig, error) {
	c := ringConfig{wait: ipc.WaitKernel, spin: 20 * time.Microsecond}
	for _, o := range opts {
		o(&c)
	}
	if c.wait != ipc.WaitKernel && c.wait != ipc.WaitSpin || c.signal > SignalSemaphore {
		return c, ipc.Wrap("ring", "options", ipc.ErrInvalid)
	}
	return c, nil
}

func newRing(seg *Segment, sem *SemSet, c ringConfig, capacity uint64) *Ring {
	m := seg.Bytes()
	r := &Ring{
		seg: seg, sem: sem, sig: c.signal, wait: c.wait, spin: c.spin,
		data: m[ringHeader : ringHeader+capacity], cap: capacity,
		head: sys.Uint64At(m, offHead), tail: sys.Uint64At(m, offTail),
		dataSeq: sys.Uint32At(m, offDataSeq), consWait: sys.Uint32At(m, offConsWait),
		roomSeq: sys.Uint32At(m, offRoomSeq), prodWait: sys.Uint32At(m, offProdWait),
		waiters: &seg.object,
	}
	r.sendPos = r.head.Load()
	r.recvPos = r.tail.Load()
	// Close wakes this process's futex waiters itself: moving the sequence words
	// makes a wait that is just starting return at once (the peer sees one spurious
	// wake-up).
	seg.kick = func() {
		for _, w := range []*atomic.Uint32{r.dataSeq, r.roomSeq} {
			w.Add(1)
			_, _ = sys.FutexWake(w, 1<<30)
		}
	}
	return r
}

// SegmentID returns the id of the ring's segment, for OpenRing in the peer.
func (r *Ring) SegmentID() int { return r.seg.ID() }

// Signal returns how the ring's sides wake each other.
func (r *Ring) Signal() Signal { return r.sig }

// MaxMessage returns the largest message the ring carries.
func (r *Ring) MaxMessage() int { return int(r.cap/2) - recHeader - 8 }

func align8(n uint64) uint64 { return (n + 7) &^ 7 }

var errCorrupt = fmt.Errorf("ring state written by the peer is inconsistent: %w", ipc.ErrInvalid)

// Send copies p into the ring as one message, waiting for room until ctx ends.
func (r *Ring) Send(ctx context.Context, p []byte) error {
	// The read lock keeps the mapping in place against a concurrent Close, which
	// first interrupts any wait below and then takes the lock to detach.
	r.seg.mu.RLock()
	defer r.seg.mu.RUnlock()
	if r.seg.mem == nil {
		return r.seg.detachedErr("ring send")
	}
	if len(p) > r.MaxMessage() {
		return ipc.Wrap("ring send", r.seg.name, ipc.ErrInvalid)
	}
	need := align8(uint64(recHeader + len(p)))
	for {
		head := r.sendPos
		tail := r.tail.Load() // peer-written: read once, validate
		used := head - tail
		if tail > head || used > r.cap || used%8 != 0 {
			return ipc.Wrap("ring send", r.seg.name, errCorrupt)
		}
		pos := head & (r.cap - 1)
		total := need
		wrap := pos+need > r.cap
		if wrap {
			total += r.cap - pos
		}
		if r.cap-used >= total {
			if wrap {
				binary.NativeEndian.PutUint32(r.data[pos:], wrapMarker)
				head += r.cap - pos
				pos = 0
			}
			binary.NativeEndian.PutUint32(r.data[pos:], uint32(len(p)))
			copy(r.data[pos+recHeader:], p)
			r.sendPos = head + need
			// Swap, not Store: this store and the load of consWait below must not be
			// reordered (a Dekker pair with sleep), and under the race detector
			// Store is only a release (golang/go#58020).
			r.head.Swap(r.sendPos)
			if r.consWait.Load() != 0 && r.consWait.Swap(0) != 0 {
				if err := r.wake(r.dataSeq, 0); err != nil {
					return err
				}
			}
			return nil
		}
		if err := r.sleep(ctx, r.roomSeq, r.prodWait, 1, func() bool {
			return r.cap-(r.sendPos-r.tail.Load()) >= total
		}); err != nil {
			return err
		}
	}
}

// Recv copies the next message into buf, waiting until there is one or ctx ends, and
// returns its length. A message longer than buf is consumed, buf is filled, and the
// error matches ipc.ErrTruncated.
func (r *Ring) Recv(ctx context.Context, buf []byte) (int, error) {
	r.seg.mu.RLock()
	defer r.seg.mu.RUnlock()
	if r.seg.mem == nil {
		return 0, r.seg.detachedErr("ring recv")
	}
	for {
		tail := r.recvPos
		head := r.head.Load() // peer-written: read once, validate
		avail := head - tail
		if head < tail || avail > r.cap || avail%8 != 0 {
			return 0, ipc.Wrap("ring recv", r.seg.name, errCorrupt)
		}
		if avail == 0 {
			if err := r.sleep(ctx, r.dataSeq, r.consWait, 0, func() bool {
				return r.head.Load() != r.recvPos
			}); err != nil {
				return 0, err
			}
			continue
		}
		pos := tail & (r.cap - 1)
		if r.cap-pos < recHeader {
			return 0, ipc.Wrap("ring recv", r.seg.name, errCorrupt)
		}
		l := uint64(binary.NativeEndian.Uint32(r.data[pos:])) // peer-written: read once
		if l == wrapMarker {
			skip := r.cap - pos
			if skip > avail {
				return 0, ipc.Wrap("ring recv", r.seg.name, errCorrupt)
			}
			r.recvPos += skip
			continue
		}
		need := align8(recHeader + l)
		if need > avail || pos+need > r.cap {
			return 0, ipc.Wrap("ring recv", r.seg.name, errCorrupt)
		}
		n := copy(buf, r.data[pos+recHeader:pos+recHeader+l])
		r.recvPos = tail + need
		r.tail.Swap(r.recvPos) // Swap: see Send
		if r.prodWait.Load() != 0 && r.prodWait.Swap(0) != 0 {
			if err := r.wake(r.roomSeq, 1); err != nil {
				return n, err
			}
		}
		if uint64(n) < l {
			return n, ipc.Wrap("ring recv", r.seg.name, ipc.ErrTruncated)
		}
		return n, nil
	}
}

// sleep waits until ready() (re-checked after announcing the wait in flag) or a
// wake-up on seq (futex) or semaphore num, spinning first under WaitSpin.
func (r *Ring) sleep(ctx context.Context, seq, flag *atomic.Uint32, num uint16, ready func() bool) error {
	if r.wait == ipc.WaitSpin {
		start := time.Now()
		for i := 0; ; i++ {
			if ready() {
				return nil
			}
			if i&63 == 63 {
				if time.Since(start) > r.spin {
					break
				}
				runtime.Gosched()
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return r.seg.fail("ring wait", err)
	}
	s := seq.Load()
	flag.Swap(1) // Swap: ordered before ready()'s load even under the race detector
	if ready() {
		flag.Store(0)
		return nil
	}
	var err error
	if r.sig == SignalSemaphore {
		// a stale post (the peer woke us although we had found data) only causes one
		// spurious wake-up: callers loop
		err = r.sem.Op(ctx, SemOp{Num: num, Op: -1})
		if err != nil {
			return err
		}
		return nil
	}
	err = r.waiters.block(ctx, func() error {
		e := sys.FutexWait(seq, s, nil)
		if e == unix.EAGAIN {
			return nil // seq moved: woken before we slept
		}
		return e
	})
	if err != nil {
		return r.seg.fail("futex wait", err)
	}
	return nil
}

// wake wakes the peer sleeping on seq (futex) or semaphore num.
func (r *Ring) wake(seq *atomic.Uint32, num uint16) error {
	if r.sig == SignalSemaphore {
		return r.sem.TryOp(SemOp{Num: num, Op: 1})
	}
	seq.Add(1)
	if _, err := sys.FutexWake(seq, 1); err != nil {
		return r.seg.fail("futex wake", err)
	}
	return nil
}

// Remove marks the segment for removal: the ring keeps working for processes already
// attached, and the segment goes once they detach. A semaphore set, which the kernel
// would destroy at once, is removed by the creator's Close instead.
func (r *Ring) Remove() error { return r.seg.Remove() }

// Close detaches the ring; a Send or Recv blocked in this process returns
// os.ErrClosed. The creator's Close of a SignalSemaphore ring also removes its
// semaphore set, so it should come after the peer's. Close is idempotent.
func (r *Ring) Close() error {
	if r.sem != nil {
		if r.ownsSem {
			_ = r.sem.Remove()
		}
		r.sem.Close()
	}
	return r.seg.Detach()
}
