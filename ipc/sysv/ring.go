package sysv

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/option"
	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/internal/wait"
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
// One process sends and one receives; a Ring value offers both Send and Recv. Within
// a process its methods may be called concurrently: callers of Send (and of Recv)
// take turns, each waiting for its turn under its own context, and each message goes
// to exactly one Recv. Two processes must not both send (or both receive) on one
// ring. Everything the peer writes in the segment (positions, lengths)
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

	// One Send and one Recv at a time in this process: the turn's holder alone
	// touches sendPos (recvPos) and sleeps on the ring.
	sendTurn, recvTurn wait.Turn
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
	if err := option.Apply(&c, opts); err != nil {
		return c, ipc.Wrap("ring", "options", err)
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
	r.sendTurn.Init()
	r.recvTurn.Init()
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

// Send copies p into the ring as one message, waiting for room (and for its turn
// behind other callers of Send in this process) until ctx ends.
func (r *Ring) Send(ctx context.Context, p []byte) error {
	if err := r.sendTurn.Take(ctx, nil, false); err != nil {
		return r.takeErr(err, "ring send")
	}
	err := r.send(ctx, p, true)
	r.sendTurn.Give()
	return err
}

// TrySend is Send without waiting: with too little room in the ring, or another
// Send of this process under way, it returns an error matching ipc.ErrWouldBlock
// (and unix.EAGAIN) at once.
func (r *Ring) TrySend(p []byte) error {
	if !r.sendTurn.TryTake() {
		return r.turnErr(&r.sendTurn, "ring send")
	}
	defer r.sendTurn.Give()
	return r.send(context.Background(), p, false)
}

// turnErr is the error of a Try call that could not take its turn: the ring is
// closed, or another call holds the turn.
func (r *Ring) turnErr(t *wait.Turn, op string) error {
	select {
	case <-t.Closed():
		return r.seg.detachedErr(op)
	default:
	}
	return ipc.Wrap(op, r.seg.name, unix.EAGAIN)
}

// takeErr is the error of a call whose wait for its turn (wait.Turn, which also
// keeps the mapping in place: Close detaches only once it has drained both turns,
// so a holder needs no other lock) failed: a closed ring's turn fails with
// os.ErrClosed.
func (r *Ring) takeErr(err error, op string) error {
	if err == os.ErrClosed {
		return r.seg.detachedErr(op)
	}
	return r.seg.fail(op, err)
}

// send is Send for the holder of the send turn (which keeps the mapping in place:
// see takeErr); with block false it returns ipc.ErrWouldBlock instead of sleeping.
func (r *Ring) send(ctx context.Context, p []byte, block bool) error {
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
		if !block {
			return ipc.Wrap("ring send", r.seg.name, unix.EAGAIN)
		}
		if err := r.sleep(ctx, r.roomSeq, r.prodWait, 1, func() bool {
			return r.cap-(r.sendPos-r.tail.Load()) >= total
		}); err != nil {
			return err
		}
	}
}

// Recv copies the next message into buf, waiting until there is one (and for its
// turn behind other callers of Recv in this process) or ctx ends, and returns its
// length. A message longer than buf is consumed, buf is filled, and the error
// matches ipc.ErrTruncated.
func (r *Ring) Recv(ctx context.Context, buf []byte) (int, error) {
	if err := r.recvTurn.Take(ctx, nil, false); err != nil {
		return 0, r.takeErr(err, "ring recv")
	}
	n, err := r.recv(ctx, buf, true)
	r.recvTurn.Give()
	return n, err
}

// TryRecv is Recv without waiting: with no message in the ring, or another Recv of
// this process under way, it returns an error matching ipc.ErrWouldBlock (and
// unix.EAGAIN) at once.
func (r *Ring) TryRecv(buf []byte) (int, error) {
	if !r.recvTurn.TryTake() {
		return 0, r.turnErr(&r.recvTurn, "ring recv")
	}
	defer r.recvTurn.Give()
	return r.recv(context.Background(), buf, false)
}

// recv is Recv for the holder of the receive turn; with block false it returns
// ipc.ErrWouldBlock instead of sleeping.
func (r *Ring) recv(ctx context.Context, buf []byte, block bool) (int, error) {
	for {
		tail := r.recvPos
		head := r.head.Load() // peer-written: read once, validate
		avail := head - tail
		if head < tail || avail > r.cap || avail%8 != 0 {
			return 0, ipc.Wrap("ring recv", r.seg.name, errCorrupt)
		}
		if avail == 0 {
			if !block {
				return 0, ipc.Wrap("ring recv", r.seg.name, unix.EAGAIN)
			}
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
// os.ErrClosed (the one sleeping on the ring interrupted by wait.Signal). The creator's Close of a SignalSemaphore ring also removes its
// semaphore set, so it should come after the peer's. Close is idempotent.
func (r *Ring) Close() error {
	// Callers waiting for a turn return at once; the holders are woken (semaphore
	// set closed, futex sleepers interrupted), then the turns drained, so that no
	// call uses the mapping when it goes.
	r.sendTurn.Close()
	r.recvTurn.Close()
	if r.sem != nil {
		if r.ownsSem {
			_ = r.sem.Remove()
		}
		r.sem.Close()
	}
	r.seg.waiters.Close()
	r.sendTurn.Drain()
	r.recvTurn.Drain()
	return r.seg.Detach()
}
