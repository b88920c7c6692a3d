// Package ipctest is ipclab's multi-process test harness.
//
// A test binary's TestMain calls Main. Main does three things:
//
//   - When the binary was started as a helper peer (by Start), it runs the named helper
//     instead of the tests and exits with its status, as os/exec's own tests do.
//   - As root, it re-runs the whole test binary in a new IPC and mount namespace with
//     fresh mqueue and /dev/shm mounts, so System V and POSIX objects of one package's
//     tests can neither collide with nor be mistaken for another's (go test runs
//     packages in parallel), and the leak check below is exact. Set
//     IPCLAB_TEST_NO_NAMESPACE=1 to run in the host namespaces.
//   - It snapshots open descriptors, goroutines, System V objects, POSIX message queues
//     and /dev/shm before the tests and fails the run if any are left over after them.
//     It also gives the binary a $TMPDIR of its own and fails the run if a file, FIFO or
//     socket is left in it.
//
// Helpers are plain functions registered by name with Helper. Start re-executes the test
// binary as that helper with extra files, arguments and an optional second identity,
// and kills and reaps it in t.Cleanup. Peers synchronise through a pair of pipes
// (Proc.Signal / Proc.Await in the test, Signal / Await in the helper), never sleeps.
package ipctest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	envHelper = "IPCLAB_TEST_HELPER"
	envInNS   = "IPCLAB_TEST_IN_NAMESPACE"
	envNoNS   = "IPCLAB_TEST_NO_NAMESPACE"
	envTmp    = "IPCLAB_TEST_TMPDIR"

	// Files passed by Start begin at this descriptor in the helper: 3 and 4 are the
	// synchronisation pipes.
	firstUserFd = 5
)

var (
	helpersMu sync.Mutex
	helpers   = map[string]func(args []string) int{}
)

// Helper registers fn as the helper called name. Call it from a package-level var
// initialiser or init, so the registration exists in the re-executed binary too. fn
// receives the arguments given to Start and returns the exit status. Files passed with
// WithFiles are at File(0), File(1), ...
func Helper(name string, fn func(args []string) int) string {
	helpersMu.Lock()
	defer helpersMu.Unlock()
	if _, dup := helpers[name]; dup {
		panic("ipctest: helper " + name + " registered twice")
	}
	helpers[name] = fn
	return name
}

// IsHelper reports whether this process is running as a helper peer.
func IsHelper() bool { return os.Getenv(envHelper) != "" }

// File returns the i-th file passed to this helper with WithFiles. Every call for
// one i returns the same *os.File: a second os.File on the descriptor would close
// it when garbage-collected, under the first one's feet (or, the number reused,
// under someone else's).
func File(i int) *os.File {
	return helperFile(firstUserFd+i, fmt.Sprintf("ipctest-file-%d", i))
}

// Fd returns the descriptor number of the i-th file passed to this helper.
func Fd(i int) int { return firstUserFd + i }

var helperFiles struct {
	sync.Mutex
	m map[int]*os.File
}

// helperFile returns the one *os.File of this process for descriptor fd.
func helperFile(fd int, name string) *os.File {
	helperFiles.Lock()
	defer helperFiles.Unlock()
	if f := helperFiles.m[fd]; f != nil {
		return f
	}
	if helperFiles.m == nil {
		helperFiles.m = map[int]*os.File{}
	}
	f := os.NewFile(uintptr(fd), name)
	helperFiles.m[fd] = f
	return f
}

// Signal tells the test that started this helper that a step is done.
func Signal() {
	if _, err := helperFile(4, "ipctest-sync-out").Write([]byte{1}); err != nil {
		fmt.Fprintln(os.Stderr, "ipctest: signal:", err)
		os.Exit(3)
	}
}

// Await waits until the test calls Proc.Signal. It exits the helper if the test has
// gone.
func Await() {
	var b [1]byte
	if _, err := io.ReadFull(helperFile(3, "ipctest-sync-in"), b[:]); err != nil {
		os.Exit(3)
	}
}

// Main runs the tests of m (see the package doc) and exits.
func Main(m *testing.M) {
	if name := os.Getenv(envHelper); name != "" {
		os.Exit(runHelper(name))
	}
	if fuzzing() {
		// go test -fuzz runs workers that talk to the coordinator over inherited
		// descriptors, and keeps goroutines of its own: run the tests as they are.
		os.Exit(m.Run())
	}
	if os.Geteuid() == 0 && os.Getenv(envInNS) == "" && os.Getenv(envNoNS) == "" {
		if code, ok := reexecInNamespace(); ok {
			os.Exit(code)
		}
	}
	if os.Getenv(envInNS) != "" {
		if err := privateMounts(); err != nil {
			fmt.Fprintln(os.Stderr, "ipctest: namespace mounts:", err)
			os.Exit(2)
		}
	}
	// Children (helpers, benchmark peers) should not sleep a second at exit under
	// -race, the detector's default.
	os.Setenv("GORACE", strings.TrimSpace("atexit_sleep_ms=0 "+os.Getenv("GORACE")))
	tmp, err := privateTempDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ipctest:", err)
		os.Exit(2)
	}
	warmRuntime()
	before := takeSnapshot()
	code := m.Run()
	runExitFuncs()
	if code == 0 {
		leaks := before.leaksSince()
		if left := filesIn(tmp); len(left) > 0 {
			leaks += fmt.Sprintf("  files left in $TMPDIR: %s\n", strings.Join(left, ", "))
		}
		if leaks != "" {
			fmt.Fprintf(os.Stderr, "ipctest: the tests left resources behind:\n%s", leaks)
			fmt.Println("FAIL: leak check")
			code = 1
		}
	}
	os.RemoveAll(tmp)
	os.Exit(code)
}

func runHelper(name string) int {
	helpersMu.Lock()
	fn := helpers[name]
	helpersMu.Unlock()
	if fn == nil {
		fmt.Fprintf(os.Stderr, "ipctest: no helper %q registered\n", name)
		return 2
	}
	var args []string
	if a := os.Getenv(envHelper + "_ARGS"); a != "" {
		args = strings.Split(a, "\x1f")
	}
	return fn(args)
}

// reexecInNamespace runs this test binary again in new IPC and mount namespaces and
// returns its exit status. ok is false when the namespaces cannot be created, in which
// case the tests run here.
func reexecInNamespace() (code int, ok bool) {
	exe, err := os.Executable()
	if err != nil {
		return 0, false
	}
	// The temporary directory is made and removed here, outside, so that it goes even
	// when the test process panics or is killed.
	tmp, err := newTempDir()
	if err != nil {
		return 0, false
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envInNS+"=1", envTmp+"="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWIPC | syscall.CLONE_NEWNS,
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "ipctest: cannot create IPC namespace (%v); running in the host namespaces\n", err)
		return 0, false
	}
	err = cmd.Wait()
	if ee, isExit := err.(*exec.ExitError); isExit {
		if ws, isWS := ee.Sys().(syscall.WaitStatus); isWS && ws.Signaled() {
			fmt.Fprintf(os.Stderr, "ipctest: test process killed by %v\n", ws.Signal())
			return 2, true
		}
		return ee.ExitCode(), true
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ipctest:", err)
		return 2, true
	}
	return 0, true
}

// privateMounts gives this mount namespace its own mqueue file system and /dev/shm,
// without propagating anything to the host.
func privateMounts() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	if err := os.MkdirAll("/dev/mqueue", 0o755); err == nil {
		if err := unix.Mount("mqueue", "/dev/mqueue", "mqueue", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("mount mqueue: %w", err)
		}
	}
	if err := os.MkdirAll("/dev/shm", 0o1777); err == nil {
		if err := unix.Mount("tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
			return fmt.Errorf("mount /dev/shm: %w", err)
		}
	}
	return nil
}

// fuzzing reports whether go test runs this binary as a fuzzing coordinator or worker.
func fuzzing() bool {
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(a, "-test.fuzz=") || strings.HasPrefix(a, "-test.fuzzworker") {
			return !strings.HasSuffix(a, "=")
		}
	}
	return false
}

// privateTempDir gives this test binary (and the helpers it starts, through the
// environment) a temporary directory of its own, so that a FIFO, socket or file a test
// leaves behind is found exactly, whatever other packages do at the same time. It is
// world-traversable so that helpers running as another user can reach what is in it.
func privateTempDir() (string, error) {
	dir := os.Getenv(envTmp)
	if dir == "" {
		var err error
		if dir, err = newTempDir(); err != nil {
			return "", err
		}
	}
	return dir, os.Setenv("TMPDIR", dir)
}

func newTempDir() (string, error) {
	dir, err := os.MkdirTemp("", "ipclab-test-")
	if err != nil {
		return "", err
	}
	return dir, os.Chmod(dir, 0o755)
}

// filesIn lists what remains under dir, relative to it.
func filesIn(dir string) []string {
	var out []string
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || path == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			return nil
		}
		out = append(out, rel)
		return nil
	})
	return out
}

// warmRuntime makes the Go runtime open the descriptors it keeps for its lifetime (the
// poller's epoll and wake-up descriptors) before the snapshot.
func warmRuntime() {
	r, w, err := os.Pipe()
	if err == nil {
		_ = r.SetReadDeadline(time.Now())
		_, _ = r.Read(make([]byte, 1))
		r.Close()
		w.Close()
	}
}

type snapshot struct {
	fds        []string
	goroutines int
	sysv       []string
	mqueues    []string
	shm        []string
}

func takeSnapshot() snapshot {
	return snapshot{
		fds:        openFds(),
		goroutines: runtime.NumGoroutine(),
		sysv:       sysvObjects(),
		mqueues:    dirNames("/dev/mqueue"),
		shm:        dirNames("/dev/shm"),
	}
}

// leaksSince describes what exists now that did not before, waiting a little for
// goroutines and peers that are still winding down.
func (s snapshot) leaksSince() string {
	var report string
	for i := 0; i < 50; i++ {
		now := takeSnapshot()
		report = ""
		if extra := added(s.fds, now.fds); len(extra) > 0 {
			report += fmt.Sprintf("  descriptors: %s\n", strings.Join(extra, ", "))
		}
		if now.goroutines > s.goroutines {
			report += fmt.Sprintf("  goroutines: %d before, %d after\n%s", s.goroutines, now.goroutines, goroutineDump())
		}
		if extra := added(s.sysv, now.sysv); len(extra) > 0 {
			report += fmt.Sprintf("  System V objects:\n    %s\n", strings.Join(extra, "\n    "))
		}
		if extra := added(s.mqueues, now.mqueues); len(extra) > 0 {
			report += fmt.Sprintf("  POSIX message queues: %s\n", strings.Join(extra, ", "))
		}
		if extra := added(s.shm, now.shm); len(extra) > 0 {
			report += fmt.Sprintf("  /dev/shm: %s\n", strings.Join(extra, ", "))
		}
		if report == "" {
			return ""
		}
		time.Sleep(20 * time.Millisecond)
	}
	return report
}

func added(before, after []string) []string {
	var out []string
	for _, a := range after {
		if !slices.Contains(before, a) {
			out = append(out, a)
		}
	}
	return out
}

// openFds lists this process's descriptors as "fd -> target".
func openFds() []string {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return nil
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	self := fmt.Sprint(d.Fd())
	var out []string
	for _, n := range names {
		if n == self {
			continue
		}
		target, err := os.Readlink(filepath.Join("/proc/self/fd", n))
		if err != nil {
			continue
		}
		out = append(out, n+" -> "+target)
	}
	return out
}

// sysvObjects lists System V objects as "kind key id".
// sysvObjects lists the IPC namespace's System V objects. Without root the tests run
// in the host's namespace, beside other users' objects: then only those this user
// created count.
func sysvObjects() []string {
	var out []string
	me := strconv.Itoa(os.Geteuid())
	for _, kind := range []string{"msg", "sem", "shm"} {
		data, err := os.ReadFile("/proc/sysvipc/" + kind)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Scan() // header
		cuid := slices.Index(strings.Fields(sc.Text()), "cuid")
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 2 {
				continue
			}
			if os.Geteuid() != 0 && (cuid < 0 || cuid >= len(f) || f[cuid] != me) {
				continue
			}
			out = append(out, kind+" key="+f[0]+" id="+f[1])
		}
	}
	return out
}

func dirNames(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func goroutineDump() string {
	buf := make([]byte, 1<<16)
	return string(buf[:runtime.Stack(buf, true)])
}
