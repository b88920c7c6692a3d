package inspect

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc/mailbox"
)

// mailbox-own: DIR creates the transient System V mailbox "orphan" in the namespace
// DIR, signals, and waits to be killed (which leaves its entry behind).
var _ = ipctest.Helper("mailbox-own", func(args []string) int {
	ns, err := mailbox.Open(args[0])
	if err == nil {
		_, err = ns.CreateMailbox("orphan", mailbox.WithBackend(mailbox.SysV))
	}
	if err != nil {
		fmt.Println(err)
		return 1
	}
	ipctest.Signal()
	ipctest.Await()
	return 0
})

// TestMailboxes reads a namespace holding a persistent POSIX mailbox of the test's
// (live) and a transient System V one whose owner, a helper, was killed (not live),
// and checks each entry against its record, its entry file, and the kernel object
// its ObjectID names, as readPosixQueues and readSysV list them.
func TestMailboxes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ns")
	ns, err := mailbox.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	live, err := ns.CreateMailbox("alive", mailbox.WithBackend(mailbox.PosixMQ), mailbox.Persistent())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = live.Remove() })
	// Registered before the helper starts, so that it runs after the helper is gone.
	t.Cleanup(func() {
		if _, err := ns.Reap(); err != nil {
			t.Error("reap:", err)
		}
	})
	owner := ipctest.Start(t, "mailbox-own", ipctest.WithArgs(dir))
	owner.Await()
	owner.Kill()
	_ = owner.Wait()

	objs, bad := readMailboxes([]string{dir})
	if len(bad) != 0 || len(objs) != 2 {
		t.Fatalf("%d objects %+v, unreadable %+v", len(objs), objs, bad)
	}
	sysvObjs, _ := readSysV()
	mqObjs, _, _ := readPosixQueues("")
	for _, c := range []struct {
		name, backend string
		pid           int
		persistent    bool
		live          bool
		kernel        []Object
	}{
		{"alive", "posixmq", os.Getpid(), true, true, mqObjs},
		{"orphan", "sysv", owner.Pid(), false, false, sysvObjs},
	} {
		o := findObject(t, objs, "mailbox:"+c.name)
		var st os.FileInfo
		if st, err = os.Stat(filepath.Join(dir, c.name+".entry")); err != nil {
			t.Fatal(err)
		}
		m := o.Mailbox
		if o.Kind != KindMailbox || o.Name != c.name || o.UID != os.Geteuid() || o.Mode != uint32(st.Mode().Perm()) || o.Mode != 0o600 || m == nil {
			t.Fatalf("%s: %+v (entry mode %v)", c.name, o, st.Mode())
		}
		if m.Dir != dir || m.Kind != "mailbox" || m.Backend != c.backend || m.OwnerPID != c.pid || m.Persistent != c.persistent || m.Live != c.live {
			t.Errorf("%s: %+v, want backend %s owner %d persistent %v live %v", c.name, *m, c.backend, c.pid, c.persistent, c.live)
		}
		if c.kernel == nil {
			t.Logf("%s: no %s objects to look %s up in", c.name, c.backend, m.ObjectID) // no /dev/mqueue
			continue
		}
		k := findObject(t, c.kernel, m.ObjectID)
		got := k.Name
		if k.SysVID != nil {
			got = strconv.Itoa(*k.SysVID)
		}
		if got != m.Object {
			t.Errorf("%s: object %q is %+v", c.name, m.Object, k)
		}
	}
	if live.Record().Object != findObject(t, objs, "mailbox:alive").Mailbox.Object {
		t.Errorf("record %+v", live.Record())
	}
}

// TestMailboxesMissingDir: a namespace directory that does not exist holds no
// entries, is not an error, and is not created; nor is the default one.
func TestMailboxesMissingDir(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	missing := filepath.Join(t.TempDir(), "none")
	for _, dirs := range [][]string{{missing}, nil} {
		if objs, bad := readMailboxes(dirs); len(objs) != 0 || len(bad) != 0 {
			t.Errorf("%q: %+v, %+v", dirs, objs, bad)
		}
	}
	for _, dir := range []string{missing, mailbox.DefaultDir()} {
		if _, err := os.Lstat(dir); !os.IsNotExist(err) {
			t.Errorf("%s: %v, want it not to exist", dir, err)
		}
	}
}

// TestMailboxesUntrustedDir: a directory others may enter is not a namespace
// mailbox.Open accepts; reading it gives an Unreadable.
func TestMailboxesUntrustedDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	objs, bad := readMailboxes([]string{dir})
	if len(objs) != 0 || len(bad) != 1 || bad[0].What != dir {
		t.Errorf("%+v, %+v", objs, bad)
	}
}
