package ipctest

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Proc is a running helper peer.
type Proc struct {
	t      testing.TB
	Cmd    *exec.Cmd
	syncIn *os.File // we write, the helper reads (its fd 3)
	syncOn *os.File // the helper writes, we read (its fd 4)
	out    bytes.Buffer
	lw     *lockedWriter
	waited chan struct{}
	err    error
}

// Option configures Start.
type Option func(*startConfig)

type startConfig struct {
	files  []*os.File
	args   []string
	uid    *uint32
	env    []string
	stdout *os.File
	owned  []*os.File
	clone  uintptr
	ownPG  bool
}

// Handover passes files to the helper like WithFiles and closes the test's copies once
// the helper has started (or failed to), the usual way to hand over one end of a pipe.
func Handover(files ...*os.File) Option {
	return func(c *startConfig) {
		c.files = append(c.files, files...)
		c.owned = append(c.owned, files...)
	}
}

// WithStdout makes f the helper's standard output (and error), instead of a buffer the
// test can read with Output.
func WithStdout(f *os.File) Option {
	return func(c *startConfig) { c.stdout = f }
}

// WithFiles passes files to the helper, where they are File(0), File(1), ...
func WithFiles(files ...*os.File) Option {
	return func(c *startConfig) { c.files = append(c.files, files...) }
}

// WithArgs passes arguments to the helper function.
func WithArgs(args ...string) Option {
	return func(c *startConfig) { c.args = append(c.args, args...) }
}

// WithEnv adds "KEY=value" entries to the helper's environment.
func WithEnv(env ...string) Option {
	return func(c *startConfig) { c.env = append(c.env, env...) }
}

// AsUser runs the helper with the given uid and gid (a second identity). The test must
// be running as root; use RequireRoot first.
func AsUser(uid uint32) Option {
	return func(c *startConfig) { c.uid = &uid }
}

// InNewNamespaces starts the helper in new namespaces, flags being CLONE_NEW* bits
// (unix.CLONE_NEWIPC, unix.CLONE_NEWNET, ...): a second "container" or "host". It needs
// root (CAP_SYS_ADMIN).
func InNewNamespaces(flags uintptr) Option {
	return func(c *startConfig) { c.clone |= flags }
}

// Nobody is the uid of the unprivileged second identity.
const Nobody = 65534

// RequireRoot skips the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (a second identity or a privileged kernel feature)")
	}
}

// Start runs the helper called name as a separate process. The helper is killed (if
// still running) and reaped in t.Cleanup; its output is logged if the test fails.
func Start(t testing.TB, name string, opts ...Option) *Proc {
	t.Helper()
	var c startConfig
	for _, o := range opts {
		o(&c)
	}
	exe, err := executable(c.uid != nil)
	if err != nil {
		t.Fatalf("ipctest: %v", err)
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &Proc{t: t, syncIn: inW, syncOn: outR, waited: make(chan struct{})}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envHelper+"="+name, envHelper+"_ARGS="+strings.Join(c.args, "\x1f"))
	cmd.Env = append(cmd.Env, c.env...)
	cmd.ExtraFiles = append([]*os.File{inR, outW}, c.files...)
	p.lw = &lockedWriter{w: &p.out}
	cmd.Stdout = p.lw
	cmd.Stderr = p.lw
	if c.stdout != nil {
		cmd.Stdout = c.stdout
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Cloneflags: c.clone, Setpgid: c.ownPG}
	if c.uid != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: *c.uid, Gid: *c.uid}
	}
	p.Cmd = cmd
	err = cmd.Start()
	for _, f := range c.owned {
		f.Close()
	}
	if err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		t.Fatalf("ipctest: start helper %s: %v", name, err)
	}
	inR.Close()
	outW.Close()
	go func() {
		p.err = cmd.Wait()
		close(p.waited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.waited:
		default:
			_ = cmd.Process.Kill()
			<-p.waited
		}
		p.syncIn.Close()
		p.syncOn.Close()
		if t.Failed() {
			t.Logf("helper %s output:\n%s", name, p.Output())
		}
	})
	return p
}

// Pid returns the helper's process id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Signal lets the helper's Await return.
func (p *Proc) Signal() {
	p.t.Helper()
	if _, err := p.syncIn.Write([]byte{1}); err != nil {
		p.t.Fatalf("ipctest: signal helper: %v", err)
	}
}

// Await waits (up to a minute) for the helper to call Signal. It fails the test if the
// helper exits first.
func (p *Proc) Await() {
	p.t.Helper()
	_ = p.syncOn.SetReadDeadline(time.Now().Add(time.Minute))
	var b [1]byte
	if _, err := io.ReadFull(p.syncOn, b[:]); err != nil {
		p.t.Fatalf("ipctest: helper did not signal: %v\noutput:\n%s", err, p.Output())
	}
}

// Wait waits (up to a minute) for the helper to exit and returns its exit error.
func (p *Proc) Wait() error {
	p.t.Helper()
	select {
	case <-p.waited:
		return p.err
	case <-time.After(time.Minute):
		p.t.Fatalf("ipctest: helper did not exit\noutput:\n%s", p.Output())
		return nil
	}
}

// MustSucceed waits for the helper and fails the test unless it exited with status 0.
func (p *Proc) MustSucceed() {
	p.t.Helper()
	if err := p.Wait(); err != nil {
		p.t.Fatalf("ipctest: helper failed: %v\noutput:\n%s", err, p.Output())
	}
}

// Kill sends SIGKILL to the helper.
func (p *Proc) Kill() { _ = p.Cmd.Process.Kill() }

// Output returns what the helper has printed so far.
func (p *Proc) Output() string {
	p.lw.mu.Lock()
	defer p.lw.mu.Unlock()
	return p.out.String()
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

var (
	publicExeOnce sync.Once
	publicExe     string
	publicExeErr  error
)

// executable returns the test binary's path; for a helper with another identity, a
// copy in a directory that identity can reach (go test builds into a 0700 directory).
func executable(public bool) (string, error) {
	exe, err := os.Executable()
	if err != nil || !public {
		return exe, err
	}
	publicExeOnce.Do(func() {
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("ipclab-test-%d", os.Getpid()))
		if publicExeErr = os.MkdirAll(dir, 0o755); publicExeErr != nil {
			return
		}
		publicExeErr = os.Chmod(dir, 0o755)
		data, err := os.ReadFile(exe)
		if err != nil {
			publicExeErr = err
			return
		}
		publicExe = filepath.Join(dir, filepath.Base(exe))
		publicExeErr = os.WriteFile(publicExe, data, 0o755)
		registerExit(func() { os.RemoveAll(dir) })
	})
	return publicExe, publicExeErr
}

var (
	exitMu    sync.Mutex
	exitFuncs []func()
)

func registerExit(f func()) {
	exitMu.Lock()
	exitFuncs = append(exitFuncs, f)
	exitMu.Unlock()
}

func runExitFuncs() {
	exitMu.Lock()
	defer exitMu.Unlock()
	for _, f := range exitFuncs {
		f()
	}
	exitFuncs = nil
}

// HasCap reports whether this process has capability bit capability (e.g. 24 for
// CAP_SYS_RESOURCE) in its effective set. Root in a container or sandbox may lack some.
func HasCap(capability uint) bool {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			var mask uint64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%x", &mask); err != nil {
				return false
			}
			return mask&(1<<capability) != 0
		}
	}
	return false
}

// CapSysResource is the capability number of CAP_SYS_RESOURCE.
const CapSysResource = 24

// Interrupted runs call, which blocks in a system call, on a locked OS thread, and
// sends that thread sig every 2 ms until call returns; it returns call's error. Tests
// of "a blocked call gets a signal" (raw EINTR) use it.
func Interrupted(sig unix.Signal, call func() error) error {
	tidc := make(chan int)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tidc <- unix.Gettid()
		done <- call()
	}()
	tid := <-tidc
	for {
		select {
		case err := <-done:
			return err
		case <-time.After(2 * time.Millisecond):
			_ = unix.Tgkill(unix.Getpid(), tid, sig)
		}
	}
}
