package ebpf_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/internal/sys"
)

// The helpers below are the workloads the probes are checked against. Each waits for
// the test's go-ahead (ipctest.Await, a read on descriptor 3 that starts before the
// probes are attached and so is never counted), does exactly the calls its arguments
// say with blocking descriptors and raw system calls, and exits.

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

func fail(format string, a ...any) int {
	fmt.Fprintf(os.Stderr, format+"\n", a...)
	return 1
}

func readFull(fd int, p []byte) error {
	for off := 0; off < len(p); {
		n, err := unix.Read(fd, p[off:])
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("EOF after %d bytes", off)
		}
		off += n
	}
	return nil
}

// pingpong: files (out, in); args n size first. The side that goes first writes then
// reads; the other reads then writes. Every write and read moves exactly size bytes.
var _ = ipctest.Helper("pingpong", func(args []string) int {
	n, size, first := atoi(args[0]), atoi(args[1]), args[2] == "first"
	out, in := ipctest.Fd(0), ipctest.Fd(1)
	buf := make([]byte, size)
	ipctest.Await()
	for i := 0; i < n; i++ {
		if !first {
			if err := readFull(in, buf); err != nil {
				return fail("read: %v", err)
			}
		}
		if w, err := unix.Write(out, buf); err != nil || w != size {
			return fail("write: %d %v", w, err)
		}
		if first {
			if err := readFull(in, buf); err != nil {
				return fail("read: %v", err)
			}
		}
	}
	return 0
})

// writer: file (out); args n size. n writes of size bytes.
var _ = ipctest.Helper("writer", func(args []string) int {
	n, size := atoi(args[0]), atoi(args[1])
	buf := make([]byte, size)
	ipctest.Await()
	for i := 0; i < n; i++ {
		if w, err := unix.Write(ipctest.Fd(0), buf); err != nil || w != size {
			return fail("write: %d %v", w, err)
		}
	}
	return 0
})

// drain: file (in); args total. Reads until total bytes have arrived.
var _ = ipctest.Helper("drain", func(args []string) int {
	total := atoi(args[0])
	buf := make([]byte, 64<<10)
	ipctest.Await()
	for got := 0; got < total; {
		n, err := unix.Read(ipctest.Fd(0), buf[:min(len(buf), total-got)])
		if err != nil || n == 0 {
			return fail("read after %d: %d %v", got, n, err)
		}
		got += n
	}
	return 0
})

// msgsnd: args id n size. n msgsnd of size bytes of text.
var _ = ipctest.Helper("msgsnd", func(args []string) int {
	id, n, size := atoi(args[0]), atoi(args[1]), atoi(args[2])
	buf := make([]byte, sys.MsgHeaderSize+size)
	binary.NativeEndian.PutUint64(buf, 1)
	ipctest.Await()
	for i := 0; i < n; i++ {
		if err := sys.Msgsnd(id, buf, 0); err != nil {
			return fail("msgsnd: %v", err)
		}
	}
	return 0
})

// msgrcv: args id n size. n msgrcv of size bytes of text.
// noPreemption starts a raw System V helper without the runtime's asynchronous
// preemption: msgsnd and msgrcv are never restarted after a signal handler (signal(7)),
// so the runtime's preemption signal (SIGURG) could end one with EINTR, and the
// workloads must make exactly n calls for the counts to compare.
var noPreemption = ipctest.WithEnv("GODEBUG=asyncpreemptoff=1")

var _ = ipctest.Helper("msgrcv", func(args []string) int {
	id, n, size := atoi(args[0]), atoi(args[1]), atoi(args[2])
	buf := make([]byte, sys.MsgHeaderSize+size)
	ipctest.Await()
	for i := 0; i < n; i++ {
		if got, err := sys.Msgrcv(id, buf, 0, 0); err != nil || got != size {
			return fail("msgrcv: %d %v", got, err)
		}
	}
	return 0
})

// sendto: file (socket); args n size. n sendto of size bytes.
var _ = ipctest.Helper("sendto", func(args []string) int {
	n, size := atoi(args[0]), atoi(args[1])
	buf := make([]byte, size)
	ipctest.Await()
	for i := 0; i < n; i++ {
		if err := unix.Sendto(ipctest.Fd(0), buf, 0, nil); err != nil {
			return fail("sendto: %v", err)
		}
	}
	return 0
})

// recvfrom: file (socket); args n size. n recvfrom of one size-byte datagram each.
var _ = ipctest.Helper("recvfrom", func(args []string) int {
	n, size := atoi(args[0]), atoi(args[1])
	buf := make([]byte, size+1)
	ipctest.Await()
	for i := 0; i < n; i++ {
		if got, _, err := unix.Recvfrom(ipctest.Fd(0), buf, 0); err != nil || got != size {
			return fail("recvfrom: %d %v", got, err)
		}
	}
	return 0
})

// mq: file (queue); args n size. n times: mq_timedsend then mq_timedreceive.
var _ = ipctest.Helper("mq", func(args []string) int {
	n, size := atoi(args[0]), atoi(args[1])
	msg := make([]byte, size)
	buf := make([]byte, 8192)
	ipctest.Await()
	for i := 0; i < n; i++ {
		if err := sys.MqTimedsend(ipctest.Fd(0), msg, 0, nil); err != nil {
			return fail("mq_timedsend: %v", err)
		}
		if got, _, err := sys.MqTimedreceive(ipctest.Fd(0), buf, nil); err != nil || got != size {
			return fail("mq_timedreceive: %d %v", got, err)
		}
	}
	return 0
})

// eagain: files (read end, write end) of a pipe; args k. k reads of the empty pipe in
// non-blocking mode (EAGAIN each), then one write of 1 byte and one read of it.
var _ = ipctest.Helper("eagain", func(args []string) int {
	k := atoi(args[0])
	r, w := ipctest.Fd(0), ipctest.Fd(1)
	if err := unix.SetNonblock(r, true); err != nil {
		return fail("nonblock: %v", err)
	}
	buf := make([]byte, 16)
	ipctest.Await()
	for i := 0; i < k; i++ {
		if _, err := unix.Read(r, buf); err != unix.EAGAIN {
			return fail("read %d: %v, want EAGAIN", i, err)
		}
	}
	if _, err := unix.Write(w, buf[:1]); err != nil {
		return fail("write: %v", err)
	}
	if n, err := unix.Read(r, buf); err != nil || n != 1 {
		return fail("read: %d %v", n, err)
	}
	return 0
})

// shell: args script. Runs /bin/sh -c script (its children are forks of a fork).
var _ = ipctest.Helper("shell", func(args []string) int {
	ipctest.Await()
	if err := runShell(args[0]); err != nil {
		return fail("sh: %v", err)
	}
	return 0
})

func runShell(script string) error {
	p, err := os.StartProcess("/bin/sh", []string{"sh", "-c", script}, &os.ProcAttr{
		Files: []*os.File{nil, nil, os.Stderr},
	})
	if err != nil {
		return err
	}
	st, err := p.Wait()
	if err != nil {
		return err
	}
	if !st.Success() {
		return fmt.Errorf("%v", st)
	}
	return nil
}

// awaitBlocked waits until a thread of process pid is blocked in read(3, ...): the
// helper's ipctest.Await. Calls that started before the probes were attached are
// not counted, so once this returns the helper's next traced call is its workload.
func awaitBlocked(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		for _, task := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, task.Name()))
			if err == nil && strings.HasPrefix(string(b), fmt.Sprintf("%d 0x3 ", unix.SYS_READ)) {
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("helper %d never blocked in its start signal", pid)
}

// pipe2 returns a blocking pipe as files (read end, write end).
func pipe2(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	r, w := os.NewFile(uintptr(fds[0]), "pipe-r"), os.NewFile(uintptr(fds[1]), "pipe-w")
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// socketpair returns a blocking Unix socket pair of type typ.
func socketpair(t *testing.T, typ int) (*os.File, *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := os.NewFile(uintptr(fds[0]), "sock-a"), os.NewFile(uintptr(fds[1]), "sock-b")
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func msgQueue(t *testing.T) int {
	t.Helper()
	id, err := sys.Msgget(0 /* IPC_PRIVATE */, unix.IPC_CREAT|0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = sys.Msgctl(id, unix.IPC_RMID) })
	return id
}
