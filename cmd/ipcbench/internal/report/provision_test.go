package report

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The provisioning script the Vagrantfile runs in every VM, run here against the local
// Go toolchain. IPCLAB_PROVISION_ARGS overrides the ipcbench arguments that keep the
// suite short.
const defaultProvisionArgs = "--prim pipe --size 64 --duration 200ms --warmup 50ms"

// goTool returns the go command the tests were built with.
func goTool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if p := "/usr/local/go/bin/go"; fileExists(p) {
		return p
	}
	t.Skip("no go command on PATH")
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// needIpcbench skips unless cmd/ipcbench has a main package to build.
func needIpcbench(t *testing.T) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(repoRoot(t), "cmd", "ipcbench", "*.go"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && bytes.Contains(b, []byte("package main")) {
			return
		}
	}
	t.Skip("cmd/ipcbench has no main package yet")
}

// provision runs scripts/vm-provision.sh with env added and returns its output and
// error. The script gets its own TMPDIR, which must be empty again when it ends,
// whether it succeeded or not.
func provision(t *testing.T, goBin string, env ...string) (string, error) {
	t.Helper()
	tmp := t.TempDir()
	cmd := exec.Command("bash", filepath.Join(repoRoot(t), "scripts", "vm-provision.sh"))
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Dir(goBin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"IPCLAB_SRC="+repoRoot(t),
		"PACKAGES=never",
		"IPCBENCH_TIMEOUT=120",
		"TMPDIR="+tmp,
	)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("vm-provision.sh left %d temporary entries behind (first: %s)", len(left), left[0].Name())
	}
	return string(out), err
}

func provisionArgs() string {
	if a := os.Getenv("IPCLAB_PROVISION_ARGS"); a != "" {
		return a
	}
	return defaultProvisionArgs
}

// hostKernel returns this machine's kernel release (uname -r).
func hostKernel(t *testing.T) string {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	return unix.ByteSliceToString(u.Release[:])
}

// checkResult loads the script's result file and checks that it is this machine's.
func checkResult(t *testing.T, path string) Run {
	t.Helper()
	return checkRun(t, path, hostKernel(t))
}

// checkRun loads a result file, checks that it ran on the kernel release kernel and
// holds measurements, and puts it through compare and report.
func checkRun(t *testing.T, path, kernel string) Run {
	t.Helper()
	run, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Results) == 0 {
		t.Fatalf("%s has no results", path)
	}
	if run.Machine.Kernel != kernel {
		t.Errorf("machine kernel %q, want %q", run.Machine.Kernel, kernel)
	}
	for _, r := range run.Results {
		if r.Iterations <= 0 || (r.RTT.P50 <= 0 && r.BytesPerSec <= 0 && r.MsgsPerSec <= 0) {
			t.Errorf("result without a measurement: %+v", r)
		}
	}
	// The result must go through compare and report like any VM's.
	var b bytes.Buffer
	if err := Compare(&b, []Run{run, run}, FormatText); err != nil {
		t.Error(err)
	}
	if err := HTML(&b, []Run{run}); err != nil {
		t.Error(err)
	}
	return run
}

// TestProvision runs the provisioning script as the VMs do, with the Go already on
// this machine, and checks the result file.
func TestProvision(t *testing.T) {
	goBin := goTool(t)
	needIpcbench(t)
	dir := t.TempDir()
	out, err := provision(t, goBin,
		"GO_INSTALL=never", "MACHINE=local", "RESULTS_DIR="+dir,
		"IPCBENCH_EBPF=off", "IPCBENCH_ARGS="+provisionArgs())
	if err != nil {
		t.Fatalf("vm-provision.sh: %v\n%s", err, out)
	}
	run := checkResult(t, filepath.Join(dir, "local.json"))
	if run.Name != "local" {
		t.Errorf("run named %q, want local", run.Name)
	}
	if !fileExists(filepath.Join(dir, "local.log")) {
		t.Error("no local.log beside the result")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".local.json.*")); len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

// goArchive packs this machine's Go into a release-style archive (go/... inside
// go<version>.linux-<arch>.tar.gz, with its .sha256) in dir and returns the version.
func goArchive(t *testing.T, goBin, dir string) string {
	t.Helper()
	env, err := exec.Command(goBin, "env", "GOROOT", "GOVERSION", "GOARCH").Output()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(env))
	if len(f) != 3 {
		t.Fatalf("go env: %q", env)
	}
	goroot, version, arch := f[0], strings.TrimPrefix(f[1], "go"), f[2]
	if i := strings.IndexAny(version, " -"); i >= 0 {
		version = version[:i]
	}
	name := filepath.Join(dir, "go"+version+".linux-"+arch+".tar.gz")
	base := filepath.Base(goroot)
	tar := exec.Command("tar", "-C", filepath.Dir(goroot), "-czf", name,
		"--exclude="+base+"/test", "--exclude="+base+"/pkg/obj", "--transform=s,^"+base+",go,", base)
	if out, err := tar.CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if err := os.WriteFile(name+".sha256", []byte(hex.EncodeToString(sum[:])+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return version
}

// TestProvisionInstallsGo exercises the script's Go download and install with an
// archive of this machine's Go served from a file:// URL, then builds and runs with it.
func TestProvisionInstallsGo(t *testing.T) {
	if testing.Short() {
		t.Skip("packs a Go release archive (-short)")
	}
	goBin := goTool(t)
	dl := t.TempDir()
	version := goArchive(t, goBin, dl)
	prefix := t.TempDir()
	results := t.TempDir()
	env := []string{
		"GO_INSTALL=always", "GO_VERSION=" + version, "GO_PREFIX=" + prefix,
		"GO_DOWNLOAD=file://" + dl, "MACHINE=fresh", "RESULTS_DIR=" + results,
		"IPCBENCH_EBPF=off", "IPCBENCH_ARGS=" + provisionArgs(),
	}

	t.Run("checksum-mismatch", func(t *testing.T) {
		sumFile := filepath.Join(dl, "go"+version+".linux-"+runtimeArch(t, goBin)+".tar.gz.sha256")
		good, err := os.ReadFile(sumFile)
		if err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(sumFile, good, 0o644)
		if err := os.WriteFile(sumFile, bytes.Repeat([]byte("0"), 64), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := provision(t, goBin, env...)
		if err == nil || !strings.Contains(out, "checksum mismatch") {
			t.Fatalf("want a checksum failure, got err=%v\n%s", err, out)
		}
		if fileExists(filepath.Join(prefix, "go")) {
			t.Error("Go was unpacked despite the bad checksum")
		}
	})

	t.Run("install-build-run", func(t *testing.T) {
		needIpcbench(t)
		out, err := provision(t, goBin, env...)
		if err != nil {
			t.Fatalf("vm-provision.sh: %v\n%s", err, out)
		}
		installed := filepath.Join(prefix, "go", "bin", "go")
		if !strings.Contains(out, "installed Go "+version) || !strings.Contains(out, "using "+installed) {
			t.Errorf("the script did not install and use %s:\n%s", installed, out)
		}
		checkResult(t, filepath.Join(results, "fresh.json"))
	})
}

// buildIpcbench builds a static ipcbench (CGO_ENABLED=0, as for a VM) into dir.
func buildIpcbench(t *testing.T, goBin, dir string) string {
	t.Helper()
	needIpcbench(t)
	bin := filepath.Join(dir, "ipcbench")
	cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/ipcbench")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/ipcbench: %v\n%s", err, out)
	}
	return bin
}

// TestProvisionPrebuilt runs the script with IPCBENCH_BIN, as scripts/vm-qemu.sh's guest
// does: it must run that binary with neither Go nor a source tree at hand.
func TestProvisionPrebuilt(t *testing.T) {
	goBin := goTool(t)
	bin := buildIpcbench(t, goBin, t.TempDir())
	dir := t.TempDir()
	out, err := provision(t, goBin,
		"IPCBENCH_BIN="+bin, "IPCLAB_SRC="+t.TempDir(), // a tree without go.mod
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "GO_PREFIX="+t.TempDir(), "GO_INSTALL=never",
		"MACHINE=prebuilt", "RESULTS_DIR="+dir, "IPCBENCH_EBPF=off", "IPCBENCH_ARGS="+provisionArgs())
	if err != nil {
		t.Fatalf("vm-provision.sh: %v\n%s", err, out)
	}
	if !strings.Contains(out, "using the prebuilt "+bin) || strings.Contains(out, "building ipcbench") {
		t.Errorf("the script did not run the prebuilt ipcbench as it is:\n%s", out)
	}
	if run := checkResult(t, filepath.Join(dir, "prebuilt.json")); run.Name != "prebuilt" {
		t.Errorf("run named %q, want prebuilt", run.Name)
	}
}

func runtimeArch(t *testing.T, goBin string) string {
	out, err := exec.Command(goBin, "env", "GOARCH").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// TestProvisionRefuses checks the script's input checks, which need no build.
func TestProvisionRefuses(t *testing.T) {
	goBin := goTool(t)
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"too-old-go", []string{"GO_INSTALL=never", "GO_VERSION=99.0"}, "no Go >= 99.0"},
		{"bad-machine", []string{"MACHINE=../x"}, "bad MACHINE name"},
		{"bad-ebpf", []string{"IPCBENCH_EBPF=maybe"}, "IPCBENCH_EBPF must be"},
		{"bad-go-install", []string{"GO_INSTALL=sometimes"}, "GO_INSTALL must be"},
		{"missing-prebuilt", []string{"IPCBENCH_BIN=/nonexistent/ipcbench"}, "IPCBENCH_BIN=/nonexistent/ipcbench is not an executable file"},
		{"prebuilt-not-executable", []string{"IPCBENCH_BIN=" + filepath.Join(repoRoot(t), "go.mod")}, "is not an executable file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := append([]string{"RESULTS_DIR=" + t.TempDir()}, tc.env...)
			out, err := provision(t, goBin, env...)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Fatalf("want a failure mentioning %q, got err=%v\n%s", tc.want, err, out)
			}
		})
	}
}
