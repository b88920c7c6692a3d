package inspect

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc/posixmq"
)

// mq-notify: NAME opens the queue, registers with mq_notify, signals, and waits
// until killed.
var _ = ipctest.Helper("mq-notify", func(args []string) int {
	q, err := posixmq.Open(args[0], posixmq.ReadOnly())
	if err != nil {
		fmt.Println(err)
		return 1
	}
	if _, err := q.NotifyKernel(); err != nil {
		fmt.Println(err)
		return 1
	}
	ipctest.Signal()
	ipctest.Await()
	return 0
})

// requireMqueue skips the test unless the mqueue file system is mounted at
// /dev/mqueue (it is in ipctest's namespace).
func requireMqueue(t *testing.T) {
	t.Helper()
	var fs unix.Statfs_t
	if err := unix.Statfs(defaultMqueueDir, &fs); err != nil || fs.Type != mqueueMagic {
		t.Skipf("no mqueue file system at %s (%v)", defaultMqueueDir, err)
	}
}

// testQueueName returns a POSIX queue name of this test process.
func testQueueName(what string) string {
	return fmt.Sprintf("/ipclab-inspect-%d-%s", os.Getpid(), what)
}

// newPosixQueue creates a POSIX queue, removed at the end of the test.
func newPosixQueue(t *testing.T, name string, opts ...posixmq.Option) *posixmq.Queue {
	t.Helper()
	q, err := posixmq.Create(name, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = q.Remove()
		_ = q.Close()
	})
	return q
}

// TestPosixQueues reads a queue holding three messages on which a helper is
// registered with mq_notify, and an empty one, and compares what readPosixQueues
// says with the queue's file in the mqueue file system (QSIZE, NOTIFY_PID), with
// mq_getattr and fstat on the test's own descriptor (messages, capacity, owner,
// mode), and with the device and inode a descriptor shows through /proc/PID/fd.
// Reading must leave the helper's registration in place.
func TestPosixQueues(t *testing.T) {
	requireMqueue(t)
	q := newPosixQueue(t, testQueueName("full"), posixmq.WithAttr(8, 64), posixmq.WithMode(0o640), posixmq.AllowWorld())
	for _, n := range []int{5, 17, 64} {
		if err := q.TrySend(make([]byte, n), 1); err != nil {
			t.Fatal(err)
		}
	}
	empty := newPosixQueue(t, testQueueName("empty"))
	notifier := ipctest.Start(t, "mq-notify", ipctest.WithArgs(q.Name()))
	notifier.Await()

	objs, dev, bad := readPosixQueues("")
	if len(bad) != 0 {
		t.Errorf("unreadable: %+v", bad)
	}
	o := findObject(t, objs, "mq:"+q.Name())

	// The file system's own account, as cat shows it.
	text, err := os.ReadFile(filepath.Join(defaultMqueueDir, q.Name()))
	if err != nil {
		t.Fatal(err)
	}
	status, err := posixmq.ParseStatus(string(text))
	if err != nil {
		t.Fatal(err)
	}
	if o.Queued != int64(status.QSize) || o.Queued != 5+17+64 || o.NotifyPID != status.NotifyPID || o.NotifyPID != notifier.Pid() {
		t.Errorf("queued %d notify pid %d; the file says %q; the helper is %d", o.Queued, o.NotifyPID, text, notifier.Pid())
	}
	attr, err := q.Attr()
	if err != nil {
		t.Fatal(err)
	}
	if o.Messages != int64(attr.CurMsgs) || o.Messages != 3 || o.Capacity != int64(attr.MaxMsg*attr.MsgSize) || o.Capacity != 8*64 {
		t.Errorf("messages %d capacity %d; mq_getattr: %+v", o.Messages, o.Capacity, attr)
	}
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/self/fd/%d", q.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if st.Dev != dev || st.Ino != o.Inode || o.UID != int(st.Uid) || o.GID != int(st.Gid) || o.Mode != 0o640 || o.Kind != KindPosixMQ || o.Name != q.Name() {
		t.Errorf("%+v; dev %d; the descriptor's stat: dev %d inode %d owner %d:%d", o, dev, st.Dev, st.Ino, st.Uid, st.Gid)
	}

	// Reading changed nothing.
	after, err := q.Status()
	if err != nil {
		t.Fatal(err)
	}
	if n, err := q.Len(); after.NotifyPID != notifier.Pid() || after.QSize != status.QSize || n != 3 || err != nil {
		t.Errorf("after reading: %+v, %d messages (%v)", after, n, err)
	}

	e := findObject(t, objs, "mq:"+empty.Name())
	if e.Queued != 0 || e.Messages != 0 || e.NotifyPID != 0 || e.Capacity == 0 || e.Mode != 0o600 {
		t.Errorf("empty queue: %+v", e)
	}
}

// TestPosixQueuesNotMqueue: a directory that is not an mqueue mount, or none at all,
// gives an Unreadable saying so and nothing else.
func TestPosixQueuesNotMqueue(t *testing.T) {
	for dir, want := range map[string]string{
		t.TempDir():                           "not an mqueue",
		filepath.Join(t.TempDir(), "missing"): "no such file",
	} {
		objs, dev, bad := readPosixQueues(dir)
		if len(objs) != 0 || dev != 0 || len(bad) != 1 || bad[0].What != dir || !strings.Contains(bad[0].Err, want) {
			t.Errorf("%s: %+v, %d, %+v; want one Unreadable saying %q", dir, objs, dev, bad, want)
		}
	}
}

// findObject returns the object id of objs, failing the test if there is none.
func findObject(t *testing.T, objs []Object, id string) Object {
	t.Helper()
	for _, o := range objs {
		if o.ID == id {
			return o
		}
	}
	t.Fatalf("%s not listed: %+v", id, objs)
	return Object{}
}
