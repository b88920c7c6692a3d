package sockets

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

// A path socket is created, and a stale socket file replaced, like this (S6, FI-15):
//
//  1. bind(2) at the path. Success is the common case and costs nothing more.
//  2. On EADDRINUSE, take an exclusive flock(2) on the socket's directory (held
//     through a descriptor of our own, so goroutines and processes alike exclude
//     each other; no lock file is created, so none can be left behind), then look
//     at what is there:
//     a. nothing (it went away since): bind again;
//     b. a socket file owned by the effective uid to which no socket is bound: that
//     file is stale (a process that bound it died or closed without unlinking), so
//     unlink it and bind again;
//     c. anything else, including a socket that is bound but not yet listening,
//     another user's socket, a regular file: fail with EADDRINUSE.
//  3. A listener's Close unlinks its file under the same lock, and only if the name
//     still refers to the file it bound.
//
// "No socket is bound to the file" is asked of the kernel, not guessed from a
// connect(2): a connect to a socket that is bound but not yet listening is refused
// with ECONNREFUSED exactly as one to a stale file is, which is how two racing
// creators used to both win. The sock_diag netlink interface (UDIAG_SHOW_VFS) lists
// the device and inode of the file every bound Unix socket of this network
// namespace holds; the file is stale if none of them is ours. A file can never be
// bound again once stale (bind always makes a new file), so the answer cannot go
// out of date while we hold the lock; and bind(2) creates the file and attaches it
// to the socket under the directory's inode lock, which our own failing bind also
// took, so by the time we look, a file made by a concurrent bind is attached.
//
// Limits: the lock only orders ipclab creators and closers; a program that unlinks
// the path blindly can still race with us. Sockets bound by processes of another
// network namespace to a file in a shared directory are invisible to sock_diag. A
// kernel without sock_diag for Unix sockets (CONFIG_UNIX_DIAG) leaves stale files
// in place: bind then fails with EADDRINUSE and says why.

// socketFile identifies the file bind(2) created, so Close removes that file and no
// other.
type socketFile struct {
	path     string
	dev, ino uint64
}

// openDir opens dir and verifies that it is a directory (not a symlink) owned by the
// effective uid that no one else can write to: there, nobody else can plant, swap or
// remove a socket file (S6). The caller closes the returned descriptor.
func openDir(dir string) (int, error) {
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &ipc.OpError{Op: "open", Object: dir, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(dfd, &st); err != nil {
		unix.Close(dfd)
		return -1, &ipc.OpError{Op: "fstat", Object: dir, Err: err}
	}
	if int(st.Uid) != os.Geteuid() || st.Mode&0o022 != 0 {
		unix.Close(dfd)
		return -1, &ipc.OpError{Op: "check directory", Object: dir, Err: fmt.Errorf(
			"owner uid %d, mode %#o: want owner %d and no group/other write: %w",
			st.Uid, st.Mode&0o7777, os.Geteuid(), ipc.ErrUntrustedObject)}
	}
	return dfd, nil
}

// lockDir takes an exclusive flock on the directory open at dfd; closing dfd
// releases it.
func lockDir(dfd int) error {
	for {
		err := unix.Flock(dfd, unix.LOCK_EX)
		if err != unix.EINTR {
			return err
		}
	}
}

// bindName binds fd to name: a path inside a private directory (replacing a stale
// socket file of ours, as described above), an abstract "@name", or "" for autobind.
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
	dfd, err := openDir(filepath.Dir(name))
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd) // also releases the lock, if taken
	err = sys.Bind(fd, &a)
	if err == unix.EADDRINUSE {
		if err = lockDir(dfd); err != nil {
			return nil, ipc.Wrap("flock", filepath.Dir(name), err)
		}
		err = replaceStale(dfd, fd, name, &a)
	}
	if err != nil {
		return nil, ipc.Wrap("bind", name, err)
	}
	f := &socketFile{path: name}
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, filepath.Base(name), &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, ipc.Wrap("lstat", name, err)
	}
	f.dev, f.ino = st.Dev, st.Ino
	// bind honours the umask; set the mode asked for. The directory is private, so
	// nobody can reach the file in between.
	if err := unix.Fchmodat(dfd, filepath.Base(name), uint32(c.mode), 0); err != nil {
		f.removeAt(dfd) // through dfd: it may hold the lock already
		return nil, ipc.Wrap("chmod", name, err)
	}
	return f, nil
}

// replaceStale is step 2 of the scheme above, with the directory lock held: it binds
// fd to name once whatever occupied the name is gone or was a stale socket file of
// ours. It returns the error for bind (EADDRINUSE when the name is in use).
func replaceStale(dfd, fd int, name string, a *sys.Addr) error {
	base := filepath.Base(name)
	// A few rounds: the name can come and go under programs that do not take the
	// lock; each round either binds or finds a reason to give up.
	for range 4 {
		var st unix.Stat_t
		switch err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); {
		case err == unix.ENOENT:
			// Gone since our bind failed: try again.
		case err != nil:
			return err
		case st.Mode&unix.S_IFMT != unix.S_IFSOCK || int(st.Uid) != os.Geteuid():
			return unix.EADDRINUSE // not a socket of ours: never touched
		default:
			bound, err := boundToFile(st.Dev, st.Ino)
			if err != nil {
				return fmt.Errorf("socket file present, and whether it is stale cannot be told (%v): %w", err, unix.EADDRINUSE)
			}
			if bound {
				return unix.EADDRINUSE // a live socket, listening or about to
			}
			if err := unix.Unlinkat(dfd, base, 0); err != nil && err != unix.ENOENT {
				return fmt.Errorf("unlink stale socket file: %w", err)
			}
		}
		err := sys.Bind(fd, a)
		if err != unix.EADDRINUSE {
			return err
		}
	}
	return unix.EADDRINUSE
}

// Netlink sock_diag for AF_UNIX (linux/unix_diag.h), which x/sys/unix does not
// define.
const (
	udiagShowVFS  = 0x2 // UDIAG_SHOW_VFS: report the file a socket is bound to
	unixDiagVFS   = 1   // UNIX_DIAG_VFS attribute: struct unix_diag_vfs {ino, dev u32}
	nlmsgHdrLen   = 16  // struct nlmsghdr
	unixDiagReqSz = 24  // struct unix_diag_req
	unixDiagMsgSz = 16  // struct unix_diag_msg
)

// boundToFile reports whether some Unix socket of this network namespace is bound
// to the file with device dev and inode ino (as stat(2) gives them), by dumping every
// Unix socket with sock_diag and UDIAG_SHOW_VFS. The kernel gives the inode number's
// low 32 bits only: a collision makes the answer "bound", the safe side.
func boundToFile(dev, ino uint64) (bool, error) {
	nl, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return false, fmt.Errorf("sock_diag socket: %w", err)
	}
	defer unix.Close(nl)
	req := make([]byte, nlmsgHdrLen+unixDiagReqSz)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], 1) // sequence number
	req[16] = unix.AF_UNIX
	ne.PutUint32(req[20:], ^uint32(0)) // every state
	ne.PutUint32(req[28:], udiagShowVFS)
	if err := unix.Sendto(nl, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return false, fmt.Errorf("sock_diag request: %w", err)
	}
	// The kernel's device number in the answer is its internal encoding
	// (major << 20 | minor), not stat's.
	wantDev := uint32(unix.Major(dev))<<20 | uint32(unix.Minor(dev))
	buf := make([]byte, 32<<10)
	for {
		n, _, err := unix.Recvfrom(nl, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("sock_diag receive: %w", err)
		}
		for msg := buf[:n]; len(msg) >= nlmsgHdrLen; {
			l := int(ne.Uint32(msg[0:]))
			if l < nlmsgHdrLen || l > len(msg) {
				return false, errors.New("sock_diag: malformed answer")
			}
			switch ne.Uint16(msg[4:]) {
			case unix.NLMSG_DONE:
				return false, nil
			case unix.NLMSG_ERROR:
				if l >= nlmsgHdrLen+4 {
					if e := int32(ne.Uint32(msg[nlmsgHdrLen:])); e < 0 {
						return false, fmt.Errorf("sock_diag: %w", unix.Errno(-e))
					}
				}
				return false, errors.New("sock_diag: error answer")
			case unix.SOCK_DIAG_BY_FAMILY:
				if fileOf(msg[nlmsgHdrLen:l], wantDev, uint32(ino)) {
					return true, nil // closing the socket discards the rest
				}
			}
			step := (l + 3) &^ 3
			if step >= len(msg) {
				break
			}
			msg = msg[step:]
		}
	}
}

// fileOf reports whether one unix_diag_msg with its attributes names the file
// (dev, ino) in its UNIX_DIAG_VFS attribute.
func fileOf(m []byte, dev, ino uint32) bool {
	if len(m) < unixDiagMsgSz {
		return false
	}
	ne := binary.NativeEndian
	for attrs := m[unixDiagMsgSz:]; len(attrs) >= 4; {
		l := int(ne.Uint16(attrs[0:]))
		if l < 4 || l > len(attrs) {
			return false
		}
		if ne.Uint16(attrs[2:]) == unixDiagVFS && l >= 12 &&
			ne.Uint32(attrs[4:]) == ino && ne.Uint32(attrs[8:]) == dev {
			return true
		}
		step := (l + 3) &^ 3
		if step > len(attrs) {
			return false
		}
		attrs = attrs[step:]
	}
	return false
}

// remove unlinks the socket file if it is still the one we bound, under the
// directory lock so that it cannot remove a file a concurrent creator has just put
// in place of ours.
func (f *socketFile) remove() {
	if f == nil {
		return
	}
	dfd, err := unix.Open(filepath.Dir(f.path), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return // the directory is gone, and the file with it
	}
	defer unix.Close(dfd)
	f.removeAt(dfd)
}

// removeAt is remove with the directory open at dfd. It takes the lock through dfd,
// which is a no-op if dfd holds it already (a second descriptor of the same process
// would wait for the first).
func (f *socketFile) removeAt(dfd int) {
	if lockDir(dfd) != nil {
		return
	}
	base := filepath.Base(f.path)
	var st unix.Stat_t
	if unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Dev == f.dev && st.Ino == f.ino {
		_ = unix.Unlinkat(dfd, base, 0)
	}
}
