package ebpf_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ebpf"
)

// TestAgreesWithBpftrace holds the probes' call counts against bpftrace's, a tracer
// no one here wrote, attached to the same tracepoints of the same two processes at
// the same time: a System V queue sender and a Unix datagram sender, 100 calls
// each. Both must count exactly the calls made.
func TestAgreesWithBpftrace(t *testing.T) {
	requireProbes(t)
	bt, err := exec.LookPath("bpftrace")
	if err != nil {
		t.Skip("bpftrace not installed")
	}
	tracefs(t)
	const n, size = 100, 64
	snd, send := twoSenders(t, n, size)

	script := fmt.Sprintf(`tracepoint:syscalls:sys_exit_msgsnd /pid == %d/ { @msgsnd = count(); }
tracepoint:syscalls:sys_exit_sendto /pid == %d/ { @sendto = count(); }`, snd.Pid(), send.Pid())
	cmd := exec.Command(bt, "-e", script)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	// bpftrace says "Attaching N probes..." once its programs are in place.
	out := bufio.NewReader(stdout)
	attached := make(chan error, 1)
	go func() {
		line, err := out.ReadString('\n')
		if err == nil && !strings.HasPrefix(line, "Attaching") {
			err = fmt.Errorf("unexpected first line %q", line)
		}
		attached <- err
	}()
	select {
	case err := <-attached:
		if err != nil {
			t.Fatalf("bpftrace: %v\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("bpftrace did not attach in 60 s\n%s", stderr.String())
	}

	r := trace(t, ebpf.Options{}, nil, snd, send)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(out)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("bpftrace: %v\n%s", err, stderr.String())
	}
	counts := map[string]uint64{}
	for _, m := range regexp.MustCompile(`@(\w+): (\d+)`).FindAllStringSubmatch(string(rest), -1) {
		counts[m[1]], _ = strconv.ParseUint(m[2], 10, 64)
	}
	t.Logf("bpftrace: msgsnd %d, sendto %d", counts["msgsnd"], counts["sendto"])
	requireAgree(t, "bpftrace", r, counts, n)
}

// tracefs makes sure the kernel's tracing file system, where bpftrace finds
// tracepoints, is mounted (the probes themselves do not need it), and unmounts it
// at the end of the test if it was not.
func tracefs(t *testing.T) {
	t.Helper()
	const dir = "/sys/kernel/tracing"
	if _, err := os.Stat(dir + "/events"); err == nil {
		return
	}
	if err := unix.Mount("tracefs", dir, "tracefs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		t.Skipf("tracefs is not mounted and could not be (%v): bpftrace cannot find tracepoints", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, 0) })
}
