package sockets

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

// socketFile identifies the file bind(2) created, so Close removes that file and no
// other.
type socketFile struct {
	path     string
	dev, ino uint64
}

// checkDir verifies that dir is a directory (not a symlink) owned by the effective
// uid that no one else can write to: there, nobody else can plant, swap or remove a
// socket file (S6).
func checkDir(dir string) error {
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &ipc.OpError{Op: "open", Object: dir, Err: err}
	}
	defer unix.Close(dfd)
	var st unix.Stat_t
	if err := unix.Fstat(dfd, &st); err != nil {
		return &ipc.OpError{Op: "fstat", Object: dir, Err: err}
	}
	if int(st.Uid) != os.Geteuid() || st.Mode&0o022 != 0 {
		return &ipc.OpError{Op: "check directory", Object: dir, Err: fmt.Errorf(
			"owner uid %d, mode %#o: want owner %d and no group/other write: %w",
			st.Uid, st.Mode&0o7777, os.Geteuid(), ipc.ErrUntrustedObject)}
	}
	return nil
}

// bindName binds fd to name: a path inside a private directory (replacing a stale
// socket file of ours), an abstract "@name", or "" for autobind.
func bindName(fd, sotype int, name string, c config) (*socketFile, error) {
	var a sys.Addr
	if err := setUnixName(&a, name, c.abstract); err != nil {
		return nil, &ipc.OpError{Op: "bind", Object: name, Err: err}
	}
	if name == "" || name[0] == '@' {
		if !c.abstract {
			return nil, &ipc.OpError{Op: "bind", Object: "@(autobind)", Err: fmt.Errorf("autobind without AllowAbstract: %w", ipc.ErrInvalid)}
		}
		// First binder wins: EADDRINUSE on our own name may be a squatter, and we never
		// quietly pick another name (S7).
		if err := sys.Bind(fd, &a); err != nil {
			return nil, ipc.Wrap("bind", name, err)
		}
		return nil, nil
	}
	if err := checkDir(filepath.Dir(name)); err != nil {
		return nil, err
	}
	err := sys.Bind(fd, &a)
	if err == unix.EADDRINUSE && staleSocket(name, sotype) {
		if uerr := unix.Unlink(name); uerr != nil && uerr != unix.ENOENT {
			return nil, ipc.Wrap("unlink stale socket", name, uerr)
		}
		err = sys.Bind(fd, &a)
	}
	if err != nil {
		return nil, ipc.Wrap("bind", name, err)
	}
	f := &socketFile{path: name}
	var st unix.Stat_t
	if err := unix.Lstat(name, &st); err != nil {
		return nil, ipc.Wrap("lstat", name, err)
	}
	f.dev, f.ino = st.Dev, st.Ino
	// bind honours the umask; set the mode asked for. The directory is private, so
	// nobody can reach the file in between.
	if err := unix.Chmod(name, uint32(c.mode)); err != nil {
		f.remove()
		return nil, ipc.Wrap("chmod", name, err)
	}
	return f, nil
}

// staleSocket reports whether path is a socket file owned by us that no one listens
// on: it lstat's as a socket with our uid AND a connect to it is refused. Anything
// else (a live listener, someone else's file, a regular file) is left alone.
func staleSocket(path string, sotype int) bool {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return false
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK || int(st.Uid) != os.Geteuid() {
		return false
	}
	probe, err := unix.Socket(unix.AF_UNIX, sotype|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer unix.Close(probe)
	var a sys.Addr
	if a.SetUnix(path) != nil {
		return false
	}
	return sys.Connect(probe, &a) == unix.ECONNREFUSED
}

// remove unlinks the socket file if it is still the one we bound.
func (f *socketFile) remove() {
	if f == nil {
		return
	}
	var st unix.Stat_t
	if unix.Lstat(f.path, &st) == nil && st.Dev == f.dev && st.Ino == f.ino {
		_ = unix.Unlink(f.path)
	}
}
