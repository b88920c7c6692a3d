package sysv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
)

// In an IPC namespace of its own, the helper looks for the test's objects by key and
// by listing, then makes objects of its own with the same keys.
var _ = ipctest.Helper("fi20-other-ns", func(args []string) int {
	key, _ := strconv.Atoi(args[0])
	k := Key(key)
	fail := func(format string, a ...any) int { fmt.Printf(format+"\n", a...); return 1 }
	if _, err := OpenQueue(k); !errors.Is(err, unix.ENOENT) {
		return fail("OpenQueue of the other namespace's key: %v, want ENOENT", err)
	}
	if _, err := OpenSemSet(k); !errors.Is(err, unix.ENOENT) {
		return fail("OpenSemSet: %v, want ENOENT", err)
	}
	if _, err := OpenSegment(k); !errors.Is(err, unix.ENOENT) {
		return fail("OpenSegment: %v, want ENOENT", err)
	}
	for _, f := range []string{"msg", "sem", "shm"} {
		b, err := os.ReadFile("/proc/sysvipc/" + f)
		if err != nil {
			return fail("%v", err)
		}
		if lines := strings.Count(strings.TrimSpace(string(b)), "\n"); lines != 0 {
			return fail("/proc/sysvipc/%s lists %d objects in a new namespace:\n%s", f, lines, b)
		}
	}
	// The same key is free here: create and use a queue of our own with it.
	q, err := CreateQueue(k)
	if err != nil {
		return fail("CreateQueue with the same key: %v", err)
	}
	defer q.Remove()
	if err := q.Send(context.Background(), 1, []byte("mine")); err != nil {
		return fail("send: %v", err)
	}
	if st, err := q.Stat(); err != nil || st.Messages != 1 {
		return fail("own queue: %+v %v", st, err)
	}
	return 0
})

// TestNamespaceIsolation is FI-20 and S15 for System V: keys and ids are per IPC
// namespace. A process in a new IPC namespace (unshare -i, a container) sees none of
// our queue, semaphore set or segment, by key or in /proc/sysvipc, and its own objects
// with the same key do not touch ours.
func TestNamespaceIsolation(t *testing.T) {
	for _, id := range []string{"FI-20", "S15"} {
		t.Run(id, func(t *testing.T) {
			ipctest.RequireRoot(t)
			key := Key(0x1f200000 | os.Getpid()&0xffff)
			q, err := CreateQueue(key)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Remove()
			s, err := CreateSemSet(key, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Remove()
			seg, err := CreateSegment(key, 4096)
			if err != nil {
				t.Fatal(err)
			}
			defer seg.Close()
			defer seg.Remove()
			p := ipctest.Start(t, "fi20-other-ns", ipctest.WithArgs(strconv.Itoa(int(key))), ipctest.InNewNamespaces(unix.CLONE_NEWIPC))
			if err := p.Wait(); err != nil {
				t.Fatalf("other namespace: %v\n%s", err, p.Output())
			}
			if st, err := q.Stat(); err != nil || st.Messages != 0 {
				t.Fatalf("our queue after the other namespace used the same key: %+v %v", st, err)
			}
		})
	}
}
