package posixmq

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/internal/wait"
)

// inflight counts the kernel-mode calls using a descriptor, so that Close releases
// it only once they have all left.
//
// A call whose context can end blocks through wait.Set.Do, which records its thread
// so that cancellation can interrupt it. A call whose context can never end (the
// common case, and ipcbench's) needs no per-call thread bookkeeping: it is counted
// here and blocks directly, and Close finds the threads blocked on the descriptor
// itself, in /proc/self/task/*/syscall (system call number and descriptor), and
// interrupts them with wait.Signal (whose handler has no SA_RESTART). That keeps the
// library's overhead on the hot path to two atomic operations.
type inflight struct {
	// n is the number of calls in flight, plus closing once Close has begun: one
	// atomic operation to enter, one to leave.
	n      atomic.Int64
	closed atomic.Bool
}

const closing = 1 << 40

// enter registers a call; it reports false once the descriptor is closing.
func (f *inflight) enter() bool {
	if f.n.Add(1) >= closing {
		f.n.Add(-1)
		return false
	}
	return true
}

func (f *inflight) leave() { f.n.Add(-1) }

// shut refuses new calls. Calls in flight see closed after an interruption.
func (f *inflight) shut() {
	if !f.closed.Swap(true) {
		f.n.Add(closing)
	}
}

// drain waits until every call has left, interrupting the threads blocked in
// mq_timedsend or mq_timedreceive on fd. shut must have been called.
func (f *inflight) drain(fd int) {
	delay := 10 * time.Microsecond
	for f.n.Load() > closing {
		interruptBlocked(fd)
		time.Sleep(delay)
		delay = min(2*delay, time.Millisecond)
	}
}

// interruptBlocked sends wait.Signal to every thread of this process blocked in
// mq_timedsend or mq_timedreceive on fd. Nothing is sent unless the signal's handler
// is installed (an unhandled real-time signal would kill the process).
func interruptBlocked(fd int) {
	if ok, _ := sys.ClearRestart(wait.Signal); !ok {
		return
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return
	}
	pid := unix.Getpid()
	send := strconv.Itoa(unix.SYS_MQ_TIMEDSEND)
	recv := strconv.Itoa(unix.SYS_MQ_TIMEDRECEIVE)
	arg := "0x" + strconv.FormatInt(int64(fd), 16)
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/syscall")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 2 || (f[0] != send && f[0] != recv) || f[1] != arg {
			continue
		}
		if tid, err := strconv.Atoi(t.Name()); err == nil {
			_ = unix.Tgkill(pid, tid, wait.Signal)
		}
	}
}
