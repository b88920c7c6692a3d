package report

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// TestHTMLReadyWait checks that a poller-mode row's breakdown shows its readiness
// wait as a segment of its own, labelled as such, and a kernel-wait row does not.
func TestHTMLReadyWait(t *testing.T) {
	poller := ping("pipe", 64, 1000)
	poller.Impl, poller.Wait = "std", "poller"
	poller.EBPF = &EBPF{Probes: true, Breakdown: &Breakdown{SyscallNs: 300, OnCPUNs: 300, ReadyWaitNs: 4200, ReadyWaits: 900}}
	kernel := ping("pipe", 64, 1000)
	kernel.Impl, kernel.Wait = "ipclab", "kernel"
	kernel.EBPF = &EBPF{Probes: true, Breakdown: &Breakdown{SyscallNs: 1500, OnCPUNs: 500, OffCPUPeerNs: 1000}}
	var b bytes.Buffer
	if err := HTML(&b, []Run{run("vm", poller, kernel)}); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	marks := regexp.MustCompile(`<title>vm ([^,]*), 64 B: readiness wait \(poller mode: after EAGAIN, outside the call\) ([^<]*) per operation</title>`).FindAllStringSubmatch(s, -1)
	if len(marks) != 1 {
		t.Fatalf("%d readiness-wait segments, want 1 (the poller row's)", len(marks))
	}
	if !strings.HasPrefix(marks[0][1], "pipe/std/poller") || marks[0][2] != formatNs(4200) {
		t.Errorf("readiness-wait segment %q, want pipe/std/poller's %s", marks[0][0], formatNs(4200))
	}
	if !strings.Contains(s, "readiness wait</em> segment") {
		t.Error("the section does not explain the readiness wait")
	}
}
