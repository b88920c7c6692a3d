package posixmq_test

import (
	"fmt"
	"testing"

	"github.com/ipclab/ipclab/ipc/posixmq"
)

// FuzzParseStatus reads arbitrary text as a queue's status line (what /dev/mqueue
// files hold): it is parsed or refused, never a panic, and a parsed status printed in
// the kernel's format parses back to the same numbers.
func FuzzParseStatus(f *testing.F) {
	f.Add("QSIZE:129        NOTIFY:2     SIGNO:0     NOTIFY_PID:8260  \n")
	f.Add("QSIZE:0 NOTIFY:0 SIGNO:0 NOTIFY_PID:0")
	f.Add("QSIZE:x")
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		s, err := posixmq.ParseStatus(text)
		if err != nil {
			return
		}
		line := fmt.Sprintf("QSIZE:%-10d NOTIFY:%-5d SIGNO:%-5d NOTIFY_PID:%-6d\n", s.QSize, s.Notify, s.Signo, s.NotifyPID)
		back, err := posixmq.ParseStatus(line)
		if err != nil || back.QSize != s.QSize || back.Notify != s.Notify || back.Signo != s.Signo || back.NotifyPID != s.NotifyPID {
			t.Fatalf("%q parsed as %+v; printed %q parses as %+v, %v", text, s, line, back, err)
		}
	})
}
