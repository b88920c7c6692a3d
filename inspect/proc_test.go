package inspect

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/sysv"
)

var (
	// procReadHelper reads one byte from File(0), a blocking pipe, on a thread of
	// its own, so that the thread sleeps in read(2).
	procReadHelper = ipctest.Helper("inspect-proc-read", func([]string) int {
		runtime.LockOSThread()
		var b [1]byte
		n, err := unix.Read(ipctest.Fd(0), b[:])
		for err == unix.EINTR {
			n, err = unix.Read(ipctest.Fd(0), b[:])
		}
		if n != 1 || err != nil {
			fmt.Println("read:", n, err)
			return 1
		}
		return 0
	})

	// procDrainHelper holds a pipe's read end (File(0)) and write end (File(1)).
	// Told to, it closes the write end and reads to the end: it must read args[0]
	// bytes and then EOF, which it gets only if no other writer exists.
	procDrainHelper = ipctest.Helper("inspect-proc-drain", func(args []string) int {
		want, _ := strconv.Atoi(args[0])
		ipctest.Await()
		if err := unix.Close(ipctest.Fd(1)); err != nil {
			fmt.Println("close:", err)
			return 1
		}
		total := 0
		buf := make([]byte, 4096)
		for {
			pfd := []unix.PollFd{{Fd: int32(ipctest.Fd(0)), Events: unix.POLLIN}}
			if n, err := unix.Poll(pfd, 10_000); n == 0 && err == nil {
				fmt.Printf("no EOF after %d bytes: another writer remains\n", total)
				return 1
			}
			n, err := unix.Read(ipctest.Fd(0), buf)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				fmt.Println("read:", err)
				return 1
			}
			if n == 0 {
				break
			}
			total += n
		}
		if total != want {
			fmt.Printf("read %d bytes, want %d\n", total, want)
			return 1
		}
		return 0
	})

	// procHoldHelper holds the files it was given until told to exit.
	procHoldHelper = ipctest.Helper("inspect-proc-hold", func([]string) int {
		ipctest.Signal()
		ipctest.Await()
		return 0
	})

	// procSemopHelper blocks in semop on set args[0]: semaphore 1 down by 2 (undone
	// at exit) and semaphore 0 up by 1, atomically.
	procSemopHelper = ipctest.Helper("inspect-proc-semop", func(args []string) int {
		id, _ := strconv.Atoi(args[0])
		runtime.LockOSThread()
		ops := []sysv.SemOp{{Num: 1, Op: -2, Flags: sysv.Undo}, {Num: 0, Op: 1}}
		err := sys.Semtimedop(id, ops, nil)
		for err == unix.EINTR {
			err = sys.Semtimedop(id, ops, nil)
		}
		if err != nil && err != unix.EIDRM {
			fmt.Println("semop:", err)
			return 1
		}
		return 0
	})

	// procUnprivilegedHelper reads every process and prints what it found.
	procUnprivilegedHelper = ipctest.Helper("inspect-proc-unprivileged", func([]string) int {
		procs, unreadable := readProcs(nil)
		var r unprivilegedResult
		r.Procs = len(procs)
		r.Unreadable = unreadable
		for _, p := range procs {
			if p.PID == os.Getpid() {
				r.SelfFDs = len(p.FDs)
				r.SelfThreads = len(p.Threads)
			}
		}
		out, _ := json.Marshal(r)
		fmt.Printf("RESULT %s\n", out)
		return 0
	})

	procExitHelper = ipctest.Helper("inspect-proc-exit", func([]string) int { return 0 })
)

type unprivilegedResult struct {
	Procs, SelfFDs, SelfThreads int
	Unreadable                  []Unreadable
}

// blockingPipe returns a pipe whose ends are blocking, closed in cleanup.
func blockingPipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	r, w = os.NewFile(uintptr(p[0]), "pipe-r"), os.NewFile(uintptr(p[1]), "pipe-w")
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

func inode(t *testing.T, f *os.File) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// awaitCall polls process pid's threads until one is asleep in a call that match
// accepts, and returns it.
func awaitCall(t *testing.T, pid int, match func(procThread) bool) procThread {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		threads, err := readThreads(pid)
		if err != nil {
			t.Fatal(err)
		}
		for _, th := range threads {
			if th.State == 'S' && match(th) {
				return th
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no thread of %d reached the call: %+v", pid, threads)
		}
		time.Sleep(time.Millisecond)
	}
}

func findFD(t *testing.T, p procInfo, fd int) procFD {
	t.Helper()
	for _, f := range p.FDs {
		if f.FD == fd {
			return f
		}
	}
	t.Fatalf("process %d has no fd %d: %+v", p.PID, fd, p.FDs)
	return procFD{}
}

func readOne(t *testing.T, pid int) procInfo {
	t.Helper()
	procs, unreadable := readProcs([]int{pid})
	if len(unreadable) > 0 {
		t.Errorf("unreadable: %+v", unreadable)
	}
	if len(procs) != 1 || procs[0].PID != pid {
		t.Fatalf("readProcs(%d) = %+v", pid, procs)
	}
	return procs[0]
}

// A child asleep in read(2) on a pipe: readProcs shows the thread in SYS_READ on the
// pipe's descriptor, and ipcCall says it waits for data there.
func TestReadProcsBlockedRead(t *testing.T) {
	r, w := blockingPipe(t)
	ino := inode(t, r)
	p := ipctest.Start(t, procReadHelper, ipctest.Handover(r))
	fd := ipctest.Fd(0)
	blocked := awaitCall(t, p.Pid(), func(th procThread) bool {
		return th.Syscall == unix.SYS_READ && int(th.Args[0]) == fd
	})

	info := readOne(t, p.Pid())
	if info.UID != os.Geteuid() || info.Comm == "" {
		t.Errorf("pid %d: comm %q uid %d", info.PID, info.Comm, info.UID)
	}
	f := findFD(t, info, fd)
	if f.Mode&unix.S_IFMT != unix.S_IFIFO || f.Ino != ino || f.Link != fmt.Sprintf("pipe:[%d]", ino) ||
		f.Flags&unix.O_ACCMODE != unix.O_RDONLY {
		t.Errorf("fd %d = %+v, want the read end of pipe:[%d]", fd, f, ino)
	}
	i := slices.IndexFunc(info.Threads, func(th procThread) bool { return th.TID == blocked.TID })
	if i < 0 {
		t.Fatalf("readProcs lost thread %d: %+v", blocked.TID, info.Threads)
	}
	th := info.Threads[i]
	if th.Syscall != unix.SYS_READ || th.State != 'S' || th.Switches == 0 {
		t.Errorf("thread = %+v, want asleep in read", th)
	}
	t.Logf("thread %d: wchan %q, %d switches", th.TID, th.Wchan, th.Switches)
	c, ok := ipcCall(th.Syscall, th.Args)
	if want := (callInfo{Name: "read", FD: fd, SysVID: -1, For: forData}); !ok || c != want {
		t.Errorf("ipcCall = %+v, %v; want %+v", c, ok, want)
	}

	// Asleep, it does not run: a second reading shows the same switches.
	again, err := readThreads(p.Pid())
	if err != nil {
		t.Fatal(err)
	}
	if j := slices.IndexFunc(again, func(x procThread) bool { return x.TID == th.TID }); j < 0 ||
		again[j].Switches != th.Switches || again[j].Syscall != unix.SYS_READ {
		t.Errorf("second reading: %+v, first %+v", again, th)
	}

	if _, err := w.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	p.MustSucceed()
	if _, err := readThreads(p.Pid()); !vanished(err) {
		t.Errorf("readThreads of a reaped process: %v", err)
	}
}

// pipeLevel reads a child's pipe's fill and size through either end, and leaves
// nothing behind: when the child closes its write end, its reader gets EOF.
func TestPipeLevel(t *testing.T) {
	r, w := blockingPipe(t)
	capacity, err := unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, 16384)
	if err != nil {
		t.Fatal(err)
	}
	const queued = 1000
	if _, err := w.Write(make([]byte, queued)); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(r.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	p := ipctest.Start(t, procDrainHelper, ipctest.Handover(r, w), ipctest.WithArgs(strconv.Itoa(queued)))
	before := openFDs(t)
	if q, _, err := pipeLevel(p.Pid(), ipctest.Fd(0), st.Ino); err != nil || q != queued {
		t.Errorf("pipeLevel with the pipe's inode = %d, %v", q, err)
	}
	if _, _, err := pipeLevel(p.Pid(), ipctest.Fd(0), st.Ino+1); !errors.Is(err, ipc.ErrInvalid) {
		t.Errorf("pipeLevel with another inode: %v, want ipc.ErrInvalid", err)
	}
	for _, fd := range []int{ipctest.Fd(0), ipctest.Fd(1)} {
		q, c, err := pipeLevel(p.Pid(), fd, 0)
		if err != nil || q != queued || c != int64(capacity) {
			t.Errorf("pipeLevel(fd %d) = %d, %d, %v; want %d, %d", fd, q, c, err, queued, capacity)
		}
	}
	if _, _, err := pipeLevel(p.Pid(), 0, 0); !errors.Is(err, ipc.ErrInvalid) { // /dev/null
		t.Errorf("pipeLevel of a non-pipe: %v", err)
	}
	if _, _, err := pipeLevel(p.Pid(), 999, 0); !errors.Is(err, unix.EBADF) {
		t.Errorf("pipeLevel of a closed fd: %v", err)
	}
	if after := openFDs(t); !slices.Equal(before, after) {
		t.Errorf("descriptors before %v, after %v", before, after)
	}
	p.Signal()
	p.MustSucceed()
}

func openFDs(t *testing.T) []int {
	t.Helper()
	fds, err := listPIDs("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return fds
}

// INS-01: the holders of pipes and a FIFO that readProcs reports — pid, fd and
// access mode — are those lsof(8) reports for the same inodes at the same moment.
func TestHoldersMatchLsof(t *testing.T) {
	lsof, err := exec.LookPath("lsof")
	if err != nil {
		t.Skip("lsof is not installed")
	}
	r1, _ := blockingPipe(t)  // child: read end; test: write end
	r2, w2 := blockingPipe(t) // child: write end; test: read end
	r3, w3 := blockingPipe(t) // child holds both ends
	r4, _ := blockingPipe(t)  // test holds both ends
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	rw, err := os.OpenFile(fifo, os.O_RDWR, 0) // test: read-write
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	ro, err := os.OpenFile(fifo, os.O_RDONLY|unix.O_NONBLOCK, 0) // child: read-only
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[uint64]bool{}
	for _, f := range []*os.File{r1, r2, r3, r4, rw} {
		inodes[inode(t, f)] = true
	}
	p := ipctest.Start(t, procHoldHelper, ipctest.Handover(r1, w2, r3, w3, ro))
	p.Await()
	pids := []int{os.Getpid(), p.Pid()}

	procs, unreadable := readProcs(pids)
	if len(unreadable) > 0 {
		t.Errorf("unreadable: %+v", unreadable)
	}
	var ours []string
	for _, pr := range procs {
		for _, f := range pr.FDs {
			if f.Mode&unix.S_IFMT == unix.S_IFIFO && inodes[f.Ino] {
				access := map[int]string{unix.O_RDONLY: "r", unix.O_WRONLY: "w", unix.O_RDWR: "u"}[f.Flags&unix.O_ACCMODE]
				ours = append(ours, fmt.Sprintf("%d %d %s", pr.PID, f.FD, access))
			}
		}
	}
	out, err := exec.Command(lsof, "-n", "-P", "-w", "-F", "pfai", "-p", fmt.Sprintf("%d,%d", pids[0], pids[1])).Output()
	if err != nil {
		t.Fatalf("lsof: %v\n%s", err, out)
	}
	theirs := lsofHolders(string(out), inodes)
	slices.Sort(ours)
	slices.Sort(theirs)
	if len(ours) != 10 || !slices.Equal(ours, theirs) {
		t.Errorf("holders (pid fd access):\nreadProcs %q\nlsof      %q", ours, theirs)
	}
	p.Signal()
	p.MustSucceed()
}

// lsofHolders parses lsof's field output (p pid, f fd, a access, i inode) into
// "pid fd access" for the descriptors whose inode is in inodes.
func lsofHolders(out string, inodes map[uint64]bool) []string {
	var holders []string
	var pid, fd, access string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		v := line[1:]
		switch line[0] {
		case 'p':
			pid = v
		case 'f':
			fd, access = v, ""
		case 'a':
			access = v
		case 'i':
			ino, err := strconv.ParseUint(v, 10, 64)
			if _, numeric := strconv.Atoi(fd); err == nil && numeric == nil && inodes[ino] {
				holders = append(holders, pid+" "+fd+" "+access)
			}
		}
	}
	return holders
}

// A child blocked in semop: ipcCall finds the set and the operations' address, and
// readSembufs reads the operations from the child's memory.
func TestReadSembufs(t *testing.T) {
	set, err := sysv.CreateSemSet(sysv.Private, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Remove(); set.Close() })
	p := ipctest.Start(t, procSemopHelper, ipctest.WithArgs(strconv.Itoa(set.ID())))
	th := awaitCall(t, p.Pid(), func(th procThread) bool {
		c, ok := ipcCall(th.Syscall, th.Args)
		return ok && c.For == forSemaphore
	})
	c, _ := ipcCall(th.Syscall, th.Args)
	if c.SysVID != set.ID() || c.Nsops != 2 || c.FD != -1 || c.Timed || c.SopsAddr == 0 {
		t.Errorf("ipcCall = %+v, want set %d, 2 operations, untimed", c, set.ID())
	}
	ops, err := readSembufs(p.Pid(), c.SopsAddr, c.Nsops)
	want := []sembuf{{Num: 1, Op: -2, Flg: sysv.Undo}, {Num: 0, Op: 1}}
	if err != nil || !slices.Equal(ops, want) {
		t.Errorf("readSembufs = %+v, %v; want %+v", ops, err, want)
	}
	for _, n := range []int{0, -1, maxSembufs + 1} {
		if _, err := readSembufs(p.Pid(), c.SopsAddr, n); !errors.Is(err, ipc.ErrInvalid) {
			t.Errorf("readSembufs(nsops %d): %v, want ErrInvalid", n, err)
		}
	}
	if _, err := readSembufs(p.Pid(), 8, 1); !errors.Is(err, unix.EFAULT) {
		t.Errorf("readSembufs at an unmapped address: %v, want EFAULT", err)
	}
	if err := set.Set(1, 2); err != nil {
		t.Fatal(err)
	}
	p.MustSucceed()
	if v, err := set.Get(0); err != nil || v != 1 {
		t.Errorf("semaphore 0 = %d, %v; want 1 (the child's semop done)", v, err)
	}
}

// Unprivileged, readProcs over the whole machine succeeds, reads its own process,
// and says it could not read root's, in a few entries.
func TestReadProcsUnprivileged(t *testing.T) {
	ipctest.RequireRoot(t)
	p := ipctest.Start(t, procUnprivilegedHelper, ipctest.AsUser(ipctest.Nobody))
	p.MustSucceed()
	_, line, ok := strings.Cut(p.Output(), "RESULT ")
	var r unprivilegedResult
	if !ok || json.Unmarshal([]byte(line), &r) != nil {
		t.Fatalf("helper output: %s", p.Output())
	}
	if r.SelfFDs == 0 || r.SelfThreads == 0 || r.Procs < 2 {
		t.Errorf("read %d processes; itself with %d fds, %d threads", r.Procs, r.SelfFDs, r.SelfThreads)
	}
	init := slices.IndexFunc(r.Unreadable, func(u Unreadable) bool {
		return (u.What == "/proc/1" || strings.HasPrefix(u.What, "/proc/{1,")) &&
			strings.Contains(u.Err, unix.EACCES.Error())
	})
	if init < 0 || len(r.Unreadable) > 4*maxUnreadableAlike {
		t.Errorf("unreadable (want pid 1 listed, in few entries): %+v", r.Unreadable)
	}
	t.Logf("%d processes read, unreadable: %+v", r.Procs, r.Unreadable)
}

// readProcs of the test process sees an epoll descriptor's targets; of a process
// that is gone, it says so.
func TestReadProcsSelf(t *testing.T) {
	r, w := blockingPipe(t)
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ep)
	for _, fd := range []int{int(r.Fd()), int(w.Fd())} {
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN}); err != nil {
			t.Fatal(err)
		}
	}
	self := readOne(t, os.Getpid())
	f := findFD(t, self, ep)
	if f.Link != "anon_inode:[eventpoll]" || !slices.Equal(f.EpollTargets, []int{int(r.Fd()), int(w.Fd())}) /* sorted */ {
		t.Errorf("epoll fd = %+v, want targets %d, %d", f, r.Fd(), w.Fd())
	}
	if f := findFD(t, self, int(w.Fd())); f.Flags&unix.O_ACCMODE != unix.O_WRONLY || f.Flags&unix.O_CLOEXEC == 0 {
		t.Errorf("write end flags %o", f.Flags)
	}

	p := ipctest.Start(t, procExitHelper)
	p.MustSucceed()
	procs, unreadable := readProcs([]int{p.Pid()})
	if len(procs) != 0 || len(unreadable) != 1 || unreadable[0].Err != "no such process" {
		t.Errorf("readProcs of a gone process = %+v, %+v", procs, unreadable)
	}
}

func TestParseSyscall(t *testing.T) {
	for _, c := range []struct {
		in   string
		nr   int
		arg0 uint64
	}{
		{"running\n", -1, 0},
		{"-1 0x7ffd1000 0x401000\n", -1, 0},
		{"0 0x5 0x7f00 0x1 0x0 0x0 0x0 0x7ffd1000 0x401000\n", 0, 5},
		{"232 0x4 0xc000 0x80 0xffffffffffffffff 0x0 0x0 0x7ffd 0x46\n", 232, 4},
	} {
		nr, args, err := parseSyscall(c.in)
		if err != nil || nr != c.nr || args[0] != c.arg0 {
			t.Errorf("parseSyscall(%q) = %d, %v, %v", c.in, nr, args, err)
		}
	}
	if _, _, err := parseSyscall("0 0x1\n"); err == nil {
		t.Error("parseSyscall of a short line succeeded")
	}
}
