package sockets

import (
	"context"
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
)

// FuzzControlTruncation sends real SCM_RIGHTS (and SCM_CREDENTIALS) messages through
// the kernel to a receiver whose descriptor room and buffers the fuzzer chooses, on
// the kernel-wait and poller paths. Whatever it chooses, the receiver gets either all
// descriptors or a clear error, its buffer is never overrun, and its descriptor table
// ends as it began: no descriptor leaks (S10, FI-13's truncation path).
func FuzzControlTruncation(f *testing.F) {
	f.Add(uint8(1), uint8(1), uint8(8), uint8(8), false, false)
	f.Add(uint8(3), uint8(1), uint8(8), uint8(8), true, false)
	f.Add(uint8(20), uint8(16), uint8(1), uint8(64), true, true)
	f.Add(uint8(0), uint8(0), uint8(0), uint8(1), false, true)
	null, err := os.Open(os.DevNull)
	if err != nil {
		f.Fatal(err)
	}
	defer null.Close()
	f.Fuzz(func(t *testing.T, send, room, maxFds, size uint8, cred, kernel bool) {
		nsend, nroom := int(send%24), int(room%24)
		opts := []Option{WithMaxFds(int(maxFds % 24))}
		if cred {
			opts = append(opts, PassCred())
		}
		if kernel {
			opts = append(opts, WithWait(ipc.WaitKernel))
		}
		before := fdCount(t)
		pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(pair[1])
		f := os.NewFile(uintptr(pair[0]), "receiver")
		a, err := FileSeqpacketConn(f, opts...)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		fds := make([]int, nsend)
		for i := range fds {
			fds[i] = int(null.Fd())
		}
		payload := make([]byte, 1+int(size%32))
		var oob []byte
		if nsend > 0 {
			oob = unix.UnixRights(fds...)
		}
		// The sender is a bare socket: it sends what the fuzzer asks, past any cap.
		if err := unix.Sendmsg(pair[1], payload, oob, nil, 0); err != nil {
			t.Fatalf("send %d descriptors: %v", nsend, err)
		}
		got := make([]int, nroom)
		buf := make([]byte, 1+int(size)%48)
		n, nfds, err := a.ReadMsg(context.Background(), buf, got)
		switch {
		case nroom > int(maxFds%24):
			// More room than the socket's own cap: refused before recvmsg, the
			// message stays queued (and goes with the socket below).
			if !errors.Is(err, ipc.ErrInvalid) || n != 0 {
				t.Fatalf("room %d over the cap %d: %d, %v", nroom, maxFds%24, n, err)
			}
			nfds = 0
		case err == nil:
			if nfds != nsend || n != len(payload) {
				t.Fatalf("sent %d bytes and %d descriptors, got %d and %d", len(payload), nsend, n, nfds)
			}
		case errors.Is(err, ErrUnexpectedFds), errors.Is(err, ErrControlTruncated):
			if nsend <= min(nroom, int(maxFds%24)) {
				t.Fatalf("%d descriptors with room for %d: %v", nsend, nroom, err)
			}
			nfds = 0
		case errors.Is(err, ipc.ErrTruncated):
			if len(buf) >= len(payload) {
				t.Fatalf("%d bytes into %d: %v", len(payload), len(buf), err)
			}
			nfds = 0
		default:
			t.Fatalf("send %d, room %d: %v", nsend, nroom, err)
		}
		if n > len(buf) {
			t.Fatalf("read %d bytes into a %d-byte buffer", n, len(buf))
		}
		for _, fd := range got[:nfds] {
			unix.Close(fd)
		}
		a.Close()
		unix.Close(pair[1])
		if after := fdCount(t); after != before {
			t.Fatalf("descriptors: %d before, %d after (send %d, room %d, max %d)", before, after, nsend, nroom, maxFds%24)
		}
	})
}

func fdCount(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
