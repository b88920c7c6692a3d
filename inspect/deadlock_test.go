package inspect_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/inspect"
	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/pipe"
	"github.com/ipclab/ipclab/ipc/sysv"
	"github.com/ipclab/ipclab/sockets"
)

// actor runs a script of IPC steps, each blocking in the kernel the way a C program
// would (ipc.WaitKernel, context.Background), so that its thread sleeps in the
// system call inspect reads. Steps: "rd:I" / "wr:I" read or write a byte on the pipe
// end passed as file I; "srd:I" / "swr:I" the same on a Unix stream socket; "mrcv:ID"
// / "msnd:ID" a System V queue; "sem:ID:NUM:OP" a semop; "sig" signals the test;
// "await" waits for it; "nap:MS" sleeps; "loop" repeats the steps after it for ever.
var _ = ipctest.Helper("inspect-actor", func(args []string) int {
	ctx := context.Background()
	readers := map[int]*pipe.Reader{}
	writers := map[int]*pipe.Writer{}
	conns := map[int]*sockets.StreamConn{}
	kernel := ipc.WaitKernel
	loopAt := -1
	buf := make([]byte, 1)
	for i := 0; i < len(args); i++ {
		f := strings.Split(args[i], ":")
		n := func(k int) int { v, _ := strconv.Atoi(f[k]); return v }
		var err error
		switch f[0] {
		case "rd":
			r := readers[n(1)]
			if r == nil {
				if r, err = pipe.ReaderFromFd(ipctest.Fd(n(1)), pipe.WithWait(kernel)); err != nil {
					break
				}
				readers[n(1)] = r
			}
			_, err = r.ReadContext(ctx, buf)
		case "wr":
			w := writers[n(1)]
			if w == nil {
				if w, err = pipe.WriterFromFd(ipctest.Fd(n(1)), pipe.WithWait(kernel)); err != nil {
					break
				}
				writers[n(1)] = w
			}
			_, err = w.WriteContext(ctx, buf)
		case "srd", "swr":
			c := conns[n(1)]
			if c == nil {
				if c, err = sockets.FileStreamConn(ipctest.File(n(1)), sockets.WithWait(kernel)); err != nil {
					break
				}
				conns[n(1)] = c
			}
			if f[0] == "srd" {
				_, err = c.ReadContext(ctx, buf)
			} else {
				_, err = c.WriteContext(ctx, buf)
			}
		case "mrcv", "msnd":
			var q *sysv.Queue
			if q, err = sysv.OpenQueueID(n(1)); err != nil {
				break
			}
			if f[0] == "msnd" {
				err = q.Send(ctx, 1, buf)
			} else {
				_, _, err = q.Recv(ctx, buf, sysv.Any())
			}
			q.Close()
		case "sem":
			var s *sysv.SemSet
			if s, err = sysv.OpenSemSetID(n(1)); err != nil {
				break
			}
			err = s.Op(ctx, sysv.SemOp{Num: uint16(n(2)), Op: int16(n(3))})
			s.Close()
		case "nap":
			time.Sleep(time.Duration(n(1)) * time.Millisecond)
		case "sig":
			ipctest.Signal()
		case "await":
			ipctest.Await()
		case "loop":
			loopAt = i
		default:
			err = fmt.Errorf("unknown step %q", args[i])
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "step %s: %v\n", args[i], err)
			return 1
		}
		if i == len(args)-1 && loopAt >= 0 {
			i = loopAt
		}
	}
	return 0
})

func pipePair(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	return r, w
}

func socketPair(t *testing.T) (a, b *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fds[0]), "s0"), os.NewFile(uintptr(fds[1]), "s1")
}

func actor(t *testing.T, files []*os.File, steps ...string) *ipctest.Proc {
	t.Helper()
	return ipctest.Start(t, "inspect-actor", ipctest.Handover(files...), ipctest.WithArgs(steps...))
}

func pidsOf(ps ...*ipctest.Proc) []int {
	var out []int
	for _, p := range ps {
		out = append(out, p.Pid())
	}
	return out
}

// awaitDeadlock takes snapshots of pids until one reports a deadlock (the actors
// need a moment to block), and returns it.
func awaitDeadlock(t *testing.T, pids []int) (*inspect.Snapshot, inspect.Deadlock) {
	t.Helper()
	var s *inspect.Snapshot
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); {
		var err error
		s, err = inspect.Take(context.Background(), inspect.Options{PIDs: pids})
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Deadlocks) > 0 {
			if len(s.Deadlocks) != 1 {
				t.Fatalf("%d deadlocks, want 1:\n%s", len(s.Deadlocks), dump(s))
			}
			return s, s.Deadlocks[0]
		}
	}
	t.Fatalf("no deadlock found among %v:\n%s", pids, dump(s))
	return nil, inspect.Deadlock{}
}

func dump(s *inspect.Snapshot) string {
	b, _ := json.MarshalIndent(s, "", "  ")
	return string(b)
}

// checkCycle requires the deadlock's path to be exactly pids (from the smallest,
// in order), each waiting in the given call on the given object.
func checkCycle(t *testing.T, s *inspect.Snapshot, d inspect.Deadlock, pids []int, calls, objects []string) {
	t.Helper()
	first := 0
	for i, p := range pids {
		if p < pids[first] {
			first = i
		}
	}
	if len(d.Path) != len(pids) {
		t.Fatalf("path %+v, want %d steps:\n%s", d.Path, len(pids), dump(s))
	}
	for k := range pids {
		i := (first + k) % len(pids)
		st := d.Path[k]
		if st.PID != pids[i] || st.Syscall != calls[i] || !strings.HasPrefix(st.Object, objects[i]) {
			t.Fatalf("step %d = %+v, want pid %d in %s on %s…\n%s", k, st, pids[i], calls[i], objects[i], dump(s))
		}
	}
}

// awaitHealthy takes snapshots of a busy pipeline and requires that none reports a
// deadlock, and that the snapshots did see its processes wait (a reading that saw
// nothing would prove nothing).
func awaitHealthy(t *testing.T, pids []int) {
	t.Helper()
	waits := 0
	for i := 0; i < 10; i++ {
		s, err := inspect.Take(context.Background(), inspect.Options{PIDs: pids})
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Deadlocks) > 0 {
			t.Fatalf("deadlock reported in a healthy pipeline:\n%s", dump(s))
		}
		waits += len(s.Waits)
	}
	if waits == 0 {
		t.Fatalf("ten snapshots saw no wait of %v", pids)
	}
}

// INS-02: a two-process cycle over two pipes — each process reads the pipe only the
// other writes — is reported with its pids and pipes; the same shape passing a
// token round is not.
func TestDeadlockTwoPipes(t *testing.T) {
	ar, aw := pipePair(t)
	br, bw := pipePair(t)
	p1 := actor(t, []*os.File{ar, bw}, "sig", "rd:0")
	p2 := actor(t, []*os.File{aw, br}, "sig", "rd:1")
	p1.Await()
	p2.Await()
	pids := pidsOf(p1, p2)
	s, d := awaitDeadlock(t, pids)
	checkCycle(t, s, d, pids, []string{"read", "read"}, []string{"pipe:", "pipe:"})
	if d.Path[0].Object == d.Path[1].Object {
		t.Fatalf("both wait on %s", d.Path[0].Object)
	}
}

func TestNoDeadlockTwoPipesBusy(t *testing.T) {
	ar, aw := pipePair(t)
	br, bw := pipePair(t)
	p1 := actor(t, []*os.File{ar, bw}, "wr:1", "loop", "rd:0", "wr:1")
	p2 := actor(t, []*os.File{aw, br}, "loop", "rd:1", "wr:0")
	awaitHealthy(t, pidsOf(p1, p2))
}

// INS-02: a three-process cycle mixing a pipe, a System V queue and a Unix socket:
// P1 reads a pipe only P2 writes; P2 receives from a queue only P3 sends to; P3
// reads a socket whose peer only P1 holds.
func TestDeadlockPipeQueueSocket(t *testing.T) {
	q, err := sysv.CreateQueue(sysv.Private)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Remove(); q.Close() })
	id := strconv.Itoa(q.ID())
	xr, xw := pipePair(t)
	s1, s3 := socketPair(t)
	p1 := actor(t, []*os.File{xr, s1}, "sig", "rd:0")
	p2 := actor(t, []*os.File{xw}, "mrcv:"+id, "sig", "mrcv:"+id)
	p3 := actor(t, []*os.File{s3}, "msnd:"+id, "sig", "srd:0")
	for _, p := range []*ipctest.Proc{p1, p2, p3} {
		p.Await()
	}
	pids := pidsOf(p1, p2, p3)
	s, d := awaitDeadlock(t, pids)
	checkCycle(t, s, d, pids, []string{"read", "msgrcv", "recvmsg"}, []string{"pipe:", "msg:" + id, "unix:"})
}

func TestNoDeadlockPipeQueueSocketBusy(t *testing.T) {
	q, err := sysv.CreateQueue(sysv.Private)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Remove(); q.Close() })
	id := strconv.Itoa(q.ID())
	xr, xw := pipePair(t)
	s1, s3 := socketPair(t)
	p1 := actor(t, []*os.File{xr, s1}, "loop", "rd:0", "swr:1")
	p3 := actor(t, []*os.File{s3}, "loop", "srd:0", "msnd:"+id)
	p2 := actor(t, []*os.File{xw}, "wr:0", "loop", "mrcv:"+id, "wr:0")
	awaitHealthy(t, pidsOf(p1, p2, p3))
}

// INS-02: two processes each holding one of two semaphores and waiting for the
// other's.
func TestDeadlockSemaphores(t *testing.T) {
	set, err := sysv.CreateSemSet(sysv.Private, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Remove(); set.Close() })
	if err := set.SetAll([]uint16{1, 1}); err != nil {
		t.Fatal(err)
	}
	id := strconv.Itoa(set.ID())
	p1 := actor(t, nil, "sem:"+id+":0:-1", "sig", "await", "sem:"+id+":1:-1")
	p2 := actor(t, nil, "sem:"+id+":1:-1", "sig", "await", "sem:"+id+":0:-1")
	p1.Await()
	p2.Await()
	p1.Signal()
	p2.Signal()
	pids := pidsOf(p1, p2)
	s, d := awaitDeadlock(t, pids)
	checkCycle(t, s, d, pids, []string{"semtimedop", "semtimedop"}, []string{"sem:" + id, "sem:" + id})
	for _, w := range s.Waits {
		if slices.Contains(pids, w.PID) && !strings.Contains(w.For, "≥ 1 (is 0)") {
			t.Errorf("wait %+v: want it to say which semaphore it needs", w)
		}
	}
}

func TestNoDeadlockSemaphoresBusy(t *testing.T) {
	set, err := sysv.CreateSemSet(sysv.Private, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Remove(); set.Close() })
	if err := set.SetAll([]uint16{1, 1}); err != nil {
		t.Fatal(err)
	}
	id := strconv.Itoa(set.ID())
	steps := []string{"loop", "sem:" + id + ":0:-1", "sem:" + id + ":1:-1", "nap:2", "sem:" + id + ":1:1", "sem:" + id + ":0:1"}
	p1 := actor(t, nil, steps...)
	p2 := actor(t, nil, steps...)
	awaitHealthy(t, pidsOf(p1, p2))
}
