package mailbox_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/mailbox"
	"github.com/ipclab/ipclab/ipc/posixmq"
	"github.com/ipclab/ipclab/ipc/sysv"
)

// kernelObjectExists looks the record's kernel object up directly.
func kernelObjectExists(t *testing.T, rec mailbox.Record) bool {
	t.Helper()
	switch rec.Backend {
	case "posixmq":
		q, err := posixmq.Open(rec.Object)
		if errors.Is(err, unix.ENOENT) {
			return false
		}
		if errors.Is(err, unix.EACCES) {
			return true // a port's send-only mode, for an unprivileged user
		}
		must(t, err)
		q.Close()
		return true
	case "sysv":
		id, _ := strconv.Atoi(rec.Object)
		q, err := sysv.OpenQueueID(id)
		if err != nil {
			return false
		}
		q.Close()
		return true
	case "seqpacket":
		_, err := os.Lstat(rec.Object)
		return err == nil
	}
	t.Fatalf("backend %q", rec.Backend)
	return false
}

func entries(t *testing.T, ns *mailbox.Namespace) []mailbox.Record {
	t.Helper()
	recs, err := ns.Entries()
	must(t, err)
	return recs
}

// TestPersistent: a persistent mailbox keeps its messages with no process attached,
// and Reap leaves it alone; Remove destroys it.
func TestPersistent(t *testing.T) {
	backends(t, func(t *testing.T, b mailbox.Backend) {
		ns, ctx := newNS(t), ctxT(t)
		h := start(t, "create-and-send", ipctest.WithArgs(ns.Dir(), "keep", b.String(), "1", "3"))
		h.Await()
		h.Signal()
		h.MustSucceed() // no process has the mailbox open now
		recs := entries(t, ns)
		if len(recs) != 1 || !recs[0].Persistent || !kernelObjectExists(t, recs[0]) {
			t.Fatalf("after its creator exited: %+v", recs)
		}
		reaped, err := ns.Reap()
		must(t, err)
		if len(reaped) != 0 {
			t.Errorf("Reap removed a persistent mailbox: %+v", reaped)
		}
		mb, err := ns.OpenMailbox("keep")
		must(t, err)
		if n, _ := mb.Len(); n != 3 {
			t.Errorf("%d messages kept, want 3", n)
		}
		buf := make([]byte, 64)
		for i := 0; i < 3; i++ {
			m, err := mb.Recv(ctx, buf)
			must(t, err)
			if want := "msg-" + strconv.Itoa(i); string(buf[:m.N]) != want {
				t.Errorf("got %q, want %q", buf[:m.N], want)
			}
		}
		must(t, mb.Close())
		if !kernelObjectExists(t, recs[0]) {
			t.Fatal("Close removed a persistent mailbox")
		}
		mb, err = ns.OpenMailbox("keep")
		must(t, err)
		must(t, mb.Remove())
		if kernelObjectExists(t, recs[0]) || len(entries(t, ns)) != 0 {
			t.Fatal("Remove left the mailbox behind")
		}
	})
}

// TestTransient: a transient mailbox lives while any process uses it and leaves
// nothing behind after its last user.
func TestTransient(t *testing.T) {
	backends(t, func(t *testing.T, b mailbox.Backend) {
		ns := newNS(t)
		// Alone: gone when its creator exits.
		h := start(t, "create-and-send", ipctest.WithArgs(ns.Dir(), "tmp", b.String(), "0", "2"))
		h.Await()
		recs := entries(t, ns)
		if len(recs) != 1 || recs[0].Persistent {
			t.Fatalf("entries %+v", recs)
		}
		h.Signal()
		h.MustSucceed()
		if len(entries(t, ns)) != 0 || kernelObjectExists(t, recs[0]) {
			t.Fatal("a transient mailbox outlived its only user")
		}

		// Shared: the creator leaves, this process keeps it (and its messages).
		h = start(t, "create-and-send", ipctest.WithArgs(ns.Dir(), "tmp", b.String(), "0", "2"))
		h.Await()
		mb, err := ns.OpenMailbox("tmp")
		must(t, err)
		rec := mb.Record()
		h.Signal()
		h.MustSucceed()
		if !kernelObjectExists(t, rec) {
			t.Fatal("transient mailbox removed while still in use")
		}
		if got := drain(t, mb); !slices.Equal(got, expect("msg", 2)) {
			t.Errorf("messages %v", got)
		}
		must(t, mb.Close())
		must(t, mb.Close()) // idempotent
		if len(entries(t, ns)) != 0 || kernelObjectExists(t, rec) {
			t.Fatal("the last Close left the mailbox behind")
		}
	})
}

// TestReap (S3): the objects of a process killed with SIGKILL are found by their
// owner record and removed; nothing is reaped while the owner lives; a stale name can
// be created again.
func TestReap(t *testing.T) { t.Run("S3", testReap) }

func testReap(t *testing.T) {
	ns := newNS(t)
	h := start(t, "own-and-hang", ipctest.WithArgs(ns.Dir()))
	h.Await()
	recs := entries(t, ns)
	if len(recs) != 4 {
		t.Fatalf("entries %+v", recs)
	}
	for _, r := range recs {
		if r.Owner.PID != h.Pid() || !r.Owner.Alive() {
			t.Errorf("%s: owner %v, want live pid %d", r.Name, r.Owner, h.Pid())
		}
	}
	reaped, err := ns.Reap()
	must(t, err)
	if len(reaped) != 0 {
		t.Fatalf("Reap removed live objects: %+v", reaped)
	}
	h.Kill()
	_ = h.Wait()
	for _, r := range recs {
		if r.Owner.Alive() {
			t.Errorf("%s: owner still alive after SIGKILL", r.Name)
		}
		if !kernelObjectExists(t, r) {
			t.Errorf("%s: object gone before Reap", r.Name)
		}
	}
	// Creating a name a dead process held reaps that entry and reuses the name.
	mb, err := ns.CreateMailbox("mbx")
	must(t, err)
	if kernelObjectExists(t, recs[slices.IndexFunc(recs, func(r mailbox.Record) bool { return r.Name == "mbx" })]) {
		t.Error("the stale mailbox's queue was not removed")
	}
	reaped, err = ns.Reap()
	must(t, err)
	var names []string
	for _, r := range reaped {
		names = append(names, r.Record.Name)
		if r.Reason != "owner died" || r.Record.Owner.PID != h.Pid() {
			t.Errorf("reaped %+v", r)
		}
	}
	slices.Sort(names)
	if len(names) != 3 || !strings.HasPrefix(names[0], "_r.") || !slices.Equal(names[1:], []string{"lnk", "prt"}) {
		t.Errorf("reaped %v, want the reply port, lnk and prt", names)
	}
	for _, r := range recs {
		if r.Name != "mbx" && kernelObjectExists(t, r) {
			t.Errorf("%s: object left after Reap", r.Name)
		}
	}
	must(t, mb.Close())
}

// TestSquatting (S3/S5): the namespace trusts only what the user owns.
func TestSquatting(t *testing.T) { t.Run("S5", testSquatting) }

func testSquatting(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	must(t, os.Mkdir(open, 0o755))
	must(t, os.Chmod(open, 0o755))
	if _, err := mailbox.Open(open); !errors.Is(err, ipc.ErrUntrustedObject) {
		t.Errorf("namespace readable by others: %v", err)
	}
	must(t, os.Symlink(t.TempDir(), filepath.Join(dir, "link")))
	if _, err := mailbox.Open(filepath.Join(dir, "link")); !errors.Is(err, ipc.ErrUntrustedObject) {
		t.Errorf("namespace through a symlink: %v", err)
	}

	ns := newNS(t)
	mb, err := ns.CreateMailbox("victim")
	must(t, err)
	defer mb.Close()
	entry := filepath.Join(ns.Dir(), "victim.entry")
	must(t, os.Chmod(entry, 0o644))
	if _, err := ns.OpenMailbox("victim"); !errors.Is(err, ipc.ErrUntrustedObject) {
		t.Errorf("entry readable by others: %v", err)
	}
	must(t, os.Chmod(entry, 0o600))
	if os.Geteuid() == 0 {
		must(t, os.Chown(entry, ipctest.Nobody, -1))
		if _, err := ns.OpenMailbox("victim"); !errors.Is(err, ipc.ErrUntrustedObject) {
			t.Errorf("entry owned by another user: %v", err)
		}
		must(t, os.Chown(entry, 0, -1))
	}
	// A symlink planted as an entry is not followed.
	must(t, os.Symlink(entry, filepath.Join(ns.Dir(), "planted.entry")))
	if _, err := ns.OpenMailbox("planted"); !errors.Is(err, unix.ELOOP) {
		t.Errorf("symlinked entry: %v", err)
	}
	must(t, os.Remove(filepath.Join(ns.Dir(), "planted.entry")))
	for _, bad := range []string{"", "../x", "a/b", ".hidden", "_r.1.2", string(make([]byte, 65))} {
		if _, err := ns.CreateMailbox(bad); !errors.Is(err, ipc.ErrInvalid) {
			t.Errorf("name %q: %v", bad, err)
		}
	}
}

// TestDefaultDir: the default namespace lives in $XDG_RUNTIME_DIR and is created
// private.
func TestDefaultDir(t *testing.T) {
	run := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", run)
	if got, want := mailbox.DefaultDir(), filepath.Join(run, "ipclab-mailbox"); got != want {
		t.Fatalf("DefaultDir = %s, want %s", got, want)
	}
	ns, err := mailbox.Open("")
	must(t, err)
	st, err := os.Stat(ns.Dir())
	must(t, err)
	if st.Mode().Perm() != 0o700 {
		t.Errorf("mode %v", st.Mode())
	}
	t.Setenv("XDG_RUNTIME_DIR", "")
	if got := mailbox.DefaultDir(); filepath.Dir(got) != filepath.Clean(os.TempDir()) {
		t.Errorf("without XDG_RUNTIME_DIR: %s", got)
	}
}
