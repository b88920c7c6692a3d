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
		t.Skip("vagrant is not installed (CI installs Debian's package)")
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

func vagrant(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("vagrant", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "VAGRANT_CHECKPOINT_DISABLE=1", "HOME="+dir)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("vagrant %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// machineNames lists the machines of `vagrant status --machine-readable`.
func machineNames(out string) []string {
	var names []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Split(l, ",")
		if len(f) >= 4 && f[2] == "state" && f[1] != "" {
			names = append(names, f[1])
		}
	}
	return names
}

func TestVagrantfile(t *testing.T) {
	dir := vagrantDir(t)
	vagrant(t, dir, nil, "validate")

	all := machineNames(vagrant(t, dir, nil, "status", "--machine-readable"))
	if len(all) < 4 {
		t.Fatalf("only %d machines: %v", len(all), all)
	}
	some := machineNames(vagrant(t, dir, []string{"IPCLAB_VMS=" + all[1] + " " + all[0]}, "status", "--machine-readable"))
	if strings.Join(some, " ") != all[0]+" "+all[1] {
		t.Errorf("IPCLAB_VMS selected %v, want %v", some, all[:2])
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
