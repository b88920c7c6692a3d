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
// so breaks cancellation of restartable calls; Do re-checks this on every slow path.
//
// Cost: one OS thread per blocked call, for as long as it blocks.
package wait

import (
	"context"
	"os"
	"runtime"
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

// prepare removes SA_RESTART from Signal's handler. It is cheap to repeat and is
// repeated on every slow path, so a later signal.Notify does not silently undo it.
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
type Set struct {
	mu     sync.Mutex
	closed bool
	tids   []int
}

// Closed reports whether Close has been called.
func (s *Set) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Set) enter(tid int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.tids = append(s.tids, tid)
	return true
}

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
func (s *Set) Acquire() bool { return s.enter(0) }

// Release ends a call registered with Acquire.
func (s *Set) Release() { s.leave(0) }

// Close marks the set closed and interrupts every thread blocked in Do until all have
// left, so that the caller can then release the kernel object (close the descriptor)
// with no call still using it. It is idempotent.
func (s *Set) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	delay := 10 * time.Microsecond
	for {
		s.mu.Lock()
		n := len(s.tids)
		if n > 0 && usable.Load() {
			pid := unix.Getpid()
			for _, tid := range s.tids {
				if tid != 0 {
					_ = unix.Tgkill(pid, tid, Signal)
				}
			}
		}
		s.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(delay)
		delay = min(2*delay, maxKickDelay)
	}
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
