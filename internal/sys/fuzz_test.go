package sys

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FuzzParseCmsg walks arbitrary control data as recvmsg's callers do: it must never
// panic, every payload must lie inside the buffer, and every step must make progress.
func FuzzParseCmsg(f *testing.F) {
	one := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&one[0]))
	h.Level, h.Type = unix.SOL_SOCKET, unix.SCM_RIGHTS
	h.SetLen(unix.CmsgLen(4))
	f.Add(one)
	f.Add(append(append([]byte(nil), one...), one...))
	f.Add(one[:unix.CmsgLen(0)])
	f.Add([]byte{})
	f.Add(make([]byte, 100))
	f.Fuzz(func(t *testing.T, b []byte) {
		for steps := 0; len(b) > 0; steps++ {
			_, _, data, rest, ok := ParseCmsg(b)
			if !ok {
				return
			}
			if len(rest) >= len(b) {
				t.Fatalf("no progress: %d bytes left of %d", len(rest), len(b))
			}
			if len(data) > len(b)-unix.CmsgLen(0) {
				t.Fatalf("payload of %d bytes in a %d-byte buffer", len(data), len(b))
			}
			if steps > len(b) {
				t.Fatal("endless walk")
			}
			b = rest
		}
	})
}
