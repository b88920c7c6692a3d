package mailbox_test

import (
	"bufio"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/mailbox"
)

// sysv-queue creates a private System V queue (mode 0600), prints its id and waits to
// be told to leave; the test removes the queue.
var _ = ipctest.Helper("sysv-queue", func(args []string) int {
	id, err := sys.Msgget(0, unix.IPC_CREAT|unix.IPC_EXCL|0o600)
	check(err)
	os.Stdout.WriteString(strconv.Itoa(id) + "\n")
	ipctest.Signal()
	ipctest.Await()
	return 0
})

// TestStaleSysVEntry (S4): a persistent System V mailbox whose queue was removed
// behind its back, its id then given to an unrelated queue of the same user, created
// by another process in a later second. The mailbox's handles neither send into that
// queue nor let Remove destroy it, and opening the entry again is refused.
func TestStaleSysVEntry(t *testing.T) { t.Run("S4", testStaleSysVEntry) }

func testStaleSysVEntry(t *testing.T) {
	if os.Geteuid() != 0 || os.Getenv("IPCLAB_TEST_IN_NAMESPACE") == "" {
		t.Skip("needs root in a private IPC namespace (sets msg_next_id to recycle an id)")
	}
	ns := newNS(t)
	mb, err := ns.CreateMailbox("box", mailbox.WithBackend(mailbox.SysV), mailbox.Persistent())
	must(t, err)
	defer mb.Close()
	other, err := ns.OpenMailbox("box")
	must(t, err)
	defer other.Close()
	rec := mb.Record()
	if rec.SysV == nil {
		t.Fatalf("record without the queue's identity: %+v", rec)
	}
	id, err := strconv.Atoi(rec.Object)
	must(t, err)

	// The queue goes (ipcrm, RemoveIPC...), and in a later second the id comes back.
	_, err = sys.Msgctl(id, unix.IPC_RMID)
	must(t, err)
	for time.Now().Add(-50*time.Millisecond).Unix() <= rec.SysV.ChangeTime {
		time.Sleep(10 * time.Millisecond) // the kernel's seconds, read from a tick-granular clock
	}
	p := "/proc/sys/kernel/msg_next_id"
	must(t, os.WriteFile(p, []byte(strconv.Itoa(id)), 0))
	defer os.WriteFile(p, []byte("-1"), 0)
	r, w, err := os.Pipe()
	must(t, err)
	defer r.Close()
	h := start(t, "sysv-queue", ipctest.WithStdout(w))
	w.Close()
	h.Await()
	line, err := bufio.NewReader(r).ReadString('\n')
	must(t, err)
	if got, _ := strconv.Atoi(line[:len(line)-1]); got != id {
		t.Fatalf("the unrelated queue got id %s, want %d", line, id)
	}
	defer func() {
		h.Signal()
		_ = h.Wait()
		_, _ = sys.Msgctl(id, unix.IPC_RMID)
	}()

	// (the handles' identity checks fell due long ago: a millisecond after their last)
	wantErr(t, "Send", mb.Send(ctxT(t), []byte("stale")), ipc.ErrRemoved)
	wantErr(t, "TrySend", other.TrySend([]byte("stale")), ipc.ErrRemoved)
	_, err = ns.OpenMailbox("box")
	wantErr(t, "OpenMailbox", err, ipc.ErrRemoved)
	must(t, mb.Remove())
	var ds sys.MsqidDS
	if _, err := sys.MsgctlStat(id, unix.IPC_STAT, &ds); err != nil || ds.Qnum != 0 {
		t.Fatalf("the unrelated queue: %v, %d messages", err, ds.Qnum)
	}
}
