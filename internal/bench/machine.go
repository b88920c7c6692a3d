package bench

import (
	"bufio"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/report"
)

// Machine describes this machine for a report.
func Machine(pin string) report.Machine {
	m := report.Machine{
		CPUs:      runtime.NumCPU(),
		GoVersion: runtime.Version(),
		Pin:       pin,
		Timestamp: time.Now().UTC().Truncate(time.Second),
	}
	m.Hostname, _ = os.Hostname()
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	m.OS = osRelease()
	m.CPUModel, m.Virtualization = cpuInfo()
	if out, err := exec.Command("systemd-detect-virt").Output(); err == nil {
		m.Virtualization = strings.TrimSpace(string(out))
		// "qemu" is qemu without KVM: the CPU itself is emulated in software.
		if m.Virtualization == "qemu" {
			m.Virtualization = report.EmulatedCPU
		}
	}
	m.IpclabVersion = version()
	return m
}

func osRelease() string {
	f, err := os.Open("/etc/os-release")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// cpuInfo returns the CPU model and "vm" when the CPU reports a hypervisor, else
// "none".
func cpuInfo() (model, virt string) {
	virt = "none"
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "", ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "model name"); ok && model == "" {
			model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
		if strings.HasPrefix(line, "flags") && strings.Contains(line, " hypervisor") {
			virt = "vm"
		}
	}
	return model, virt
}

// version is the source revision: $IPCLAB_VERSION when set (a build from a tree
// without .git, as in a VM), else the module version or VCS revision of the build.
func version() string {
	if v := os.Getenv("IPCLAB_VERSION"); v != "" {
		return v
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}
