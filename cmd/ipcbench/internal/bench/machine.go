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

	"github.com/ipclab/ipclab/cmd/ipcbench/internal/report"
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

// version says which code this program was built from, never "": the VCS revision
// stamped by go build (12 digits, "-dirty" when the tree had changes), else the main
// module's version when it has one, else $IPCLAB_VERSION (set by scripts that build
// from a tree without .git, as in a VM), else "unknown".
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return versionOf(bi, os.Getenv("IPCLAB_VERSION"))
}

// versionOf is version for the build information bi (nil: none) and the value of
// $IPCLAB_VERSION.
func versionOf(bi *debug.BuildInfo, env string) string {
	if bi != nil {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if dirty {
				rev += "-dirty"
			}
			return rev
		}
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			return v
		}
	}
	if env = strings.Join(strings.Fields(env), " "); env != "" {
		return env
	}
	return "unknown"
}
