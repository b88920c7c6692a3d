package report

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// vagrantDir copies the Vagrantfile and the provisioning script into a temporary
// directory, so that vagrant's .vagrant/ state is not created in the work tree.
func vagrantDir(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("vagrant"); err != nil {
		t.Skip("vagrant is not installed (CI installs Debian's vagrant package, which is all this test needs)")
	}
	dir := t.TempDir()
	for _, f := range []string{"Vagrantfile", "scripts/vm-provision.sh"} {
		b, err := os.ReadFile(filepath.Join(repoRoot(t), f))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, f)
		os.MkdirAll(filepath.Dir(dst), 0o755)
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// vagrant runs vagrant in dir with env added and returns its output and error. It
// never needs a provider: the tests only use commands that work with Debian's vagrant
// package alone.
func vagrant(dir string, env []string, args ...string) (string, error) {
	cmd := exec.Command("vagrant", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "VAGRANT_CHECKPOINT_DISABLE=1", "HOME="+dir)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// validate runs `vagrant validate --ignore-provider --machine-readable` in dir, which
// loads the Vagrantfile, checks every machine's configuration except the provider
// blocks (among others, that the provisioning script exists), and needs no provider.
// It returns the machines it defined, in order.
func validate(t *testing.T, dir string, env ...string) []string {
	t.Helper()
	out, err := vagrant(dir, env, "validate", "--ignore-provider", "--machine-readable")
	if err != nil {
		t.Fatalf("vagrant validate --ignore-provider: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Vagrantfile validated successfully") {
		t.Fatalf("vagrant validate did not say the Vagrantfile is valid:\n%s", out)
	}
	return machineNames(out)
}

// machineNames lists the machines of vagrant's machine-readable output: the
// "<time>,<machine>,metadata,provider,<provider>" line each defined machine gets.
func machineNames(out string) []string {
	var names []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Split(l, ",")
		if len(f) >= 5 && f[2] == "metadata" && f[3] == "provider" && f[1] != "" {
			names = append(names, f[1])
		}
	}
	return names
}

// TestVagrantfile checks the Vagrantfile with vagrant itself, on a machine with
// Debian's vagrant package and no provider (as CI installs it): the configuration is
// valid, it defines the machines, and IPCLAB_VMS selects some of them.
func TestVagrantfile(t *testing.T) {
	dir := vagrantDir(t)
	all := validate(t, dir)
	if len(all) < 4 {
		t.Fatalf("only %d machines: %v", len(all), all)
	}
	some := validate(t, dir, "IPCLAB_VMS="+all[1]+" "+all[0])
	if strings.Join(some, " ") != all[0]+" "+all[1] {
		t.Errorf("IPCLAB_VMS selected %v, want %v", some, all[:2])
	}

	// validate must catch a broken configuration: a provisioning script that is not there.
	if err := os.Remove(filepath.Join(dir, "scripts", "vm-provision.sh")); err != nil {
		t.Fatal(err)
	}
	out, err := vagrant(dir, nil, "validate", "--ignore-provider")
	if err == nil || !strings.Contains(out, "vm-provision.sh") {
		t.Errorf("vagrant validate passed without scripts/vm-provision.sh: err=%v\n%s", err, out)
	}
}

// TestVagrantfileMatchesScript checks that every setting the Vagrantfile passes to
// the provisioning script is one the script reads.
func TestVagrantfileMatchesScript(t *testing.T) {
	vf, err := os.ReadFile(filepath.Join(repoRoot(t), "Vagrantfile"))
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join(repoRoot(t), "scripts", "vm-provision.sh"))
	if err != nil {
		t.Fatal(err)
	}
	keys := regexp.MustCompile(`"([A-Z_]+)"\s*=>`).FindAllStringSubmatch(string(vf), -1)
	if len(keys) < 5 {
		t.Fatalf("found only %d settings in the Vagrantfile", len(keys))
	}
	for _, k := range keys {
		if !regexp.MustCompile(`\$\{` + k[1] + `:-`).Match(script) {
			t.Errorf("the Vagrantfile sets %s but vm-provision.sh does not read it", k[1])
		}
	}
	if !strings.Contains(string(vf), `path: "scripts/vm-provision.sh"`) {
		t.Error("the Vagrantfile does not provision with scripts/vm-provision.sh")
	}
}
