package ipctest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Seed returns the seed a test's fault injection should use: IPCLAB_SEED when it is
// set (to replay a failure), otherwise one taken from the clock. It logs the seed with
// the way to replay it, so every failing run can be reproduced.
func Seed(t testing.TB) uint64 {
	t.Helper()
	if s := os.Getenv("IPCLAB_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			t.Fatalf("ipctest: IPCLAB_SEED=%q: %v", s, err)
		}
		t.Logf("ipctest: seed %d (from IPCLAB_SEED)", v)
		return v
	}
	v := uint64(time.Now().UnixNano())
	t.Logf("ipctest: seed %d (replay with IPCLAB_SEED=%d)", v, v)
	return v
}

// Faults describes what an Injector does to a stream of messages. Each probability is
// drawn independently per message from a generator seeded with Seed, so the same seed
// and the same sequence of messages give the same faults.
type Faults struct {
	Seed uint64
	// Loss is the probability that a message is dropped.
	Loss float64
	// Dup is the probability that a message is delivered twice.
	Dup float64
	// Reorder is the probability that a message (with its duplicate, if any) is held
	// back and delivered after the next one that is not lost: a swap of neighbours.
	// Flush releases a message still held.
	Reorder float64
	// Delay, when positive, is the largest extra delay of a delayed message; DelayProb
	// is the probability that a message is delayed by a uniform time in [0, Delay).
	Delay     time.Duration
	DelayProb float64
}

// Validate reports a probability outside [0, 1] or a negative delay.
func (f Faults) Validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"Loss", f.Loss}, {"Dup", f.Dup}, {"Reorder", f.Reorder}, {"DelayProb", f.DelayProb}} {
		if !(p.v >= 0 && p.v <= 1) {
			return fmt.Errorf("ipctest: Faults.%s = %v, want a probability in [0, 1]", p.name, p.v)
		}
	}
	if f.Delay < 0 {
		return fmt.Errorf("ipctest: Faults.Delay = %v, want ≥ 0", f.Delay)
	}
	return nil
}

// FaultStats counts what an Injector did.
type FaultStats struct {
	Messages, Lost, Duplicated, Reordered, Delayed int
}

// String gives the counts in one line, for logs and closing notes.
func (s FaultStats) String() string {
	return fmt.Sprintf("%d messages: %d lost, %d duplicated, %d reordered, %d delayed",
		s.Messages, s.Lost, s.Duplicated, s.Reordered, s.Delayed)
}

// Delivery is one copy of a message an Injector lets through, after Delay.
type Delivery struct {
	Msg   []byte
	Delay time.Duration
}

// Injector applies Faults to messages, one at a time. It is safe for concurrent use;
// the faults are reproducible from the seed when messages arrive in the same order.
type Injector struct {
	mu    sync.Mutex
	f     Faults
	rng   *rand.Rand
	held  []Delivery // a message (and its duplicate) held back, delivered after the next
	stats FaultStats
}

// NewInjector returns an Injector for f, or an error if f is invalid.
func NewInjector(f Faults) (*Injector, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &Injector{f: f, rng: rand.New(rand.NewPCG(f.Seed, f.Seed^0x9e3779b97f4a7c15))}, nil
}

// Apply decides the fate of msg and returns the copies to deliver, in order, each
// with its extra delay: none (lost, or held back for reordering), one, or more (a
// duplicate, or a held message released behind this one). The returned slices alias
// copies the Injector owns; msg itself may be reused by the caller at once.
func (in *Injector) Apply(msg []byte) []Delivery {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.stats.Messages++
	// Every draw happens for every message, so one decision does not shift the
	// random sequence of the others: the same seed gives the same faults per index.
	lose := in.rng.Float64() < in.f.Loss
	dup := in.rng.Float64() < in.f.Dup
	hold := in.rng.Float64() < in.f.Reorder
	delayed := in.rng.Float64() < in.f.DelayProb
	var delay time.Duration
	if in.f.Delay > 0 {
		delay = time.Duration(in.rng.Int64N(int64(in.f.Delay)))
	}
	if !delayed {
		delay = 0
	}
	if lose {
		in.stats.Lost++
		return in.release(nil)
	}
	cp := append([]byte(nil), msg...)
	if delay > 0 {
		in.stats.Delayed++
	}
	out := []Delivery{{Msg: cp, Delay: delay}}
	if dup {
		in.stats.Duplicated++
		out = append(out, Delivery{Msg: cp, Delay: delay})
	}
	if hold && in.held == nil {
		in.stats.Reordered++
		in.held = out
		return nil
	}
	return in.release(out)
}

// release appends the copies of a held message behind out.
func (in *Injector) release(out []Delivery) []Delivery {
	out = append(out, in.held...)
	in.held = nil
	return out
}

// Flush returns a message still held back for reordering, if any.
func (in *Injector) Flush() []Delivery {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.release(nil)
}

// Stats returns what the Injector has done so far.
func (in *Injector) Stats() FaultStats {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.stats
}

// Relay is a datagram proxy that injects faults: datagrams a client sends to Addr go
// to the target through one Injector, and the target's answers go back to that client
// through another (seeded Seed+1). It serves one client address at a time (the last
// one heard from). It works for UDP and for Unix datagram sockets alike. A message held
// back for reordering goes out behind the next one in its direction, or after 20 ms
// without traffic.
type Relay struct {
	conn    net.PacketConn
	target  net.Addr
	in, out *Injector
	client  atomic.Pointer[net.Addr]
	wg      sync.WaitGroup
	closed  atomic.Bool
}

// NewRelay listens on conn and relays between its clients and target with faults f
// in both directions. Close stops it and closes conn.
func NewRelay(conn net.PacketConn, target net.Addr, f Faults) (*Relay, error) {
	in, err := NewInjector(f)
	if err != nil {
		return nil, err
	}
	back := f
	back.Seed++
	out, _ := NewInjector(back)
	r := &Relay{conn: conn, target: target, in: in, out: out}
	r.wg.Add(1)
	go r.loop()
	return r, nil
}

// Addr is the address clients send to.
func (r *Relay) Addr() net.Addr { return r.conn.LocalAddr() }

// Stats returns the faults injected towards the target and back.
func (r *Relay) Stats() (toTarget, toClient FaultStats) { return r.in.Stats(), r.out.Stats() }

func (r *Relay) loop() {
	defer r.wg.Done()
	buf := make([]byte, 65536)
	for {
		// A message held back for reordering goes out behind the next one, or after
		// a quiet moment, so that none stays held for good when traffic stops.
		_ = r.conn.SetReadDeadline(time.Now().Add(quiet))
		n, from, err := r.conn.ReadFrom(buf)
		if err != nil {
			if r.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				r.flushHeld()
			}
			continue
		}
		inj, to := r.in, r.target
		if from.String() == r.target.String() {
			c := r.client.Load()
			if c == nil {
				continue
			}
			inj, to = r.out, *c
		} else {
			r.client.Store(&from)
		}
		for _, d := range inj.Apply(buf[:n]) {
			r.send(d, to)
		}
	}
}

// quiet is how long a Relay waits for traffic before it releases held messages.
const quiet = 20 * time.Millisecond

// flushHeld sends the messages each direction holds back.
func (r *Relay) flushHeld() {
	for _, d := range r.in.Flush() {
		r.send(d, r.target)
	}
	if c := r.client.Load(); c != nil {
		for _, d := range r.out.Flush() {
			r.send(d, *c)
		}
	}
}

func (r *Relay) send(d Delivery, to net.Addr) {
	if d.Delay <= 0 {
		_, _ = r.conn.WriteTo(d.Msg, to)
		return
	}
	r.wg.Add(1)
	time.AfterFunc(d.Delay, func() {
		defer r.wg.Done()
		if !r.closed.Load() {
			_, _ = r.conn.WriteTo(d.Msg, to)
		}
	})
}

// Close stops the relay, closes its socket and waits for delayed datagrams to settle.
func (r *Relay) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	err := r.conn.Close()
	r.wg.Wait()
	return err
}

// envFault names the fault point a helper should hit, as "name:n:signal".
const envFault = "IPCLAB_FAULT_AT"

// FaultAt makes the helper raise sig (unix.SIGKILL or unix.SIGSTOP, say) on itself the
// n-th time (from 1) its code reaches Point(name): a crash or a stop at a chosen point.
// The helper gets a process group of its own: when a process group with a stopped
// member becomes orphaned, the kernel sends the group SIGHUP and SIGCONT, and the
// test binary's own group (shared with go test) is not one the test controls.
func FaultAt(name string, n int, sig unix.Signal) Option {
	return func(c *startConfig) {
		c.env = append(c.env, fmt.Sprintf("%s=%s:%d:%d", envFault, name, n, int(sig)))
		c.ownPG = true
	}
}

var faultPoint struct {
	once sync.Once
	name string
	n    int64
	sig  unix.Signal
	hits atomic.Int64
}

// Point marks a point in a helper's code where a test may inject a process fault with
// FaultAt. It costs a string comparison when no fault is asked for.
func Point(name string) {
	fp := &faultPoint
	fp.once.Do(func() {
		v := os.Getenv(envFault)
		f := strings.Split(v, ":")
		if len(f) != 3 {
			return
		}
		n, err1 := strconv.ParseInt(f[1], 10, 64)
		sig, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "ipctest: bad %s=%q\n", envFault, v)
			os.Exit(2)
		}
		fp.name, fp.n, fp.sig = f[0], n, unix.Signal(sig)
	})
	if fp.name == "" || fp.name != name {
		return
	}
	if fp.hits.Add(1) == fp.n {
		// A signal sent to the process may be taken by another thread while this
		// one runs on past the point; sent to this thread, it is acted on when the
		// system call returns, here.
		runtime.LockOSThread()
		_ = unix.Tgkill(os.Getpid(), unix.Gettid(), fp.sig)
		runtime.UnlockOSThread()
		if fp.sig == unix.SIGKILL {
			select {} // never run past the point
		}
	}
}

// LimitFds sets this process's soft RLIMIT_NOFILE so that exactly free more
// descriptors can be opened, and returns a function that restores the old limit. Use
// it in a helper process (the limit is process-wide) for descriptor-exhaustion faults.
func LimitFds(free int) (restore func(), err error) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	// The listing includes ReadDir's own descriptor, closed by now. The kernel gives
	// out the lowest free descriptor below the limit, so a limit L leaves L minus the
	// open descriptors below L free: take the smallest L that leaves exactly free.
	open := map[int]bool{}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && isOpen(fd) {
			open[fd] = true
		}
	}
	limit, slots := 0, 0
	for slots < free || open[limit] {
		if !open[limit] {
			slots++
		}
		limit++
	}
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		return nil, err
	}
	lim := old
	lim.Cur = uint64(limit)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return nil, err
	}
	return func() { _ = unix.Setrlimit(unix.RLIMIT_NOFILE, &old) }, nil
}

// isOpen reports whether fd is an open descriptor of this process.
func isOpen(fd int) bool {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err == nil
}
