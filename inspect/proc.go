package inspect

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
)

// procRoot is where the proc file system is mounted.
const procRoot = "/proc"

// A procFD is one open descriptor of a process, as /proc shows it.
type procFD struct {
	FD       int
	Dev, Ino uint64 // of the open file (stat through /proc/PID/fd/N)
	Mode     uint32 // st_mode (S_IFIFO, S_IFSOCK, ...)
	// Link is what /proc/PID/fd/N points at: "pipe:[123]", "socket:[456]", "/tmp/f",
	// "anon_inode:[eventpoll]", ...
	Link string
	// Flags are the open flags from /proc/PID/fdinfo/N; the access mode is
	// Flags & O_ACCMODE.
	Flags int
	// EpollTargets are, for an epoll descriptor, the descriptors registered in it
	// (its fdinfo's "tfd:" lines), sorted.
	EpollTargets []int
}

// A procThread is one thread of a process, as /proc shows it.
type procThread struct {
	TID   int
	Comm  string
	State byte // 'R', 'S', 'D', ... (/proc/PID/task/TID/stat)
	// Syscall is the number of the system call the thread is blocked in, with its
	// arguments (/proc/PID/task/TID/syscall); -1 when the thread is running, not in a
	// call, or the file could not be read.
	Syscall int
	Args    [6]uint64
	// Wchan is where in the kernel the thread sleeps; "" when the kernel does not say.
	Wchan string
	// Switches is the thread's voluntary plus involuntary context switches. It is
	// read last, so two readings with the same Syscall and the same Switches show
	// that the thread did not run from the end of the first to the second.
	Switches uint64
}

// A procInfo is a process with its descriptors and threads.
type procInfo struct {
	PID  int
	Comm string
	UID  int // effective uid
	FDs  []procFD
	// Threads are the process's threads, sorted by TID.
	Threads []procThread
}

// readProcs reads the given processes (every process in /proc when pids is empty),
// sorted by pid; kernel threads, which hold no descriptors, are left out. Processes
// that vanish while being read are skipped silently, as are descriptors and threads
// that go away meanwhile. Anything else that cannot be read (another user's
// descriptors or system calls, without ptrace access) is listed in the second result:
// one entry per process at most, and one entry for all processes that failed alike
// when there are many, so that an unprivileged reading of a whole machine lists a
// handful of entries rather than thousands.
func readProcs(pids []int) ([]procInfo, []Unreadable) {
	var probs problems
	asked := len(pids) > 0
	if !asked {
		var err error
		if pids, err = listPIDs(procRoot); err != nil {
			return nil, []Unreadable{{What: procRoot, Err: reason(err)}}
		}
	}
	var out []procInfo
	for _, pid := range pids {
		p, err := readProc(pid, &probs)
		switch {
		case err == nil:
			out = append(out, p)
		case errors.Is(err, errKernelThread):
		case vanished(err) && !asked:
		case vanished(err):
			probs.other = append(probs.other, Unreadable{What: procPath(pid), Err: "no such process"})
		default:
			probs.add(pid, "stat", err)
		}
	}
	slices.SortFunc(out, func(a, b procInfo) int { return a.PID - b.PID })
	return out, probs.list()
}

// readThreads re-reads the threads of process pid, sorted by TID (used to confirm a
// wait). It fails if the process has gone or a thread's system call cannot be read.
func readThreads(pid int) ([]procThread, error) {
	tids, err := listPIDs(procPath(pid) + "/task")
	if err != nil {
		return nil, err
	}
	var out []procThread
	for _, tid := range tids {
		t, err := readThread(pid, tid)
		if vanished(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// errKernelThread marks a kernel thread, which readProcs leaves out.
var errKernelThread = errors.New("kernel thread")

// pfKthread is PF_KTHREAD, the flag of a kernel thread in /proc/PID/stat.
const pfKthread = 0x00200000

// readProc reads one process, recording in probs what it cannot read. It returns an
// error only when the process itself cannot be read (it has gone, for one).
func readProc(pid int, probs *problems) (procInfo, error) {
	dir := procPath(pid)
	comm, _, flags, err := readStat(dir + "/stat")
	if err != nil {
		return procInfo{}, err
	}
	if flags&pfKthread != 0 {
		return procInfo{}, errKernelThread
	}
	status, err := readKeyed(dir + "/status")
	if err != nil {
		return procInfo{}, err
	}
	p := procInfo{PID: pid, Comm: comm, UID: -1}
	if f := strings.Fields(status["Uid"]); len(f) > 1 {
		p.UID, _ = strconv.Atoi(f[1])
	}
	if p.FDs, err = readFDs(pid, probs); vanished(err) {
		return procInfo{}, err
	} else if err != nil {
		probs.add(pid, "fd", err)
	}
	tids, err := listPIDs(dir + "/task")
	if err != nil {
		return procInfo{}, err // every process has a task directory, even a zombie
	}
	for _, tid := range tids {
		t, err := readThread(pid, tid)
		if vanished(err) {
			continue
		}
		switch {
		case t.TID == 0:
			probs.add(pid, "task", err)
			continue
		case err != nil:
			probs.add(pid, "syscall", err)
		}
		p.Threads = append(p.Threads, t)
	}
	if len(p.Threads) == 0 {
		return procInfo{}, unix.ESRCH // it exited while being read
	}
	return p, nil
}

// readFDs reads the descriptors of process pid. Per-descriptor failures other than a
// descriptor closed meanwhile go to probs; the error is the fd directory's.
func readFDs(pid int, probs *problems) ([]procFD, error) {
	dir := procPath(pid)
	fds, err := listPIDs(dir + "/fd")
	if err != nil {
		return nil, err
	}
	var out []procFD
	for _, fd := range fds {
		f, err := readFD(dir, fd)
		if vanished(err) {
			continue // closed meanwhile
		}
		if err != nil {
			probs.add(pid, "fd entry", err)
			continue
		}
		out = append(out, f)
	}
	return out, nil
}

// readFD reads descriptor fd of the process whose /proc directory is dir.
func readFD(dir string, fd int) (procFD, error) {
	path := dir + "/fd/" + strconv.Itoa(fd)
	link, err := os.Readlink(path)
	if err != nil {
		return procFD{}, procErr("readlink", path, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return procFD{}, ipc.Wrap("stat", path, err)
	}
	f := procFD{FD: fd, Dev: uint64(st.Dev), Ino: st.Ino, Mode: st.Mode, Link: link}
	data, err := readFile(dir + "/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		return procFD{}, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, val, _ := strings.Cut(sc.Text(), ":")
		val = strings.TrimSpace(val)
		switch key {
		case "flags":
			fl, err := strconv.ParseInt(val, 8, 64)
			if err != nil {
				return procFD{}, ipc.Wrap("parse", dir+"/fdinfo/"+strconv.Itoa(fd), err)
			}
			f.Flags = int(fl)
		case "tfd":
			if t, err := strconv.Atoi(strings.Fields(val)[0]); err == nil {
				f.EpollTargets = append(f.EpollTargets, t)
			}
		}
	}
	slices.Sort(f.EpollTargets)
	return f, nil
}

// readThread reads thread tid of process pid: its stat, then its system call and
// wait channel, then (last) its context switches. A thread whose system call cannot
// be read (another user's, without ptrace access) is returned with Syscall -1 and the
// error; a thread that cannot be read at all has TID 0.
func readThread(pid, tid int) (procThread, error) {
	dir := procPath(pid) + "/task/" + strconv.Itoa(tid)
	comm, state, _, err := readStat(dir + "/stat")
	if err != nil {
		return procThread{}, err
	}
	t := procThread{TID: tid, Comm: comm, State: state, Syscall: -1}
	data, err := readFile(dir + "/syscall")
	var callErr error
	if err == nil {
		if t.Syscall, t.Args, err = parseSyscall(string(data)); err != nil {
			callErr = ipc.Wrap("parse", dir+"/syscall", err)
		}
	} else {
		callErr = err
	}
	if w, err := os.ReadFile(dir + "/wchan"); err == nil && string(w) != "0" {
		t.Wchan = strings.TrimSpace(string(w))
	}
	status, err := readKeyed(dir + "/status")
	if err != nil {
		return procThread{}, err
	}
	for _, k := range []string{"voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"} {
		n, _ := strconv.ParseUint(status[k], 10, 64)
		t.Switches += n
	}
	return t, callErr
}

// parseSyscall parses /proc/PID/task/TID/syscall: "NR ARG1 ... ARG6 SP PC" in a
// call, "-1 SP PC" when blocked outside one, "running" when running.
func parseSyscall(s string) (nr int, args [6]uint64, err error) {
	f := strings.Fields(s)
	if len(f) == 0 || f[0] == "running" || f[0] == "-1" {
		return -1, args, nil
	}
	if nr, err = strconv.Atoi(f[0]); err != nil {
		return -1, args, err
	}
	if len(f) < 7 {
		return -1, args, fmt.Errorf("%d fields, want 9", len(f))
	}
	for i := range args {
		if args[i], err = strconv.ParseUint(f[i+1], 0, 64); err != nil {
			return -1, args, err
		}
	}
	return nr, args, nil
}

// readStat reads a /proc/.../stat file: the command name, the state and the flags.
func readStat(path string) (comm string, state byte, flags uint64, err error) {
	data, err := readFile(path)
	if err != nil {
		return "", 0, 0, err
	}
	s := string(data)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", 0, 0, ipc.Wrap("parse", path, ipc.ErrInvalid)
	}
	// After the name: state ppid pgrp session tty_nr tpgid flags ...
	rest := strings.Fields(s[end+1:])
	if len(rest) < 7 || len(rest[0]) != 1 {
		return "", 0, 0, ipc.Wrap("parse", path, ipc.ErrInvalid)
	}
	flags, _ = strconv.ParseUint(rest[6], 10, 64)
	return s[open+1 : end], rest[0][0], flags, nil
}

// readKeyed reads a "Key:\tvalue" file such as /proc/PID/status.
func readKeyed(path string) (map[string]string, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	m := make(map[string]string)
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m, nil
}

// listPIDs lists the numeric entries of a /proc directory (processes, threads or
// descriptors), sorted.
func listPIDs(dir string) ([]int, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, procErr("open", dir, err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, procErr("readdir", dir, err)
	}
	out := make([]int, 0, len(names))
	for _, n := range names {
		if v, err := strconv.Atoi(n); err == nil {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out, nil
}

func procPath(pid int) string { return procRoot + "/" + strconv.Itoa(pid) }

// readFile reads a /proc file, failing as ipclab calls do.
func readFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, procErr("read", path, err)
	}
	return data, nil
}

// procErr wraps an os error from op on path with ipc.Wrap, keeping the errno.
func procErr(op, path string, err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) {
		err = errno
	}
	return ipc.Wrap(op, path, err)
}

// vanished reports whether err says that what was read has gone: a process or thread
// that exited, a descriptor that was closed.
func vanished(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH)
}

// reason is the cause of err without the path, which Unreadable.What holds.
func reason(err error) string {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}

// maxUnreadableAlike is how many processes that failed for the same reason are
// listed one by one; more are listed as one entry.
const maxUnreadableAlike = 8

// problems gathers what readProcs could not read: per process, the kinds of file
// ("fd", "syscall", ...) that failed for each reason, so that a process with a
// hundred unreadable threads makes one entry, not a hundred.
type problems struct {
	procs map[int][]problem
	other []Unreadable
}

type problem struct {
	reason string
	files  []string
}

func (p *problems) add(pid int, file string, err error) {
	if p.procs == nil {
		p.procs = make(map[int][]problem)
	}
	r := reason(err)
	list := p.procs[pid]
	i := slices.IndexFunc(list, func(pr problem) bool { return pr.reason == r })
	if i < 0 {
		p.procs[pid] = append(list, problem{reason: r, files: []string{file}})
	} else if !slices.Contains(list[i].files, file) {
		list[i].files = append(list[i].files, file)
	}
}

// list returns the problems, sorted: one entry per process ("fd, syscall: permission
// denied"), and one entry for all the processes with the same text when there are
// more than maxUnreadableAlike of them.
func (p *problems) list() []Unreadable {
	byText := make(map[string][]int)
	for pid, list := range p.procs {
		parts := make([]string, len(list))
		for i, pr := range list {
			parts[i] = strings.Join(pr.files, ", ") + ": " + pr.reason
		}
		text := strings.Join(parts, "; ")
		byText[text] = append(byText[text], pid)
	}
	out := append([]Unreadable(nil), p.other...)
	for text, pids := range byText {
		slices.Sort(pids)
		if len(pids) <= maxUnreadableAlike {
			for _, pid := range pids {
				out = append(out, Unreadable{What: procPath(pid), Err: text})
			}
			continue
		}
		shown := make([]string, maxUnreadableAlike)
		for i := range shown {
			shown[i] = strconv.Itoa(pids[i])
		}
		what := fmt.Sprintf("%s/{%s,…} (%d processes)", procRoot, strings.Join(shown, ","), len(pids))
		out = append(out, Unreadable{What: what, Err: text})
	}
	slices.SortFunc(out, func(a, b Unreadable) int { return strings.Compare(a.What, b.What) })
	return out
}

// pipeLevel reports the bytes queued (FIONREAD) and the capacity (F_GETPIPE_SZ) of the
// pipe or FIFO that process pid holds as fd. It reads them through a duplicate of the
// descriptor taken with pidfd_getfd(2), which needs ptrace access to pid (root, or
// the same user where Yama allows), and closes the duplicate at once. The duplicate
// is the same open file description, so nothing the holder or its peers see changes:
// opening /proc/PID/fd/N instead would add a reader or writer to the pipe. The
// descriptor may have been reused since it was listed: unless ino is 0, the pipe must
// have that inode (otherwise the error matches ipc.ErrInvalid). queued is -1 on error.
func pipeLevel(pid, fd int, ino uint64) (queued, capacity int64, err error) {
	object := fmt.Sprintf("%s/fd/%d", procPath(pid), fd)
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, 0, ipc.Wrap("pidfd_open", object, err)
	}
	defer unix.Close(pidfd)
	dup, err := unix.PidfdGetfd(pidfd, fd, 0) // close-on-exec
	if err != nil {
		return -1, 0, ipc.Wrap("pidfd_getfd", object, err)
	}
	defer unix.Close(dup)
	var st unix.Stat_t
	if err := unix.Fstat(dup, &st); err != nil {
		return -1, 0, ipc.Wrap("fstat", object, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO || ino != 0 && st.Ino != ino {
		return -1, 0, ipc.Wrap("pipe level", object, ipc.ErrInvalid)
	}
	n, err := unix.IoctlGetInt(dup, unix.TIOCINQ) // FIONREAD
	if err != nil {
		return -1, 0, ipc.Wrap("ioctl FIONREAD", object, err)
	}
	c, err := unix.FcntlInt(uintptr(dup), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return -1, 0, ipc.Wrap("fcntl F_GETPIPE_SZ", object, err)
	}
	return int64(n), int64(c), nil
}

// A sembuf is one operation of a semop(2) call, as the caller passed it.
type sembuf struct {
	Num     uint16 // semaphore index
	Op, Flg int16  // amount to add (0: wait for zero); IPC_NOWAIT, SEM_UNDO
}

// sembufSize is sizeof(struct sembuf).
const sembufSize = 6

// maxSembufs bounds the operations readSembufs reads: SEMOPM, the kernel's default
// limit of operations per semop call (kernel.sem's third field). A namespace that
// raised the limit may have longer calls; readSembufs refuses those.
const maxSembufs = 500

// readSembufs reads the nsops struct sembuf at addr in the memory of process pid
// (process_vm_readv(2), which needs ptrace access to pid): the operations of a thread
// blocked in semop or semtimedop, which tell which semaphore it waits on.
func readSembufs(pid int, addr uint64, nsops int) ([]sembuf, error) {
	object := fmt.Sprintf("pid %d sops 0x%x", pid, addr)
	if nsops <= 0 || nsops > maxSembufs || addr == 0 {
		return nil, ipc.Wrap("process_vm_readv", object, ipc.ErrInvalid)
	}
	buf := make([]byte, nsops*sembufSize)
	local := []unix.Iovec{{Base: &buf[0]}}
	local[0].SetLen(len(buf))
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(buf)}}
	n, err := unix.ProcessVMReadv(pid, local, remote, 0)
	if err != nil {
		return nil, ipc.Wrap("process_vm_readv", object, err)
	}
	if n != len(buf) {
		return nil, ipc.Wrap("process_vm_readv", object, unix.EFAULT)
	}
	ops := make([]sembuf, nsops)
	for i := range ops {
		b := buf[i*sembufSize:]
		ops[i] = sembuf{
			Num: binary.NativeEndian.Uint16(b),
			Op:  int16(binary.NativeEndian.Uint16(b[2:])),
			Flg: int16(binary.NativeEndian.Uint16(b[4:])),
		}
	}
	return ops, nil
}
