package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/sysv"
)

// System V transports:
//
//   - sysv-msg: two Private message queues, one per direction, named to the peer by id.
//     Impl "raw" uses bare msgsnd/msgrcv (blocking, EINTR retried).
//   - sysv-sem: pure signalling, no payload: each message is a semop on a Private set of
//     four semaphores (items and credits per direction; credits bound how far a stream
//     runs ahead, below SEMVMX). Impl "raw" issues the same semop calls bare.
//   - shm: two ipclab Rings (one per direction) signalled by a futex word, waiting in
//     the kernel or spinning first. Impl "raw": a one-slot mailbox per direction in a
//     bare segment with a futex state word and no library code.
//   - shm-sem: the same Rings signalled by semaphores. Impl "raw": the same one-slot
//     mailboxes, sleeping in semop instead of on the futex (see rawSlotEndpoint).
//
// Objects are Private and removed by the parent's Close and by Cleanup (which also
// wakes a parent blocked on them when the peer died).

func init() {
	Register(sysvMsgTransport{})
	Register(sysvSemTransport{})
	Register(shmTransport{name: "shm", signal: sysv.SignalFutex})
	Register(shmTransport{name: "shm-sem", signal: sysv.SignalSemaphore})
}

// argIDs parses the ids Setup put in Params.Args.
func argIDs(p Params, n int) ([]int, error) {
	if len(p.Args) != n {
		return nil, fmt.Errorf("%s: want %d ids in args, have %q", p.Primitive, n, p.Args)
	}
	ids := make([]int, n)
	for i, a := range p.Args {
		v, err := strconv.Atoi(a)
		if err != nil {
			return nil, fmt.Errorf("%s: bad id %q", p.Primitive, a)
		}
		ids[i] = v
	}
	return ids, nil
}

func idArgs(ids ...int) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = strconv.Itoa(id)
	}
	return out
}

// ---- sysv-msg ----

type sysvMsgTransport struct{}

func (sysvMsgTransport) Name() string              { return "sysv-msg" }
func (sysvMsgTransport) Waits() []ipc.WaitStrategy { return []ipc.WaitStrategy{ipc.WaitKernel} }

// MaxSize is msgmax.
func (sysvMsgTransport) MaxSize() int {
	if l, err := sysv.ReadLimits(); err == nil {
		return l.MsgMax
	}
	return 8192
}

func (sysvMsgTransport) Available() error {
	q, err := sysv.CreateQueue(sysv.Private)
	if err != nil {
		return err
	}
	defer q.Close()
	return q.Remove()
}

// Setup creates the queues: the parent sends on the first and receives on the second.
func (t sysvMsgTransport) Setup(p *Params) (Endpoint, []*os.File, error) {
	if p.Size > t.MaxSize() {
		return nil, nil, fmt.Errorf("sysv-msg: size %d above msgmax %d", p.Size, t.MaxSize())
	}
	var qs [2]*sysv.Queue
	for i := range qs {
		q, err := sysv.CreateQueue(sysv.Private)
		if err != nil {
			for _, q := range qs[:i] {
				q.Remove()
				q.Close()
			}
			return nil, nil, err
		}
		qs[i] = q
	}
	p.Args = idArgs(qs[0].ID(), qs[1].ID())
	if p.Impl == ImplRaw {
		ep := &rawMsgEndpoint{send: qs[0].ID(), recv: qs[1].ID(), owner: true}
		ep.init(p.Size)
		for _, q := range qs {
			q.Close()
		}
		return ep, nil, nil
	}
	return &msgEndpoint{send: qs[0], recv: qs[1], owner: true}, nil, nil
}

func (sysvMsgTransport) Open(p Params, _ []*os.File) (Endpoint, error) {
	ids, err := argIDs(p, 2)
	if err != nil {
		return nil, err
	}
	if p.Impl == ImplRaw {
		ep := &rawMsgEndpoint{send: ids[1], recv: ids[0]}
		ep.init(p.Size)
		return ep, nil
	}
	in, err := sysv.OpenQueueID(ids[0])
	if err != nil {
		return nil, err
	}
	out, err := sysv.OpenQueueID(ids[1])
	if err != nil {
		in.Close()
		return nil, err
	}
	return &msgEndpoint{send: out, recv: in}, nil
}

func (sysvMsgTransport) Cleanup(p Params) error {
	ids, err := argIDs(p, 2)
	if err != nil {
		return nil
	}
	for _, id := range ids {
		_, _ = sys.Msgctl(id, unix.IPC_RMID)
	}
	return nil
}

type msgEndpoint struct {
	send, recv *sysv.Queue
	owner      bool
}

func (e *msgEndpoint) Send(p []byte) error { return e.send.Send(context.Background(), 1, p) }

func (e *msgEndpoint) Recv(p []byte) error {
	n, _, err := e.recv.Recv(context.Background(), p, sysv.Any())
	if err == nil && n != len(p) {
		err = fmt.Errorf("sysv-msg: received %d bytes, want %d", n, len(p))
	}
	return err
}

func (e *msgEndpoint) Close() error {
	if e.owner {
		e.send.Remove()
		e.recv.Remove()
	}
	e.send.Close()
	e.recv.Close()
	return nil
}

// rawMsgEndpoint: bare msgsnd/msgrcv on buffers with the type header in front.
type rawMsgEndpoint struct {
	send, recv int
	owner      bool
	sbuf, rbuf []byte
}

func (e *rawMsgEndpoint) init(size int) {
	e.sbuf = make([]byte, sys.MsgHeaderSize+size)
	e.rbuf = make([]byte, sys.MsgHeaderSize+size)
	binary.NativeEndian.PutUint64(e.sbuf, 1)
}

func (e *rawMsgEndpoint) Send(p []byte) error {
	b := e.sbuf[:sys.MsgHeaderSize+len(p)]
	copy(b[sys.MsgHeaderSize:], p)
	for {
		err := sys.Msgsnd(e.send, b, 0)
		if err != unix.EINTR {
			return err
		}
	}
}

func (e *rawMsgEndpoint) Recv(p []byte) error {
	b := e.rbuf[:sys.MsgHeaderSize+len(p)]
	for {
		n, err := sys.Msgrcv(e.recv, b, 0, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n != len(p) {
			return fmt.Errorf("sysv-msg: received %d bytes, want %d", n, len(p))
		}
		copy(p, b[sys.MsgHeaderSize:])
		return nil
	}
}

func (e *rawMsgEndpoint) Close() error {
	if e.owner {
		_, _ = sys.Msgctl(e.send, unix.IPC_RMID)
		_, _ = sys.Msgctl(e.recv, unix.IPC_RMID)
	}
	return nil
}

// ---- sysv-sem ----

// semCredits is how many signals a side may have outstanding.
const semCredits = 4096

type sysvSemTransport struct{}

func (sysvSemTransport) Name() string              { return "sysv-sem" }
func (sysvSemTransport) Waits() []ipc.WaitStrategy { return []ipc.WaitStrategy{ipc.WaitKernel} }
func (sysvSemTransport) MaxSize() int              { return 0 }

// PayloadFree: a semaphore hand-off carries no bytes, so one size is enough.
func (sysvSemTransport) PayloadFree() bool { return true }

func (sysvSemTransport) Available() error {
	s, err := sysv.CreateSemSet(sysv.Private, 4)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Remove()
}

// Semaphores: 0 items to the peer, 1 items to the parent, 2 credits to the peer,
// 3 credits to the parent. A message carries no payload.
func (sysvSemTransport) Setup(p *Params) (Endpoint, []*os.File, error) {
	s, err := sysv.CreateSemSet(sysv.Private, 4)
	if err != nil {
		return nil, nil, err
	}
	if err := s.SetAll([]uint16{0, 0, semCredits, semCredits}); err != nil {
		s.Remove()
		s.Close()
		return nil, nil, err
	}
	p.Args = idArgs(s.ID())
	if p.Impl == ImplRaw {
		id := s.ID()
		s.Close()
		return newRawSemEndpoint(id, 0, true), nil, nil
	}
	return newSemEndpoint(s, 0, true), nil, nil
}

func (sysvSemTransport) Open(p Params, _ []*os.File) (Endpoint, error) {
	ids, err := argIDs(p, 1)
	if err != nil {
		return nil, err
	}
	if p.Impl == ImplRaw {
		return newRawSemEndpoint(ids[0], 1, false), nil
	}
	s, err := sysv.OpenSemSetID(ids[0])
	if err != nil {
		return nil, err
	}
	return newSemEndpoint(s, 1, false), nil
}

func (sysvSemTransport) Cleanup(p Params) error {
	if ids, err := argIDs(p, 1); err == nil {
		_, _ = sys.SemctlInt(ids[0], 0, unix.IPC_RMID, 0)
	}
	return nil
}

// semOps returns the send and receive operations of side (0 parent, 1 peer).
func semOps(side uint16) (send, recv [2]sysv.SemOp) {
	out, in := side, 1-side // item semaphores: out is what we signal
	send = [2]sysv.SemOp{{Num: 2 + out, Op: -1}, {Num: out, Op: 1}}
	recv = [2]sysv.SemOp{{Num: in, Op: -1}, {Num: 2 + in, Op: 1}}
	return send, recv
}

type semEndpoint struct {
	s          *sysv.SemSet
	send, recv [2]sysv.SemOp
	owner      bool
}

func newSemEndpoint(s *sysv.SemSet, side uint16, owner bool) *semEndpoint {
	e := &semEndpoint{s: s, owner: owner}
	e.send, e.recv = semOps(side)
	return e
}

func (e *semEndpoint) Send([]byte) error { return e.s.Op(context.Background(), e.send[:]...) }
func (e *semEndpoint) Recv([]byte) error { return e.s.Op(context.Background(), e.recv[:]...) }

func (e *semEndpoint) Close() error {
	if e.owner {
		e.s.Remove()
	}
	return e.s.Close()
}

type rawSemEndpoint struct {
	id         int
	send, recv [2]sysv.SemOp
	owner      bool
}

func newRawSemEndpoint(id int, side uint16, owner bool) *rawSemEndpoint {
	e := &rawSemEndpoint{id: id, owner: owner}
	e.send, e.recv = semOps(side)
	return e
}

func rawSemop(id int, ops []sysv.SemOp) error {
	for {
		err := sys.Semtimedop(id, ops, nil)
		if err != unix.EINTR {
			return err
		}
	}
}

func (e *rawSemEndpoint) Send([]byte) error { return rawSemop(e.id, e.send[:]) }
func (e *rawSemEndpoint) Recv([]byte) error { return rawSemop(e.id, e.recv[:]) }

func (e *rawSemEndpoint) Close() error {
	if e.owner {
		_, _ = sys.SemctlInt(e.id, 0, unix.IPC_RMID, 0)
	}
	return nil
}

// ---- shm, shm-sem ----

// shmCapacity is each ring's data area: room for several of the largest messages.
const shmCapacity = 1 << 20

type shmTransport struct {
	name   string
	signal sysv.Signal
}

func (t shmTransport) Name() string { return t.name }

// Scenarios: the rings also carry a stream with quality of service, a ring each way
// (stream.Duplex).
func (shmTransport) Scenarios() []string {
	return []string{ScenarioPingPong, ScenarioStream, ScenarioQoS}
}
func (shmTransport) Waits() []ipc.WaitStrategy {
	return []ipc.WaitStrategy{ipc.WaitKernel, ipc.WaitSpin}
}
func (shmTransport) MaxSize() int { return shmCapacity/2 - 64 }

func (t shmTransport) Available() error {
	r, err := sysv.CreateRing(64, sysv.WithSignal(t.signal))
	if err != nil {
		return err
	}
	r.Remove()
	return r.Close()
}

func (t shmTransport) Setup(p *Params) (Endpoint, []*os.File, error) {
	if p.Impl == ImplRaw {
		return t.rawSetup(p)
	}
	opts := []sysv.RingOption{sysv.WithSignal(t.signal), sysv.WithRingWait(p.Wait)}
	out, err := sysv.CreateRing(shmCapacity, opts...)
	if err != nil {
		return nil, nil, err
	}
	in, err := sysv.CreateRing(shmCapacity, opts...)
	if err != nil {
		out.Remove()
		out.Close()
		return nil, nil, err
	}
	p.Args = idArgs(out.SegmentID(), in.SegmentID())
	return &ringEndpoint{send: out, recv: in, owner: true}, nil, nil
}

func (t shmTransport) Open(p Params, _ []*os.File) (Endpoint, error) {
	if p.Impl == ImplRaw {
		return t.rawOpen(p)
	}
	ids, err := argIDs(p, 2)
	if err != nil {
		return nil, err
	}
	in, err := sysv.OpenRing(ids[0], sysv.WithRingWait(p.Wait))
	if err != nil {
		return nil, err
	}
	out, err := sysv.OpenRing(ids[1], sysv.WithRingWait(p.Wait))
	if err != nil {
		in.Close()
		return nil, err
	}
	// both attached: the segments can go as soon as both sides detach
	in.Remove()
	out.Remove()
	return &ringEndpoint{send: out, recv: in}, nil
}

// Cleanup removes the segments (and, for raw shm-sem, the semaphore set); a ring's own
// semaphore sets go with the parent's Close.
func (t shmTransport) Cleanup(p Params) error {
	for i, a := range p.Args {
		id, err := strconv.Atoi(a)
		if err != nil {
			continue
		}
		if i == 2 {
			_, _ = sys.SemctlInt(id, 0, unix.IPC_RMID, 0)
			continue
		}
		_, _ = unix.SysvShmCtl(id, unix.IPC_RMID, nil)
	}
	return nil
}

type ringEndpoint struct {
	send, recv *sysv.Ring
	owner      bool
}

func (e *ringEndpoint) Send(p []byte) error { return e.send.Send(context.Background(), p) }

func (e *ringEndpoint) Recv(p []byte) error {
	n, err := e.recv.Recv(context.Background(), p)
	if err == nil && n != len(p) {
		err = fmt.Errorf("shm: received %d bytes, want %d", n, len(p))
	}
	return err
}

func (e *ringEndpoint) Close() error {
	if e.owner {
		e.send.Remove()
		e.recv.Remove()
	}
	return ipc.Join(e.send.Close(), e.recv.Close())
}

// The raw baseline: per direction a one-slot mailbox in a bare segment,
//
//	[0:4] state (0 empty, 1 full; the futex word)  [4:8] waiters  [8:16] length  [64:] data
//
// A side that finds the slot in the wrong state announces itself in waiters and
// sleeps; the side that changes the state wakes it only if waiters says someone
// sleeps. shm sleeps on the state word with bare futex calls; shm-sem sleeps in semop
// on a semaphore of a bare set, one per direction and per state waited for (the
// sender's "empty" and the receiver's "full", as the Ring has one for data and one for
// room), and posts the other side's to wake it. One semaphore for both sides of a slot
// deadlocked in the stream scenario: a receiver going back to sleep took the post
// meant for the sender it had just woken. That is the
// work an ipclab Ring does with either signal: a system call only to sleep and to
// wake a sleeper. (An earlier baseline used classic full/empty semaphores, two semop
// calls per send and two per receive whether or not anyone waited: twice the calls of
// the Ring, so ipclab measured 28-38% faster than its own floor.)
const rawSlotData = 64

func (t shmTransport) rawSetup(p *Params) (Endpoint, []*os.File, error) {
	var ids [2]int
	for i := range ids {
		id, err := unix.SysvShmGet(int(sysv.Private), rawSlotData+max(p.Size, 1), unix.IPC_CREAT|unix.IPC_EXCL|0o600)
		if err != nil {
			for _, id := range ids[:i] {
				_, _ = unix.SysvShmCtl(id, unix.IPC_RMID, nil)
			}
			return nil, nil, err
		}
		ids[i] = id
	}
	p.Args = idArgs(ids[0], ids[1])
	if t.signal == sysv.SignalSemaphore {
		sem, err := sys.Semget(0, 4, unix.IPC_CREAT|unix.IPC_EXCL|0o600) // all start at 0
		if err != nil {
			t.Cleanup(*p)
			return nil, nil, err
		}
		p.Args = append(p.Args, strconv.Itoa(sem))
	}
	ep, err := t.rawAttach(*p, 0)
	if err != nil {
		t.Cleanup(*p)
		return nil, nil, err
	}
	ep.owner = true
	return ep, nil, nil
}

func (t shmTransport) rawOpen(p Params) (Endpoint, error) { return t.rawAttach(p, 1) }

func (t shmTransport) rawAttach(p Params, side int) (*rawSlotEndpoint, error) {
	want := 2
	if t.signal == sysv.SignalSemaphore {
		want = 3
	}
	ids, err := argIDs(p, want)
	if err != nil {
		return nil, err
	}
	e := &rawSlotEndpoint{t: t, p: p, sem: -1}
	if want == 3 {
		e.sem = ids[2]
	}
	out, in := ids[0], ids[1]
	e.sendDir, e.recvDir = 0, 1
	if side == 1 {
		out, in = in, out
		e.sendDir, e.recvDir = 1, 0
	}
	if e.out, err = unix.SysvShmAttach(out, 0, 0); err != nil {
		return nil, err
	}
	if e.in, err = unix.SysvShmAttach(in, 0, 0); err != nil {
		_ = unix.SysvShmDetach(e.out)
		return nil, err
	}
	return e, nil
}

type rawSlotEndpoint struct {
	t                shmTransport
	p                Params
	out, in          []byte
	sem              int
	sendDir, recvDir uint16
	owner            bool
	closed           atomic.Bool
	inflight         atomic.Int32
}

func (e *rawSlotEndpoint) enter() bool {
	e.inflight.Add(1)
	if e.closed.Load() {
		e.inflight.Add(-1)
		return false
	}
	return true
}

// transfer waits until the slot in m is in state from, runs f, moves the slot to
// state to, and wakes the other side if it sleeps. dir is the slot's direction; shm-sem
// sleeps on semaphore 2*dir+from and wakes the other side on 2*dir+to.
func (e *rawSlotEndpoint) transfer(m []byte, dir uint16, from, to uint32, f func()) error {
	state, waiters := sys.Uint32At(m, 0), sys.Uint32At(m, 4)
	for state.Load() != from {
		waiters.Add(1)
		var err error
		if e.sem < 0 {
			err = sys.FutexWait(state, 1-from, nil) // the kernel re-checks the state
		} else if state.Load() != from {
			// Re-checked after announcing: the waker changes the state before it reads
			// waiters. A post for a sleeper that then found the state changed is left
			// on the semaphore and costs one spurious wake-up later; the loop re-checks.
			err = rawSemop(e.sem, []sysv.SemOp{{Num: 2*dir + uint16(from), Op: -1}})
		}
		waiters.Add(^uint32(0))
		if err != nil && err != unix.EAGAIN && err != unix.EINTR {
			return err
		}
		if e.closed.Load() {
			return os.ErrClosed
		}
	}
	f()
	state.Swap(to) // Swap: ordered before the load of waiters, even under -race
	if waiters.Load() != 0 {
		if e.sem >= 0 {
			return rawSemop(e.sem, []sysv.SemOp{{Num: 2*dir + uint16(to), Op: 1}})
		}
		if _, err := sys.FutexWake(state, 1); err != nil {
			return err
		}
	}
	return nil
}

func (e *rawSlotEndpoint) Send(p []byte) error {
	if !e.enter() {
		return os.ErrClosed
	}
	defer e.inflight.Add(-1)
	m := e.out
	return e.transfer(m, e.sendDir, 0, 1, func() {
		binary.NativeEndian.PutUint64(m[8:], uint64(len(p)))
		copy(m[rawSlotData:], p)
	})
}

func (e *rawSlotEndpoint) Recv(p []byte) error {
	if !e.enter() {
		return os.ErrClosed
	}
	defer e.inflight.Add(-1)
	m := e.in
	var n uint64
	if err := e.transfer(m, e.recvDir, 1, 0, func() {
		n = binary.NativeEndian.Uint64(m[8:])
		if n <= uint64(len(m)-rawSlotData) {
			copy(p, m[rawSlotData:rawSlotData+n])
		}
	}); err != nil {
		return err
	}
	if n != uint64(len(p)) {
		return fmt.Errorf("shm: received %d bytes, want %d", n, len(p))
	}
	return nil
}

// Close wakes a Send or Recv blocked on a futex (the peer may be gone) and waits for
// it to leave before detaching.
func (e *rawSlotEndpoint) Close() error {
	if e.closed.Swap(true) {
		return nil
	}
	if e.owner {
		_ = e.t.Cleanup(e.p) // wakes semaphore waiters with EIDRM
	}
	for i := 0; e.inflight.Load() != 0 && i < 1000; i++ {
		for _, m := range [][]byte{e.out, e.in} {
			_, _ = sys.FutexWake(sys.Uint32At(m, 0), 8)
		}
		time.Sleep(time.Millisecond)
	}
	return ipc.Join(unix.SysvShmDetach(e.out), unix.SysvShmDetach(e.in))
}
