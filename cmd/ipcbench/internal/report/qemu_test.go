package report

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// qemuScript runs scripts/vm-qemu.sh with env added, under ctx, and returns its output
// and error. The script gets its own TMPDIR, which must be empty again when it ends,
// whether it succeeded or not; on cancellation it gets SIGTERM, so that it stops qemu
// and cleans up before it exits.
func qemuScript(t *testing.T, ctx context.Context, env ...string) (string, error) {
	t.Helper()
	tmp := t.TempDir()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(repoRoot(t), "scripts", "vm-qemu.sh"))
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = time.Minute
	cmd.Env = append(os.Environ(), "IPCLAB_SRC="+repoRoot(t), "TMPDIR="+tmp)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("vm-qemu.sh left %d temporary entries behind (first: %s)", len(left), left[0].Name())
	}
	return string(out), err
}

// TestQEMU boots the Debian machine of scripts/vm-qemu.sh under qemu, runs a tiny
// ipcbench suite in it through vm-provision.sh with a static ipcbench built here, and
// checks the JSON that comes back to the host: it ran on the guest's kernel, under the
// hostname it was given, and says whether its CPU was emulated.
//
// It is opt-in (IPCLAB_QEMU=1; CI sets it in a step of its own): without KVM the guest
// runs under software emulation, and the first run builds the machine with debootstrap,
// which takes minutes and needs root and Debian's mirror.
func TestQEMU(t *testing.T) {
	if os.Getenv("IPCLAB_QEMU") != "1" {
		t.Skip("boots a Debian machine under qemu, which takes minutes without KVM: set IPCLAB_QEMU=1 (CI does, in its own step)")
	}
	for _, tool := range []string{"qemu-system-x86_64", "mkfs.ext4", "debugfs", "debootstrap"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("IPCLAB_QEMU=1 but %s is not installed (Debian: apt-get install qemu-system-x86 debootstrap e2fsprogs)", tool)
		}
	}
	goBin := goTool(t)
	bin := buildIpcbench(t, goBin, t.TempDir())
	results := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := qemuScript(t, ctx, "IPCBENCH_BIN="+bin, "MACHINE=qemu-test", "RESULTS_DIR="+results)
	if err != nil {
		t.Fatalf("vm-qemu.sh: %v\n%s", err, out)
	}
	// Its log says how long the build (if any) and the boot took: CI shows it with -v.
	t.Logf("vm-qemu.sh took %v:\n%s", time.Since(start).Round(time.Second), out)

	// The guest prints its kernel release on the console; the result must carry it,
	// and it must not be this machine's.
	console, err := os.ReadFile(filepath.Join(results, "qemu-test.console.log"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`ipclab-guest: kernel (\S+), `).FindSubmatch(console)
	if m == nil {
		t.Fatalf("the guest's console does not name its kernel:\n%s", console)
	}
	guestKernel := string(m[1])
	if guestKernel == hostKernel(t) {
		t.Fatalf("the guest runs this machine's kernel %s: not a VM?", guestKernel)
	}
	run := checkRun(t, filepath.Join(results, "qemu-test.json"), guestKernel)
	if run.Machine.Hostname != "qemu-test" {
		t.Errorf("hostname %q, want qemu-test", run.Machine.Hostname)
	}
	// Figures from an emulated CPU must say so; under KVM they are a VM's like any other.
	want := EmulatedCPU
	if strings.Contains(out, "(kvm,") {
		want = "kvm"
	}
	if run.Machine.Virtualization != want {
		t.Errorf("virtualization %q, want %q", run.Machine.Virtualization, want)
	}
	if _, err := os.Stat(filepath.Join(results, "qemu-test.log")); err != nil {
		t.Errorf("no ipcbench log beside the result: %v", err)
	}
}

// TestQEMURefuses checks vm-qemu.sh's input checks, which need neither qemu nor a build.
func TestQEMURefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"bad-accel", []string{"QEMU_ACCEL=hvf"}, "QEMU_ACCEL must be auto, kvm or tcg"},
		{"zero-cpus", []string{"QEMU_CPUS=0"}, "QEMU_CPUS must be a positive number"},
		{"bad-timeout", []string{"QEMU_TIMEOUT=10m"}, "QEMU_TIMEOUT must be a positive number"},
		{"bad-ebpf", []string{"IPCBENCH_EBPF=maybe"}, "IPCBENCH_EBPF must be auto, on or off"},
		{"missing-prebuilt", []string{"IPCBENCH_BIN=/nonexistent/ipcbench"}, "IPCBENCH_BIN=/nonexistent/ipcbench is not an executable file"},
		{"bad-release", []string{"QEMU_RELEASE=../x"}, "no usable Debian release name"},
		{"bad-machine", []string{"MACHINE=../x"}, "bad MACHINE name"},
		{"no-source", []string{"IPCLAB_SRC=/nonexistent"}, "no scripts/vm-provision.sh in /nonexistent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := append([]string{"QEMU_RELEASE=bookworm", "RESULTS_DIR=" + t.TempDir()}, tc.env...)
			out, err := qemuScript(t, context.Background(), env...)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Fatalf("want a failure mentioning %q, got err=%v\n%s", tc.want, err, out)
			}
			if strings.Count(strings.TrimSpace(out), "\n") > 0 {
				t.Errorf("want one line of error, got:\n%s", out)
			}
		})
	}
}
