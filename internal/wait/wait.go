// Package wait makes system calls that block inside the kernel cancellable.
//
// System V msgrcv, msgsnd and semop have no descriptor for the Go poller to watch, and
// the WaitKernel strategy deliberately blocks a thread inside read or write. Such a call
// can only be interrupted by a signal aimed at the blocked thread. The shape that works
// (DESIGN §3):
//
//  1. the caller tries once without blocking where the call allows it (IPC_NOWAIT,
//     RWF_NOWAIT), which costs no thread work;
//  2. otherwise Do locks the goroutine to its OS thread, records the thread id in the
//     object's Set and makes the blocking call in an EINTR loop;
//  3. when the context ends or the object is closed, the thread is sent Signal until the
//     call returns (the signal can land just before the call starts, so it is resent
//     with a short backoff); the EINTR then surfaces as ctx.Err() or os.ErrClosed.
//
// Signal is a real-time signal whose Go runtime handler has SA_RESTART removed, so even
// calls the kernel would restart transparently (read on a pipe) return EINTR. Go's own
// SIGURG would do for the never-restarted System V calls only. A program that calls
// signal.Notify or signal.Ignore for Signal re-installs the handler with SA_RESTART and
// so breaks cancellation of restartable calls; Close and the interrupting goroutine
// of a cancellable call re-install it before they send the signal.
//
// Cost: one OS thread per blocked call, for as long as it blocks.
package wait

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
)

// Signal is the signal Do uses to interrupt a blocked thread: SIGRTMIN+29 (signal 63
// with glibc's numbering), chosen to stay clear of the real-time signals that C
// libraries and Go reserve.
const Signal = unix.Signal(63)

// maxKickDelay bounds the backoff between interrupting signals, and so the latency of
// a cancellation that races the start of the system call.
const maxKickDelay = time.Millisecond

// prepare removes SA_RESTART from Signal's handler. It is cheap to repeat (two
// rt_sigaction calls) and is repeated before every round of interruptions (Close, a
// cancellation), so a later signal.Notify does not silently undo it.
func prepare() {
	if ok, _ := sys.ClearRestart(Signal); !ok {
		// No handler at all (the signal is ignored or at its default action, which for
		// a real-time signal would kill the process): make sure we never send it.
		usable.Store(false)
		return
	}
	usable.Store(true)
}

var usable atomic.Bool

// Set tracks the threads blocked in the kernel on one object, so that closing the
// object can interrupt them. The zero value is ready to use. A Set must not be copied.
//
// By default every call records its thread id (a gettid system call and a lock per
// call). Identify lets the set find its blocked threads itself when it is closed, by
// reading /proc/self/task/*/syscall, so that calls which cannot be cancelled cost only
// an atomic counter.
type Set struct {
	// The fields every call touches come first, in one cache line.
	inflight   atomic.Int64 // calls between entry and exit that did not record a tid
	closed     atomic.Bool
	identified bool // Identify was called and threads can be interrupted

	mu   sync.Mutex
	tids []int

	arg      uint64    // with syscalls: the first argument that identifies the object
	syscalls []uintptr // system call numbers a blocked thread of this set may be in
}

// Identify declares that threads blocked on this set's object are in one of syscalls
// with arg (a descriptor or System V id) as the first argument. Call it once, before
// the set is used.
func (s *Set) Identify(arg uintptr, syscalls ...uintptr) {
	s.arg = uint64(arg)
	s.syscalls = syscalls
	s.identified = len(syscalls) > 0 && usable.Load()
}

// Identified reports whether Identify was called (and interruption works), so that a
// call nothing but Close can end may be bracketed by Acquire and Release, with an EINTR
// loop that stops once Closed, instead of going through Do.
func (s *Set) Identified() bool { return s.identified }

// Closed reports whether Close has been called.
func (s *Set) Closed() bool { return s.closed.Load() }

// enter records a call blocked on thread tid, so that Close can interrupt it; it
// reports false once the set is closed.
func (s *Set) enter(tid int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return false
	}
	s.tids = append(s.tids, tid)
	return true
}

// leave forgets a call recorded by enter.
func (s *Set) leave(tid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, t := range s.tids {
		if t == tid {
			last := len(s.tids) - 1
			s.tids[i] = s.tids[last]
			s.tids = s.tids[:last]
			return
		}
	}
}

// Acquire registers a call that does not block (so Close need not interrupt it but must
// wait for it before the object is released). It reports false once the set is closed.
func (s *Set) Acquire() bool {
	s.inflight.Add(1)
	if s.closed.Load() {
		s.inflight.Add(-1)
		return false
	}
	return true
}

// Release ends a call registered with Acquire.
func (s *Set) Release() { s.inflight.Add(-1) }

// Close marks the set closed and interrupts every thread blocked in Do until all have
// left, so that the caller can then release the kernel object (close the descriptor)
// with no call still using it. It is idempotent.
func (s *Set) Close() {
	s.mu.Lock()
	s.closed.Swap(true) // Swap: ordered before the loads of inflight in interrupt
	s.mu.Unlock()
	s.interrupt()
}

// interrupt sends Signal to every thread blocked on the set, registered (Do) or found
// (Identify), with a growing pause between rounds, until no call is in flight.
func (s *Set) interrupt() {
	kickUntil(func() (tids []int, idle bool) {
		s.mu.Lock()
		tids = append(tids, s.tids...)
		s.mu.Unlock()
		registered := len(tids)
		inflight := s.inflight.Load()
		if inflight > 0 && len(s.syscalls) > 0 {
			tids = append(tids, blockedIn(s.arg, s.syscalls)...)
		}
		return tids, registered == 0 && inflight == 0
	}, func() bool { return false }, nil)
}

// kickUntil sends Signal, with a growing pause between rounds, to the threads each
// round of targets names, until targets reports idle (after that round's signals)
// or stop reports true.
//
// after, if not nil, runs after each round's signals (a guard targets took).
func kickUntil(targets func() (tids []int, idle bool), stop func() bool, after func()) {
	prepare() // a signal.Notify since the set was made may have restored SA_RESTART
	delay := 10 * time.Microsecond
	pid := unix.Getpid()
	for !stop() {
		tids, idle := targets()
		if usable.Load() {
			for _, tid := range tids {
				_ = unix.Tgkill(pid, tid, Signal)
			}
		}
		if after != nil {
			after()
		}
		if idle {
			return
		}
		time.Sleep(delay)
		delay = min(2*delay, maxKickDelay)
	}
}

// Expiry interrupts, when a deadline passes, the threads blocked in given system
// calls on one descriptor, so that each looks at the deadline again: it reaches
// calls that are not registered anywhere (a socket's kernel-mode fast path), found
// in /proc/self/task/*/syscall. The zero value is ready to use.
type Expiry struct {
	mu    sync.Mutex
	timer *time.Timer
}

// Arm makes the calls blocked in one of syscalls with arg as first argument be
// interrupted when t passes, again and again, until busy reports false (no such
// call is left) or stale reports true (t is no longer the deadline). A zero t only
// disarms. Calls must check the deadline after an interruption. Each round of
// signals runs under guard's in-flight count (Acquire), so that guard's Close cannot
// release the descriptor arg names, and a number reused by another object, while
// the round looks for its threads; a closed guard ends the rounds.
func (e *Expiry) Arm(t time.Time, guard *Set, arg uintptr, syscalls []uintptr, busy, stale func() bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	if t.IsZero() {
		return
	}
	e.timer = time.AfterFunc(time.Until(t), func() {
		held := false
		kickUntil(func() ([]int, bool) {
			b := busy() // before the guard's count includes this round
			if held = guard.Acquire(); !held {
				return nil, true
			}
			tids := blockedIn(uint64(arg), syscalls)
			return tids, len(tids) == 0 && !b
		}, stale, func() {
			if held {
				guard.Release()
			}
		})
	})
}

// Kick sends Signal once to every thread of this process blocked in one of
// syscalls with arg as first argument, and returns how many it signalled. A call so
// interrupted returns EINTR and must decide itself what that means (the Auto wait
// mode moves it from the kernel to the poller).
func Kick(arg uintptr, syscalls []uintptr) int {
	prepare()
	if !usable.Load() {
		return 0
	}
	tids := blockedIn(uint64(arg), syscalls)
	pid := unix.Getpid()
	for _, tid := range tids {
		_ = unix.Tgkill(pid, tid, Signal)
	}
	return len(tids)
}

// InFlight returns the number of calls between Acquire and Release (and Do's
// unregistered calls) now.
func (s *Set) InFlight() int64 { return s.inflight.Load() }

// blockedIn lists this process's threads that are blocked in one of syscalls with
// arg as first argument, as /proc/self/task/TID/syscall shows them ("NR ARG1 ARG2
// ..." with the arguments in hex).
func blockedIn(arg uint64, syscalls []uintptr) []int {
	d, err := os.Open("/proc/self/task")
	if err != nil {
		return nil
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	var out []int
	buf := make([]byte, 256)
	for _, name := range names {
		tid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		fd, err := unix.Open("/proc/self/task/"+name+"/syscall", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		n, _ := unix.Read(fd, buf)
		unix.Close(fd)
		f := strings.Fields(string(buf[:max(n, 0)]))
		if len(f) < 2 {
			continue // "running"
		}
		nr, err1 := strconv.ParseUint(f[0], 10, 64)
		a, err2 := strconv.ParseUint(strings.TrimPrefix(f[1], "0x"), 16, 64)
		if err1 != nil || err2 != nil || a != arg {
			continue
		}
		for _, sc := range syscalls {
			if uint64(sc) == nr {
				out = append(out, tid)
				break
			}
		}
	}
	return out
}

// Do calls call, which makes one blocking system call and returns its raw error,
// until it returns something other than unix.EINTR, ctx ends or the set is closed.
// It returns call's error, ctx.Err() (after an interruption caused by ctx), or
// os.ErrClosed.
//
// With a context that can never end (ctx.Done() == nil) the only extra cost is locking
// the thread and recording its id; nothing is allocated.
func (s *Set) Do(ctx context.Context, call func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ctx.Done() == nil && s.identified {
		// Nothing can cancel this call but Close, which finds the thread itself.
		if !s.Acquire() {
			return os.ErrClosed
		}
		defer s.Release()
		for {
			err := call()
			if err != unix.EINTR {
				return err
			}
			if s.closed.Load() {
				return os.ErrClosed
			}
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	if !s.enter(tid) {
		return os.ErrClosed
	}
	defer s.leave(tid)
	if !usable.Load() {
		prepare()
	}

	if ctx.Done() == nil {
		for {
			err := call()
			if err != unix.EINTR {
				return err
			}
			if s.Closed() {
				return os.ErrClosed
			}
		}
	}

	k := &kicker{pid: unix.Getpid(), tid: tid}
	stop := context.AfterFunc(ctx, k.run)
	defer func() {
		if !stop() {
			k.finish()
		}
	}()
	for {
		err := call()
		if err != unix.EINTR {
			return err
		}
		if s.Closed() {
			return os.ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// kicker interrupts one thread until told to stop. Its mutex makes finish wait for a
// signal being sent, so that no signal is aimed at the thread after Do has returned
// and unlocked it.
type kicker struct {
	pid, tid int
	mu       sync.Mutex
	done     bool
}

func (k *kicker) run() {
	prepare()
	delay := 10 * time.Microsecond
	for {
		k.mu.Lock()
		if k.done {
			k.mu.Unlock()
			return
		}
		if usable.Load() {
			_ = unix.Tgkill(k.pid, k.tid, Signal)
		}
		k.mu.Unlock()
		time.Sleep(delay)
		delay = min(2*delay, maxKickDelay)
	}
}

func (k *kicker) finish() {
	k.mu.Lock()
	k.done = true
	k.mu.Unlock()
}

func init() { prepare() }
