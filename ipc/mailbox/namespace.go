package mailbox

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/mailbox/internal/wire"
	"github.com/ipclab/ipclab/ipc/sysv"
)

// Namespace maps names to kernel objects. It is a directory owned by the user, mode
// 0700, holding one entry file per name ("NAME.entry", mode 0600) that records what the
// name stands for (a POSIX queue name, a System V id, a socket path), whether it is
// persistent, and its owner (pid and start time). Entries are written completely
// before they appear (written to a temporary file, then hard-linked to their name, which
// fails if the name exists), so a reader never sees half an entry.
//
// Users of a transient object hold a shared flock(2) on its entry for as long as they
// use it; the kernel drops the lock when a process dies, however it dies. "Nobody
// holds the lock" is what makes a transient object removable, by the last Close or by
// Reap.
//
// The directory is the trust anchor: it must be owned by the effective uid and not be
// accessible to anyone else (otherwise ipc.ErrUntrustedObject), and every entry must be
// a regular file owned by the effective uid. Kernel objects get unguessable names, are
// created exclusively with mode 0600, and are checked for owner and mode on open.
type Namespace struct {
	dir string
}

// Record is what a namespace entry says about a name.
type Record struct {
	// Name is the entry's name.
	Name string `json:"name"`
	// Kind is "mailbox", "port", "reply" (a sender's reply port) or "link".
	Kind string `json:"kind"`
	// Backend is "posixmq", "sysv" or "seqpacket" (links).
	Backend string `json:"backend"`
	// Object is the kernel object: a POSIX queue name, a System V queue id or a
	// socket path.
	Object string `json:"object"`
	// SysV is, for a System V queue, what tells it from a queue given the same id
	// after it was removed (entries written before it was recorded have none).
	SysV *sysv.Identity `json:"sysv,omitempty"`
	// Persistent objects outlive their processes; transient ones go with their last
	// user.
	Persistent bool `json:"persistent"`
	// MaxMsgs and MaxPayload are the object's capacity.
	MaxMsgs    int `json:"max_msgs"`
	MaxPayload int `json:"max_payload"`
	// Owner is the process that created the object or, for a port, holds its receive
	// right.
	Owner Owner `json:"owner"`
	// End is the listening end of a link ("send" or "recv").
	End string `json:"end,omitempty"`
}

// recordSize is the fixed size of an entry file: records are padded to it, so an
// owner change rewrites the file in place with a single write.
const recordSize = 512

const entrySuffix = ".entry"

// DefaultDir returns the namespace directory used when none is given:
// $XDG_RUNTIME_DIR/ipclab-mailbox, or, without XDG_RUNTIME_DIR, a directory named
// ipclab-mailbox-UID in os.TempDir(). In a shared temporary directory someone else may
// have created that name first; Open then refuses it (ipc.ErrUntrustedObject) rather
// than falling back to another name.
func DefaultDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "ipclab-mailbox")
	}
	return filepath.Join(os.TempDir(), "ipclab-mailbox-"+strconv.Itoa(os.Geteuid()))
}

// Open opens the namespace in dir (DefaultDir if dir is ""), creating the directory
// with mode 0700 if it does not exist. An existing directory must be a real directory
// (not a symbolic link) owned by the effective uid with no permission bits for group
// or others.
func Open(dir string) (*Namespace, error) {
	if dir == "" {
		dir = DefaultDir()
	}
	dir = filepath.Clean(dir)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, ipc.Wrap("mkdir", dir, unwrapErrno(err))
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return nil, ipc.Wrap("lstat", dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != os.Geteuid() || st.Mode&0o077 != 0 {
		return nil, &ipc.OpError{Op: "open namespace", Object: dir,
			Err: fmt.Errorf("%w: type/mode %#o, owner %d", ipc.ErrUntrustedObject, st.Mode, st.Uid)}
	}
	return &Namespace{dir: dir}, nil
}

// Dir returns the namespace's directory.
func (ns *Namespace) Dir() string { return ns.dir }

func checkName(op, name string, reserved bool) error {
	if !wire.ValidName([]byte(name), reserved) {
		return &ipc.OpError{Op: op, Object: name,
			Err: fmt.Errorf("%w: a name is 1-%d letters, digits, '.', '_' or '-', starting with a letter or digit", errInvalid, wire.MaxAddr)}
	}
	return nil
}

func (ns *Namespace) entryPath(name string) string { return filepath.Join(ns.dir, name+entrySuffix) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// entry is an open entry file. For a transient object it holds a shared lock.
type entry struct {
	ns   *Namespace
	f    *os.File
	rec  Record
	path string
	// dev and ino identify the entry's file once f is closed, so that Remove after
	// Close destroys this entry and not one made since under the same name.
	dev, ino uint64
}

func encodeRecord(rec Record) ([]byte, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	if len(b) >= recordSize {
		return nil, fmt.Errorf("record of %d bytes too long", len(b))
	}
	b = append(b, '\n')
	return append(b, bytes.Repeat([]byte{' '}, recordSize-len(b))...), nil
}

// register publishes rec under rec.Name, holding a shared lock on it. If the name is
// taken by a stale entry (see Reap), that entry is reaped and the name reused; a live
// one makes register fail with an error matching unix.EEXIST.
func (ns *Namespace) register(rec Record) (*entry, error) {
	b, err := encodeRecord(rec)
	if err != nil {
		return nil, &ipc.OpError{Op: "register", Object: rec.Name, Err: err}
	}
	tmp := filepath.Join(ns.dir, ".tmp."+strconv.Itoa(os.Getpid())+"."+randomHex(8))
	fd, err := unix.Open(tmp, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, ipc.Wrap("open", tmp, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	defer os.Remove(tmp)
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, ipc.Wrap("write", tmp, unwrapErrno(err))
	}
	if err := flock(f, unix.LOCK_SH); err != nil {
		f.Close()
		return nil, ipc.Wrap("flock", tmp, err)
	}
	path := ns.entryPath(rec.Name)
	for try := 0; ; try++ {
		err = unix.Link(tmp, path)
		if err == nil {
			return &entry{ns: ns, f: f, rec: rec, path: path}, nil
		}
		if err != unix.EEXIST || try > 0 {
			break
		}
		if reaped, rerr := ns.reapOne(rec.Name); rerr != nil || reaped == nil {
			break
		}
	}
	f.Close()
	return nil, ipc.Wrap("register", rec.Name, err)
}

// open looks name up for op, which needs an object of kind, with c's options
// checked first; the entry comes back held (release it).
func (ns *Namespace) open(op, name, kind string, c config) (*entry, error) {
	if err := c.check(op, name); err != nil {
		return nil, err
	}
	ent, err := ns.lookup(name, false)
	if err != nil {
		return nil, err
	}
	if ent.rec.Kind != kind {
		ent.release(false)
		return nil, &ipc.OpError{Op: op, Object: name, Err: errors.New("name is a " + ent.rec.Kind + ", not a " + kind)}
	}
	return ent, nil
}

// lookup opens the entry of name and takes a shared lock on it. The entry must be a
// regular file owned by the effective uid with no access for others; it fails with an
// error matching unix.ENOENT if there is none.
func (ns *Namespace) lookup(name string, reserved bool) (*entry, error) {
	if err := checkName("lookup", name, reserved); err != nil {
		return nil, err
	}
	path := ns.entryPath(name)
	for try := 0; try < 3; try++ {
		f, err := openEntry(path)
		if err != nil {
			return nil, err
		}
		if err := flock(f, unix.LOCK_SH); err != nil {
			f.Close()
			return nil, ipc.Wrap("flock", path, err)
		}
		// The last user may have removed the entry between our open and our lock.
		if !sameFile(f, path) {
			f.Close()
			continue
		}
		rec, err := readRecord(f)
		if err != nil {
			f.Close()
			return nil, &ipc.OpError{Op: "lookup", Object: path, Err: err}
		}
		if rec.Name != name {
			f.Close()
			return nil, &ipc.OpError{Op: "lookup", Object: path, Err: fmt.Errorf("%w: entry names %q", ipc.ErrUntrustedObject, rec.Name)}
		}
		return &entry{ns: ns, f: f, rec: rec, path: path}, nil
	}
	return nil, ipc.Wrap("lookup", name, unix.ENOENT)
}

func openEntry(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, ipc.Wrap("open", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, ipc.Wrap("fstat", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || int(st.Uid) != os.Geteuid() || st.Mode&0o077 != 0 {
		unix.Close(fd)
		return nil, &ipc.OpError{Op: "open", Object: path,
			Err: fmt.Errorf("%w: entry mode %#o, owner %d", ipc.ErrUntrustedObject, st.Mode, st.Uid)}
	}
	return os.NewFile(uintptr(fd), path), nil
}

func readRecord(f *os.File) (Record, error) {
	var buf [recordSize]byte
	n, err := f.ReadAt(buf[:], 0)
	if err != nil && err != io.EOF {
		return Record{}, err
	}
	return decodeRecord(buf[:n])
}

// decodeRecord reads an entry's record as encodeRecord wrote it (JSON, then a newline
// and spaces up to recordSize). An entry file is written by processes of the same
// user only (see openEntry's checks), but a crash or another program can leave
// anything in it: a record that does not decode is an error, never a panic.
func decodeRecord(b []byte) (Record, error) {
	var rec Record
	if len(b) > recordSize {
		return Record{}, fmt.Errorf("bad entry: %d bytes, more than %d", len(b), recordSize)
	}
	if err := json.Unmarshal(bytes.TrimRight(b, " \n"), &rec); err != nil {
		return Record{}, fmt.Errorf("bad entry: %w", err)
	}
	return rec, nil
}

// sameFile reports whether path still names the file f is open on.
func sameFile(f *os.File, path string) bool {
	var a, b unix.Stat_t
	if unix.Fstat(int(f.Fd()), &a) != nil || unix.Lstat(path, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

// setOwner rewrites the entry's owner in place (one write of the fixed-size record).
func (e *entry) setOwner(o Owner) error {
	rec := e.rec
	rec.Owner = o
	b, err := encodeRecord(rec)
	if err != nil {
		return err
	}
	if _, err := e.f.WriteAt(b, 0); err != nil {
		return ipc.Wrap("write", e.path, unwrapErrno(err))
	}
	e.rec = rec
	return nil
}

// release drops this user's hold on the entry. With last set it removes the object
// and the entry if no other process holds the entry: the end of a transient object.
func (e *entry) release(last bool) error {
	if e == nil || e.f == nil {
		return nil
	}
	var st unix.Stat_t
	if unix.Fstat(int(e.f.Fd()), &st) == nil {
		e.dev, e.ino = st.Dev, st.Ino
	}
	defer func() { e.f.Close(); e.f = nil }()
	if !last {
		return nil
	}
	// Converting the shared lock to an exclusive one fails at once if anyone else
	// holds the entry.
	if err := flock(e.f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if err == unix.EWOULDBLOCK {
			return nil
		}
		return ipc.Wrap("flock", e.path, err)
	}
	return e.destroyLocked()
}

// destroyLocked removes the object and the entry; the caller holds the exclusive lock.
func (e *entry) destroyLocked() error {
	if !sameFile(e.f, e.path) {
		return nil // already removed (and perhaps the name reused)
	}
	return e.destroy()
}

// destroy removes the object and the entry, without looking at who holds them.
func (e *entry) destroy() error {
	err := destroyObject(e.rec)
	if rerr := os.Remove(e.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = rerr
	}
	return err
}

// remove destroys the entry's object and entry whatever other users hold it (Remove
// of a persistent mailbox), also after the handle was closed: then the entry is
// known by the identity of its file.
func (e *entry) remove() error {
	switch {
	case e == nil:
		return nil
	case e.f != nil:
		return e.destroyLocked()
	case e.ino == 0:
		return nil
	}
	f, err := os.Open(e.path)
	if err != nil {
		return nil // already removed
	}
	var st unix.Stat_t
	same := unix.Fstat(int(f.Fd()), &st) == nil && st.Dev == e.dev && st.Ino == e.ino
	if same { // inode numbers are reused: the record must name this object too
		rec, err := readRecord(f)
		same = err == nil && sameObject(rec, e.rec)
	}
	f.Close()
	if !same {
		return nil // removed, and the name reused
	}
	e.ino = 0
	return e.destroy()
}

// sameObject reports whether two records name the same kernel object: what the
// owner's hand-over (setOwner) can rewrite plays no part.
func sameObject(a, b Record) bool {
	return a.Name == b.Name && a.Kind == b.Kind && a.Backend == b.Backend && a.Object == b.Object &&
		(a.SysV == nil) == (b.SysV == nil) && (a.SysV == nil || *a.SysV == *b.SysV)
}

// Reaped describes an entry Reap removed.
type Reaped struct {
	Record Record
	// Reason is why: "owner died" (a transient object nobody holds whose owner is
	// gone) or "object gone" (a persistent entry whose kernel object was removed).
	Reason string
}

// Reap removes what crashed processes left behind: transient objects (mailboxes,
// ports, reply ports, listening links) whose owner has died and that no live process
// holds, persistent entries whose kernel object no longer exists, and temporary files
// of dead processes. Persistent objects with a live kernel object are kept: outliving
// their processes is their purpose. It returns what it removed.
func (ns *Namespace) Reap() ([]Reaped, error) {
	ents, err := os.ReadDir(ns.dir)
	if err != nil {
		return nil, ipc.Wrap("readdir", ns.dir, unwrapErrno(err))
	}
	var out []Reaped
	var errs []error
	for _, de := range ents {
		name := de.Name()
		if strings.HasPrefix(name, ".tmp.") {
			if pid, err := strconv.Atoi(strings.Split(name, ".")[2]); err == nil && !pidExists(pid) {
				_ = os.Remove(filepath.Join(ns.dir, name))
			}
			continue
		}
		base, ok := strings.CutSuffix(name, entrySuffix)
		if !ok {
			continue
		}
		r, err := ns.reapOne(base)
		if err != nil {
			errs = append(errs, err)
		} else if r != nil {
			out = append(out, *r)
		}
	}
	return out, ipc.Join(errs...)
}

// reapOne reaps the entry name if it is stale, returning nil if it is not.
func (ns *Namespace) reapOne(name string) (*Reaped, error) {
	path := ns.entryPath(name)
	f, err := openEntry(path)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, nil
		}
		return nil, err
	}
	defer f.Close()
	rec, err := readRecord(f)
	if err != nil {
		return nil, &ipc.OpError{Op: "reap", Object: path, Err: err}
	}
	reason := ""
	if rec.Persistent {
		if ok, err := objectExists(rec); err != nil || ok {
			return nil, err
		}
		reason = "object gone"
	} else {
		if rec.Owner.Alive() {
			return nil, nil
		}
		reason = "owner died"
	}
	if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if err == unix.EWOULDBLOCK {
			return nil, nil // still in use by a live process
		}
		return nil, ipc.Wrap("flock", path, err)
	}
	e := &entry{ns: ns, f: f, rec: rec, path: path}
	if err := e.destroyLocked(); err != nil {
		return nil, err
	}
	return &Reaped{Record: rec, Reason: reason}, nil
}

// Entries lists the namespace's records.
func (ns *Namespace) Entries() ([]Record, error) {
	ents, err := os.ReadDir(ns.dir)
	if err != nil {
		return nil, ipc.Wrap("readdir", ns.dir, unwrapErrno(err))
	}
	var out []Record
	for _, de := range ents {
		if !strings.HasSuffix(de.Name(), entrySuffix) {
			continue
		}
		f, err := openEntry(filepath.Join(ns.dir, de.Name()))
		if err != nil {
			continue
		}
		rec, err := readRecord(f)
		f.Close()
		if err == nil {
			out = append(out, rec)
		}
	}
	return out, nil
}

func pidExists(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || err == unix.EPERM
}

// unwrapErrno returns the errno inside an *os.PathError (or similar), so ipc.Wrap can
// map it.
func unwrapErrno(err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}

func closeFd(fd int) { _ = unix.Close(fd) }
