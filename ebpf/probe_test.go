package ebpf_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ebpf"
	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/internal/sys"
)

func TestMain(m *testing.M) { ipctest.Main(m) }

func requireProbes(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loading BPF probes needs root (CAP_BPF and CAP_PERFMON)")
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("the probes are built for linux/amd64 only")
	}
}

// ensureTracefs makes classic tracepoints usable: it mounts tracefs when it is not,
// but only inside the private mount namespace ipctest gives root test runs.
func ensureTracefs(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/sys/kernel/tracing/events/raw_syscalls"); err == nil {
		return
	}
	if os.Getenv("IPCLAB_TEST_IN_NAMESPACE") == "" {
		t.Skip("classic tracepoints need tracefs, which is not mounted (and this run has no private mount namespace to mount it in)")
	}
	if err := unix.Mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, ""); err != nil {
		t.Skipf("classic tracepoints need tracefs: mount: %v", err)
	}
}

// trace runs the started helpers (blocked in their start signal) under probes loaded
// with o plus their pids, lets them go, waits for them and returns the snapshot.
func trace(t *testing.T, o ebpf.Options, setup func(p *ebpf.Probes), procs ...*ipctest.Proc) *ebpf.Report {
	t.Helper()
	for _, pr := range procs {
		awaitBlocked(t, pr.Pid())
	}
	o.FilterPIDs = true
	p, err := ebpf.Load(o)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	defer p.Close()
	// The start signal's read can be interrupted by a signal and restarted after the
	// probes are attached (then it is counted): attribute the helpers' synchronisation
	// pipes to a primitive of their own before tracing the helpers.
	for _, pr := range procs {
		for _, fd := range []int{3, 4} {
			if err := p.RegisterFD(pr.Pid(), fd, "ipctest-sync"); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.AddPID(pr.Pid()); err != nil {
			t.Fatal(err)
		}
	}
	if setup != nil {
		setup(p)
	}
	for _, pr := range procs {
		pr.Signal()
	}
	for _, pr := range procs {
		pr.MustSucceed()
	}
	r, err := p.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	// Real reports must render to valid JSON and Prometheus text too.
	var js, prom bytes.Buffer
	if err := ebpf.WriteJSON(&js, r); err != nil {
		t.Fatal(err)
	}
	validateReportJSON(t, js.Bytes(), r)
	if err := ebpf.WritePrometheus(&prom, r); err != nil {
		t.Fatal(err)
	}
	validatePrometheus(t, prom.String(), r)
	if testing.Verbose() {
		var b strings.Builder
		_ = ebpf.WriteTable(&b, r.Rows)
		t.Logf("probes %s:\n%s", r.Attach, b.String())
	}
	return r
}

// expect checks one row's exact counts: calls, no errors, bytes in total and every
// successful call's size in the bucket of size (when size > 0).
func expect(t *testing.T, r *ebpf.Report, prim, op string, calls, size uint64) *ebpf.Row {
	t.Helper()
	row := r.Find(prim, op)
	if row == nil {
		t.Fatalf("no %s %s row; rows: %v", prim, op, rowNames(r))
	}
	if row.Calls != calls || row.Errors != 0 || row.EAGAIN != 0 {
		t.Errorf("%s %s: calls %d errors %d eagain %d, want %d, 0, 0; bytes %d, byte sizes %v", prim, op,
			row.Calls, row.Errors, row.EAGAIN, calls, row.Bytes, row.Hist[ebpf.MetricBytes].Buckets[:16])
		t.Logf("rows: %v", rowNames(r))
	}
	if size > 0 {
		if row.Bytes != calls*size {
			t.Errorf("%s %s: bytes %d, want %d", prim, op, row.Bytes, calls*size)
		}
		if got := row.Hist[ebpf.MetricBytes].Buckets[bucketOf(size)]; got != calls {
			t.Errorf("%s %s: %d calls in the %d-byte bucket, want %d", prim, op, got, size, calls)
		}
	}
	checkConsistent(t, row)
	return row
}

func bucketOf(v uint64) int {
	for k := 0; k < ebpf.NumBuckets; k++ {
		if lo, hi := ebpf.BucketBounds(k); v >= lo && v <= hi {
			return k
		}
	}
	return -1
}

// checkConsistent checks what must hold whatever the timings: every call has a time
// in call and an on-CPU time, and the call times add up exactly to on-CPU plus both
// off-CPU parts.
func checkConsistent(t *testing.T, row *ebpf.Row) {
	t.Helper()
	h := &row.Hist
	if h[ebpf.MetricCall].Count() != row.Calls || h[ebpf.MetricOnCPU].Count() != row.Calls {
		t.Errorf("%s %s: %d calls but %d call times and %d on-CPU times", row.Primitive, row.Op,
			row.Calls, h[ebpf.MetricCall].Count(), h[ebpf.MetricOnCPU].Count())
	}
	if n := h[ebpf.MetricOffPeer].Count(); n > row.Calls {
		t.Errorf("%s %s: %d blocked calls of %d", row.Primitive, row.Op, n, row.Calls)
	}
	parts := h[ebpf.MetricOnCPU].Sum + h[ebpf.MetricOffPeer].Sum + h[ebpf.MetricOffCPU].Sum
	if parts != h[ebpf.MetricCall].Sum {
		t.Errorf("%s %s: on-CPU + off-CPU = %d ns, time in calls = %d ns", row.Primitive, row.Op, parts, h[ebpf.MetricCall].Sum)
	}
}

func rowNames(r *ebpf.Report) []string {
	var s []string
	for _, row := range r.Rows {
		s = append(s, fmt.Sprintf("%s/%s=%d", row.Primitive, row.Op, row.Calls))
	}
	return s
}

func startPingPong(t *testing.T, n, size int) (ping, pong *ipctest.Proc) {
	a, b := pipe2(t) // ping -> pong
	c, d := pipe2(t) // pong -> ping
	args := []string{strconv.Itoa(n), strconv.Itoa(size)}
	ping = ipctest.Start(t, "pingpong", ipctest.WithFiles(b, c), ipctest.WithArgs(append(args, "first")...))
	pong = ipctest.Start(t, "pingpong", ipctest.WithFiles(d, a), ipctest.WithArgs(append(args, "second")...))
	return ping, pong
}

// TestPipeRoundTrip drives N round trips of 64 bytes between two processes over two
// anonymous pipes, with every way of attaching, and checks the exact counts.
func TestPipeRoundTrip(t *testing.T) {
	requireProbes(t)
	const n, size = 200, 64
	for _, mode := range []ebpf.Attach{ebpf.AttachTPBTF, ebpf.AttachRawTP, ebpf.AttachTracepoint} {
		t.Run(mode.String(), func(t *testing.T) {
			if mode == ebpf.AttachTracepoint {
				ensureTracefs(t)
			}
			ping, pong := startPingPong(t, n, size)
			r := trace(t, ebpf.Options{Attach: mode}, nil, ping, pong)
			if r.Attach != mode.String() {
				t.Errorf("attached as %s, want %s", r.Attach, mode)
			}
			rd := expect(t, r, "pipe", "read", 2*n, size)
			expect(t, r, "pipe", "write", 2*n, size)
			// Blocking reads in a ping-pong wait for the peer: not a timing, a
			// count (with 2n reads at least one blocks).
			if rd.Hist[ebpf.MetricOffPeer].Count() == 0 {
				t.Errorf("no pipe read blocked")
			}
		})
	}
}

// TestAttachAuto checks that Load picks the first way that works (tp_btf here).
func TestAttachAuto(t *testing.T) {
	requireProbes(t)
	p, err := ebpf.Load(ebpf.Options{PIDs: []int{os.Getpid()}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Attach() == ebpf.AttachAuto {
		t.Errorf("Attach() = auto after Load")
	}
	t.Logf("attached with %s", p.Attach())
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := p.Snapshot(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Snapshot after Close: %v, want os.ErrClosed", err)
	}
}

// TestRegisteredFD checks exact attribution: the first process's descriptors are
// registered under a label, the second's are classified.
func TestRegisteredFD(t *testing.T) {
	requireProbes(t)
	const n, size = 100, 64
	ping, pong := startPingPong(t, n, size)
	r := trace(t, ebpf.Options{}, func(p *ebpf.Probes) {
		for _, fd := range []int{ipctest.Fd(0), ipctest.Fd(1)} {
			if err := p.RegisterFD(ping.Pid(), fd, "ipclab-pipe"); err != nil {
				t.Fatal(err)
			}
		}
	}, ping, pong)
	expect(t, r, "ipclab-pipe", "read", n, size)
	expect(t, r, "ipclab-pipe", "write", n, size)
	expect(t, r, "pipe", "read", n, size)
	expect(t, r, "pipe", "write", n, size)
}

// TestOnlyRegistered checks that nothing unregistered is attributed in that mode.
func TestOnlyRegistered(t *testing.T) {
	requireProbes(t)
	const n, size = 50, 64
	ping, pong := startPingPong(t, n, size)
	r := trace(t, ebpf.Options{OnlyRegistered: true}, func(p *ebpf.Probes) {
		if err := p.RegisterFD(pong.Pid(), ipctest.Fd(0), "pong-out"); err != nil {
			t.Fatal(err)
		}
	}, ping, pong)
	expect(t, r, "pong-out", "write", n, size)
	for _, row := range r.Rows {
		if row.Primitive != "pong-out" && row.Primitive != "epoll" && row.Primitive != "ipctest-sync" {
			t.Errorf("unregistered row %s %s (%d calls)", row.Primitive, row.Op, row.Calls)
		}
	}
}

// TestFIFOWrites checks N writes of a known size into a FIFO and the bytes read.
func TestFIFOWrites(t *testing.T) {
	requireProbes(t)
	const n, size = 100, 1000
	path := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	r0, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r0.Close()
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rfd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0) // a blocking read end
	if err != nil {
		t.Fatal(err)
	}
	rf := os.NewFile(uintptr(rfd), "fifo-r")
	defer rf.Close()
	wr := ipctest.Start(t, "writer", ipctest.WithFiles(w), ipctest.WithArgs(strconv.Itoa(n), strconv.Itoa(size)))
	dr := ipctest.Start(t, "drain", ipctest.WithFiles(rf), ipctest.WithArgs(strconv.Itoa(n*size)))
	r := trace(t, ebpf.Options{}, nil, wr, dr)
	expect(t, r, "fifo", "write", n, size)
	if rd := r.Find("fifo", "read"); rd == nil || rd.Bytes != n*size || rd.Errors != 0 {
		t.Errorf("fifo read: %+v, want %d bytes", rd, n*size)
	}
}

// TestSysVMsg checks N msgsnd and N msgrcv, classified and registered.
func TestSysVMsg(t *testing.T) {
	requireProbes(t)
	const n, size = 100, 64
	for _, label := range []string{"", "my-queue"} {
		t.Run("label="+label, func(t *testing.T) {
			id := msgQueue(t)
			args := []string{strconv.Itoa(id), strconv.Itoa(n), strconv.Itoa(size)}
			snd := ipctest.Start(t, "msgsnd", ipctest.WithArgs(args...), noPreemption)
			rcv := ipctest.Start(t, "msgrcv", ipctest.WithArgs(args...), noPreemption)
			r := trace(t, ebpf.Options{}, func(p *ebpf.Probes) {
				if label != "" {
					if err := p.RegisterSysV(ebpf.SysVMsg, id, label); err != nil {
						t.Fatal(err)
					}
				}
			}, snd, rcv)
			prim := "sysv-msg"
			if label != "" {
				prim = label
			}
			expect(t, r, prim, "msgsnd", n, size)
			expect(t, r, prim, "msgrcv", n, size)
		})
	}
}

// TestUnixDgram checks N sendto and N recvfrom on a Unix datagram socket pair.
func TestUnixDgram(t *testing.T) {
	requireProbes(t)
	const n, size = 200, 100
	a, b := socketpair(t, unix.SOCK_DGRAM)
	args := ipctest.WithArgs(strconv.Itoa(n), strconv.Itoa(size))
	snd := ipctest.Start(t, "sendto", ipctest.WithFiles(a), args)
	rcv := ipctest.Start(t, "recvfrom", ipctest.WithFiles(b), args)
	r := trace(t, ebpf.Options{}, nil, snd, rcv)
	expect(t, r, "unix-dgram", "send", n, size)
	expect(t, r, "unix-dgram", "recv", n, size)
}

// TestUnixStream checks the classification of a stream socket pair (write/read).
func TestUnixStream(t *testing.T) {
	requireProbes(t)
	const n, size = 100, 64
	a, b := socketpair(t, unix.SOCK_STREAM)
	c, d := socketpair(t, unix.SOCK_SEQPACKET)
	args := []string{strconv.Itoa(n), strconv.Itoa(size)}
	// ping writes on the stream pair and reads from the seqpacket pair.
	ping := ipctest.Start(t, "pingpong", ipctest.WithFiles(a, d), ipctest.WithArgs(append(args, "first")...))
	pong := ipctest.Start(t, "pingpong", ipctest.WithFiles(c, b), ipctest.WithArgs(append(args, "second")...))
	r := trace(t, ebpf.Options{}, nil, ping, pong)
	expect(t, r, "unix-stream", "write", n, size)
	expect(t, r, "unix-stream", "read", n, size)
	expect(t, r, "unix-seqpacket", "write", n, size)
	expect(t, r, "unix-seqpacket", "read", n, size)
}

// TestPosixMQ checks N mq_timedsend and N mq_timedreceive.
func TestPosixMQ(t *testing.T) {
	requireProbes(t)
	const n, size = 50, 100
	name := fmt.Sprintf("ipclab-ebpf-%d", os.Getpid())
	fd, err := sys.MqOpen(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600, nil)
	if err != nil {
		t.Skipf("POSIX message queues unavailable: %v", err)
	}
	defer sys.MqUnlink(name)
	f := os.NewFile(uintptr(fd), "mq")
	defer f.Close()
	h := ipctest.Start(t, "mq", ipctest.WithFiles(f), ipctest.WithArgs(strconv.Itoa(n), strconv.Itoa(size)))
	r := trace(t, ebpf.Options{}, nil, h)
	expect(t, r, "posixmq", "mq_send", n, size)
	expect(t, r, "posixmq", "mq_recv", n, size)
}

// TestEAGAIN checks the accounting of poller-style I/O: k reads that return EAGAIN,
// then one that succeeds, whose readiness wait is recorded once.
func TestEAGAIN(t *testing.T) {
	requireProbes(t)
	const k = 7
	rp, wp := pipe2(t)
	h := ipctest.Start(t, "eagain", ipctest.WithFiles(rp, wp), ipctest.WithArgs(strconv.Itoa(k)))
	r := trace(t, ebpf.Options{}, nil, h)
	rd := r.Find("pipe", "read")
	if rd == nil {
		t.Fatalf("no pipe read row: %v", rowNames(r))
	}
	if rd.Calls != k+1 || rd.Errors != k || rd.EAGAIN != k || rd.Bytes != 1 {
		t.Errorf("pipe read: calls %d errors %d eagain %d bytes %d, want %d %d %d 1", rd.Calls, rd.Errors, rd.EAGAIN, rd.Bytes, k+1, k, k)
	}
	if got := rd.Hist[ebpf.MetricReadyWait].Count(); got != 1 {
		t.Errorf("readiness waits: %d, want 1", got)
	}
	if got := rd.Hist[ebpf.MetricBytes].Count(); got != 1 {
		t.Errorf("byte counts recorded: %d, want 1 (failed calls move none)", got)
	}
	expect(t, r, "pipe", "write", 1, 1)
}

// TestFollowForks runs a shell pipeline (forks of a fork of the traced helper): with
// FollowForks its pipe writes are all counted, without it none are.
func TestFollowForks(t *testing.T) {
	requireProbes(t)
	const n = 50
	script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo x; i=$((i+1)); done | cat > /dev/null`, n)
	for _, follow := range []bool{true, false} {
		t.Run(fmt.Sprintf("follow=%v", follow), func(t *testing.T) {
			h := ipctest.Start(t, "shell", ipctest.WithArgs(script))
			r := trace(t, ebpf.Options{FollowForks: follow}, nil, h)
			w := r.Find("pipe", "write")
			if !follow {
				if w != nil {
					t.Errorf("without FollowForks: %d pipe writes counted", w.Calls)
				}
				return
			}
			expect(t, r, "pipe", "write", n, 2)
			if rd := r.Find("pipe", "read"); rd == nil || rd.Bytes != 2*n {
				t.Errorf("pipe read: %+v, want %d bytes", rd, 2*n)
			}
		})
	}
}

// TestReset checks that Reset zeroes the counters.
func TestReset(t *testing.T) {
	requireProbes(t)
	ping, pong := startPingPong(t, 20, 8)
	awaitBlocked(t, ping.Pid())
	awaitBlocked(t, pong.Pid())
	p, err := ebpf.Load(ebpf.Options{PIDs: []int{ping.Pid(), pong.Pid()}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ping.Signal()
	pong.Signal()
	ping.MustSucceed()
	pong.MustSucceed()
	before, err := p.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if before.Find("pipe", "read") == nil {
		t.Fatalf("nothing counted: %v", rowNames(before))
	}
	if err := p.Reset(); err != nil {
		t.Fatal(err)
	}
	after, err := p.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Rows) != 0 {
		t.Errorf("rows after Reset: %v", rowNames(after))
	}
	if d := before.Sub(before); len(d.Rows) != 0 {
		t.Errorf("r.Sub(r) has rows: %v", rowNames(d))
	}
}

// TestInvalidInput checks that bad arguments are errors before any system call.
func TestInvalidInput(t *testing.T) {
	requireProbes(t)
	if _, err := ebpf.Load(ebpf.Options{PIDs: []int{-1}}); err == nil {
		t.Error("Load with pid -1: no error")
	}
	p, err := ebpf.Load(ebpf.Options{PIDs: []int{os.Getpid()}, Attach: ebpf.AttachRawTP})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, err := range []error{
		p.RegisterFD(0, 1, "x"), p.RegisterFD(1, -1, "x"), p.RegisterFD(1, 1, ""),
		p.RegisterSysV(7, 1, "x"), p.AddPID(0),
	} {
		if err == nil {
			t.Error("invalid registration accepted")
		}
	}
	for i := 0; i < 16; i++ {
		if err := p.RegisterFD(os.Getpid(), 100+i, fmt.Sprintf("label-%d", i)); err != nil {
			t.Fatalf("label %d: %v", i, err)
		}
	}
	if err := p.RegisterFD(os.Getpid(), 200, "one-too-many"); err == nil {
		t.Error("17th label accepted")
	}
	if err := p.UnregisterFD(os.Getpid(), 100); err != nil {
		t.Error(err)
	}
}

var _ = ipctest.Helper("unprivileged-load", func(args []string) int {
	p, err := ebpf.Load(ebpf.Options{})
	if err == nil {
		p.Close()
		return fail("Load succeeded as uid %d", os.Getuid())
	}
	fmt.Println(err)
	var pe *ebpf.PermissionError
	if !errors.As(err, &pe) || !errors.Is(err, os.ErrPermission) {
		return fail("error %v (%T) is not a *PermissionError matching os.ErrPermission", err, err)
	}
	for _, c := range []string{"CAP_BPF", "CAP_PERFMON"} {
		if !strings.Contains(err.Error(), c) {
			return fail("error %q does not name %s", err, c)
		}
	}
	return 0
})

// TestUnprivileged re-runs Load as nobody and checks the clear error.
func TestUnprivileged(t *testing.T) {
	ipctest.RequireRoot(t)
	h := ipctest.Start(t, "unprivileged-load", ipctest.AsUser(ipctest.Nobody))
	h.MustSucceed()
	t.Logf("as nobody: %s", strings.TrimSpace(h.Output()))
}

// TestAgreesWithStrace counts the same msgsnd and sendto workloads with strace -c
// (ptrace, an independent mechanism) and with the probes.
func TestAgreesWithStrace(t *testing.T) {
	requireProbes(t)
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("strace not installed")
	}
	const n, size = 100, 64
	snd, send := twoSenders(t, n, size)

	out := filepath.Join(t.TempDir(), "strace.out")
	cmd := exec.Command(strace, "-f", "-c", "-U", "name,calls,errors", "-e", "trace=msgsnd,sendto",
		"-o", out, "-p", strconv.Itoa(snd.Pid()), "-p", strconv.Itoa(send.Pid()))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	for _, pid := range []int{snd.Pid(), send.Pid()} {
		awaitTraced(t, pid)
	}
	r := trace(t, ebpf.Options{}, nil, snd, send)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("strace: %v\n%s", err, stderr.String())
	}
	counts := parseStraceC(t, out)
	t.Logf("strace -c: msgsnd %d, sendto %d", counts["msgsnd"], counts["sendto"])
	requireAgree(t, "strace", r, counts, n)
}

// twoSenders starts the agreement tests' workload, blocked until traced: a System V
// queue sender and a Unix datagram sender, n messages of size bytes each.
func twoSenders(t *testing.T, n, size int) (snd, send *ipctest.Proc) {
	t.Helper()
	id := msgQueue(t)
	snd = ipctest.Start(t, "msgsnd", ipctest.WithArgs(strconv.Itoa(id), strconv.Itoa(n), strconv.Itoa(size)), noPreemption)
	a, _ := socketpair(t, unix.SOCK_DGRAM)
	send = ipctest.Start(t, "sendto", ipctest.WithFiles(a), ipctest.WithArgs(strconv.Itoa(n), strconv.Itoa(size)))
	awaitBlocked(t, snd.Pid())
	awaitBlocked(t, send.Pid())
	return snd, send
}

// requireAgree fails t unless the probes' report r and another tracer's counts
// (msgsnd, sendto) both saw exactly the n calls of each kind twoSenders makes.
func requireAgree(t *testing.T, tool string, r *ebpf.Report, counts map[string]uint64, n int) {
	t.Helper()
	if got := r.Find("sysv-msg", "msgsnd"); got == nil || got.Calls != counts["msgsnd"] || got.Calls != uint64(n) {
		t.Errorf("msgsnd: probes %+v, %s %d, want %d", got, tool, counts["msgsnd"], n)
	}
	if got := r.Find("unix-dgram", "send"); got == nil || got.Calls != counts["sendto"] || got.Calls != uint64(n) {
		t.Errorf("sendto: probes %+v, %s %d, want %d", got, tool, counts["sendto"], n)
	}
}

// awaitTraced waits until every thread of pid has a tracer.
func awaitTraced(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		all := len(tasks) > 0
		for _, task := range tasks {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, task.Name()))
			if strings.Contains(string(b), "\nTracerPid:\t0\n") {
				all = false
			}
		}
		if all {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("strace did not attach to %d", pid)
}

// parseStraceC reads strace -c -U name,calls,errors output.
func parseStraceC(t *testing.T, path string) map[string]uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	counts := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		if n, err := strconv.ParseUint(fields[1], 10, 64); err == nil {
			counts[fields[0]] = n
		}
	}
	return counts
}

// TestMeasureCost runs n writes and reads of a pipe of this (traced) process under
// MeasureCost: the probes attribute them all, and ran at least their entries and
// exits, each taking some time.
func TestMeasureCost(t *testing.T) {
	requireProbes(t)
	const n = 1000
	p, err := ebpf.Load(ebpf.Options{PIDs: []int{os.Getpid()}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	buf := make([]byte, 64)
	c, err := p.MeasureCost(func() error {
		for i := 0; i < n; i++ {
			if _, err := unix.Write(fds[1], buf); err != nil {
				return err
			}
			if _, err := unix.Read(fds[0], buf); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Calls < 2*n {
		t.Errorf("%d calls attributed, want at least %d", c.Calls, 2*n)
	}
	if c.Events < 2*c.Calls {
		t.Errorf("%d probe runs for %d calls, want at least an entry and an exit each", c.Events, c.Calls)
	}
	if c.RunTime <= 0 || c.PerEventNs() <= 0 || c.PerCallNs() < c.PerEventNs() {
		t.Errorf("run time %v: %.1f ns per run, %.1f ns per call", c.RunTime, c.PerEventNs(), c.PerCallNs())
	}
	t.Logf("%d runs, %d calls: %.1f ns per probe run, %.1f runs and %.1f ns per call", c.Events, c.Calls, c.PerEventNs(), c.EventsPerCall(), c.PerCallNs())

	if _, err := p.MeasureCost(nil); err == nil {
		t.Error("MeasureCost(nil) succeeded")
	}
	p.Close()
	if _, err := p.MeasureCost(func() error { return nil }); !errors.Is(err, os.ErrClosed) {
		t.Errorf("MeasureCost after Close: %v", err)
	}
}
