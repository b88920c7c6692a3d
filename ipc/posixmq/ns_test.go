package posixmq_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc/posixmq"
)

// In an IPC namespace of its own, the helper opens the test's queue by name, then
// makes a queue of its own with that name.
var _ = ipctest.Helper("fi20-mq-other-ns", func(args []string) int {
	name := args[0]
	fail := func(format string, a ...any) int { fmt.Printf(format+"\n", a...); return 1 }
	if _, err := posixmq.Open(name); !errors.Is(err, unix.ENOENT) {
		return fail("Open of the other namespace's queue: %v, want ENOENT", err)
	}
	q, err := posixmq.Create(name, posixmq.WithAttr(4, 64))
	if err != nil {
		return fail("Create with the same name: %v", err)
	}
	defer posixmq.Remove(name)
	defer q.Close()
	if err := q.Send(context.Background(), []byte("mine"), 0); err != nil {
		return fail("send: %v", err)
	}
	return 0
})

// TestNamespaceIsolation is FI-20 and S15 for POSIX queues: names are per IPC
// namespace (mq_open resolves them in the caller's namespace's own mqueue mount). A
// process in a new IPC namespace does not find our queue, and its queue of the same
// name is another queue.
func TestNamespaceIsolation(t *testing.T) {
	for _, id := range []string{"FI-20", "S15"} {
		t.Run(id, func(t *testing.T) {
			ipctest.RequireRoot(t)
			name := "/ipclab-fi20-" + strconv.Itoa(os.Getpid())
			q, err := posixmq.Create(name, posixmq.WithAttr(4, 64))
			if err != nil {
				t.Fatal(err)
			}
			defer posixmq.Remove(name)
			defer q.Close()
			p := ipctest.Start(t, "fi20-mq-other-ns", ipctest.WithArgs(name), ipctest.InNewNamespaces(unix.CLONE_NEWIPC))
			if err := p.Wait(); err != nil {
				t.Fatalf("other namespace: %v\n%s", err, p.Output())
			}
			if n, err := q.Len(); err != nil || n != 0 {
				t.Fatalf("our queue after the other namespace used its name: %d messages, %v", n, err)
			}
		})
	}
}
