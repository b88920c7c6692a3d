// Package fifo wraps Linux named pipes (FIFOs): safe creation, cancellable opens, and
// the same read and write ends as ipc/pipe, because once open a FIFO is a pipe.
//
// # Safe creation
//
// A FIFO in a directory other users can write to is a classic attack surface: a
// pre-created FIFO or a symlink planted where the victim will create one (the CVEs
// behind the kernel's fs.protected_fifos). Create therefore:
//
//   - opens the parent directory with O_DIRECTORY|O_NOFOLLOW and refuses it unless it is
//     owned by the effective user and not writable by group or others;
//   - creates the node with mkfifoat(dirfd) and sets its mode explicitly (0600 unless
//     asked), so the umask does not decide it;
//   - opens with openat(dirfd, O_NOFOLLOW|O_CLOEXEC) and checks with fstat that what was
//     opened is a FIFO owned by the expected user.
//
// # Opening
//
// Opening a FIFO for reading blocks until a writer opens it and vice versa. The Open
// calls take a context, and FIFO.Close ends them too: the blocked open(2) is
// interrupted with a signal aimed at its thread (internal/wait, DESIGN §3), so it
// returns ctx.Err() or os.ErrClosed without ipclab opening the FIFO itself, which a
// peer could notice, and it works even once the name is gone (after Remove). Cost:
// one OS thread per blocked open, which open(2) takes anyway. No goroutine or
// descriptor outlives the call. TryOpenWriter does not wait and returns
// ipc.ErrNoReader (ENXIO) when no process has the FIFO open for reading; TryOpenReader
// never needs to wait.
//
// A reader sees io.EOF once every writer has closed; a writer gets ipc.ErrPeerGone once
// every reader has closed.
//
// # Lifetime
//
// A FIFO is persistent: its name stays in the file system until removed, whoever
// made it and whatever has it open. As everywhere in ipclab, Close drops the handle
// (the *FIFO and its directory descriptor) and never deletes anything; Remove
// unlinks the name, after checking that it still refers to the FIFO the handle was
// made for. A creator that wants its FIFO gone calls Remove before Close:
//
//	f, err := fifo.Create(path)
//	...
//	defer f.Close()
//	defer f.Remove()
//
// Ends already opened keep working after both.
package fifo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/option"
	"github.com/ipclab/ipclab/internal/wait"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/pipe"
)

// DefaultMode is the permission of a FIFO created without WithMode.
const DefaultMode os.FileMode = 0o600

// FIFO is a named pipe in the file system, held through its parent directory so that
// a rename of the path's directories cannot redirect later calls.
type FIFO struct {
	dir  *os.File // the parent directory, O_PATH|O_DIRECTORY
	name string   // the final component
	path string
	dev  uint64
	ino  uint64
	uid  uint32

	// calls tracks the calls that use dir: Close interrupts the blocked opens among
	// them and waits for all to leave before it releases dir.
	calls wait.Set

	closeOnce sync.Once
	closeErr  error
}

// Option configures Create and Open.
type Option func(*config)

type config struct {
	mode       os.FileMode
	allowWorld bool
	uid        int
	opts       []pipe.Option
}

// WithMode sets the permission bits of a FIFO created by Create (default 0600). Bits
// other than the permission bits (setuid, setgid, sticky, file type) are refused.
func WithMode(m os.FileMode) Option { return func(c *config) { c.mode = m } }

// AllowWorld permits a mode that lets other users write (o+w) or, without a group
// chosen for the directory, group members write (g+w). Refused by default (S1).
func AllowWorld() Option { return func(c *config) { c.allowWorld = true } }

// WithOwner makes Open accept a FIFO owned by uid instead of the effective user (for a
// client of another user's server).
func WithOwner(uid int) Option { return func(c *config) { c.uid = uid } }

// WithPipeOptions passes options (wait strategy, capacity, packet mode) to the ends
// that the Open calls return.
func WithPipeOptions(opts ...pipe.Option) Option {
	return func(c *config) { c.opts = append(c.opts, opts...) }
}

func buildConfig(opts []Option) (config, error) {
	c := config{mode: DefaultMode, uid: os.Geteuid()}
	if err := option.Apply(&c, opts); err != nil {
		return c, err
	}
	if slices.ContainsFunc(c.opts, func(o pipe.Option) bool { return o == nil }) {
		return c, fmt.Errorf("a pipe option is nil: %w", ipc.ErrInvalid)
	}
	if c.mode&^os.ModePerm != 0 {
		return c, fmt.Errorf("mode %v has bits other than permissions: %w", c.mode, ipc.ErrInvalid)
	}
	if !c.allowWorld && c.mode&0o022 != 0 {
		return c, fmt.Errorf("mode %#o lets other users write; use AllowWorld to mean it: %w", uint32(c.mode), ipc.ErrInvalid)
	}
	return c, nil
}

// Create makes a new FIFO at path, whose directory must belong to the effective user
// and be writable by nobody else. It fails with an error matching unix.EEXIST if the
// path exists (it never opens or reuses an existing file). The FIFO stays until
// Remove: Close drops the handle only.
func Create(path string, opts ...Option) (*FIFO, error) {
	c, err := buildConfig(opts)
	if err != nil {
		return nil, &ipc.OpError{Op: "mkfifo", Object: path, Err: err}
	}
	dir, name, err := openParent(path, true)
	if err != nil {
		return nil, &ipc.OpError{Op: "mkfifo", Object: path, Err: err}
	}
	f, err := createAt(dir, name, path, c)
	if err != nil {
		dir.Close()
		return nil, err
	}
	return f, nil
}

// CreateAt is Create relative to an open directory (mkfifoat), which is checked the
// same way. dir stays the caller's.
func CreateAt(dir *os.File, name string, opts ...Option) (*FIFO, error) {
	c, err := buildConfig(opts)
	if err != nil {
		return nil, &ipc.OpError{Op: "mkfifoat", Object: name, Err: err}
	}
	if err := checkName(name); err != nil {
		return nil, &ipc.OpError{Op: "mkfifoat", Object: name, Err: err}
	}
	fd, err := unix.Openat(int(dir.Fd()), ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, ipc.Wrap("mkfifoat", name, err)
	}
	d := os.NewFile(uintptr(fd), dir.Name())
	if err := checkDir(d); err != nil {
		d.Close()
		return nil, &ipc.OpError{Op: "mkfifoat", Object: name, Err: err}
	}
	f, err := createAt(d, name, filepath.Join(dir.Name(), name), c)
	if err != nil {
		d.Close()
		return nil, err
	}
	return f, nil
}

func createAt(dir *os.File, name, path string, c config) (*FIFO, error) {
	dfd := int(dir.Fd())
	if err := unix.Mkfifoat(dfd, name, uint32(c.mode)); err != nil {
		return nil, ipc.Wrap("mkfifoat", path, err)
	}
	// The directory admits no one else, so the node is the one just made: set the
	// exact mode the caller asked for, whatever the umask removed.
	if err := unix.Fchmodat(dfd, name, uint32(c.mode), 0); err != nil {
		_ = unix.Unlinkat(dfd, name, 0)
		return nil, ipc.Wrap("fchmodat", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		_ = unix.Unlinkat(dfd, name, 0)
		return nil, ipc.Wrap("fstatat", path, err)
	}
	return &FIFO{dir: dir, name: name, path: path, dev: st.Dev, ino: st.Ino, uid: st.Uid}, nil
}

// Open refers to an existing FIFO at path without creating or opening it. It checks,
// without following a final symlink, that path is a FIFO owned by the effective user
// (or the user given with WithOwner). Close drops the handle; Remove unlinks the FIFO.
func Open(path string, opts ...Option) (*FIFO, error) {
	c, err := buildConfig(opts)
	if err != nil {
		return nil, &ipc.OpError{Op: "open", Object: path, Err: err}
	}
	dir, name, err := openParent(path, false)
	if err != nil {
		return nil, &ipc.OpError{Op: "open", Object: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		dir.Close()
		return nil, ipc.Wrap("stat", path, err)
	}
	if err := checkNode(&st, c.uid); err != nil {
		dir.Close()
		return nil, &ipc.OpError{Op: "open", Object: path, Err: err}
	}
	return &FIFO{dir: dir, name: name, path: path, dev: st.Dev, ino: st.Ino, uid: st.Uid}, nil
}

// Path returns the FIFO's path.
func (f *FIFO) Path() string { return f.path }

// String returns the FIFO's path.
func (f *FIFO) String() string { return f.path }

// OpenReader opens the FIFO for reading, waiting until a writer opens it, ctx ends
// (the error wraps ctx.Err()) or the FIFO is closed (the error matches os.ErrClosed).
func (f *FIFO) OpenReader(ctx context.Context, opts ...Option) (*pipe.Reader, error) {
	fd, c, err := f.open(ctx, true, unix.O_RDONLY, opts)
	if err != nil {
		return nil, err
	}
	return pipe.ReaderFromFd(fd, append(c.opts, pipe.WithName(f.path))...)
}

// OpenWriter opens the FIFO for writing, waiting until a reader opens it, ctx ends or
// the FIFO is closed, as OpenReader does.
func (f *FIFO) OpenWriter(ctx context.Context, opts ...Option) (*pipe.Writer, error) {
	fd, c, err := f.open(ctx, true, unix.O_WRONLY, opts)
	if err != nil {
		return nil, err
	}
	return pipe.WriterFromFd(fd, append(c.opts, pipe.WithName(f.path))...)
}

// TryOpenReader opens the FIFO for reading without waiting for a writer. While no
// writer has the FIFO open, reads return io.EOF (the kernel's rule for a pipe with no
// writers), so callers usually wait with OpenReader instead.
func (f *FIFO) TryOpenReader(opts ...Option) (*pipe.Reader, error) {
	fd, c, err := f.open(context.Background(), false, unix.O_RDONLY|unix.O_NONBLOCK, opts)
	if err != nil {
		return nil, err
	}
	r, err := pipe.ReaderFromFd(fd, append(c.opts, pipe.WithName(f.path))...)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// TryOpenWriter opens the FIFO for writing without waiting. With no reader it returns
// an error matching ipc.ErrNoReader and unix.ENXIO.
func (f *FIFO) TryOpenWriter(opts ...Option) (*pipe.Writer, error) {
	fd, c, err := f.open(context.Background(), false, unix.O_WRONLY|unix.O_NONBLOCK, opts)
	if err != nil {
		return nil, err
	}
	return pipe.WriterFromFd(fd, append(c.opts, pipe.WithName(f.path))...)
}

// OpenReadWrite opens the FIFO for both reading and writing (O_RDWR, which never
// waits on Linux) and returns the two ends, each with its own descriptor. Both share
// one open file description that counts as a writer, so the Reader does not see
// io.EOF until both are closed.
func (f *FIFO) OpenReadWrite(opts ...Option) (*pipe.Reader, *pipe.Writer, error) {
	fd, c, err := f.open(context.Background(), false, unix.O_RDWR, opts)
	if err != nil {
		return nil, nil, err
	}
	wfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		unix.Close(fd)
		return nil, nil, ipc.Wrap("dup", f.path, err)
	}
	popts := append(c.opts, pipe.WithName(f.path))
	r, err := pipe.ReaderFromFd(fd, popts...)
	if err != nil {
		unix.Close(wfd)
		return nil, nil, err
	}
	w, err := pipe.WriterFromFd(wfd, popts...)
	if err != nil {
		r.Close()
		return nil, nil, err
	}
	return r, w, nil
}

// open opens the FIFO with flags; when wait is set the open may block until ctx ends.
func (f *FIFO) open(ctx context.Context, wait bool, flags int, opts []Option) (int, config, error) {
	c, err := buildConfig(append([]Option{WithOwner(int(f.uid))}, opts...))
	if err != nil {
		return -1, c, &ipc.OpError{Op: "open", Object: f.path, Err: err}
	}
	flags |= unix.O_NOFOLLOW | unix.O_CLOEXEC
	var fd int
	if wait {
		// Do registers the call (and its thread, for Close to interrupt) before dir
		// is touched; Close releases dir only once every call has left.
		err = f.calls.Do(ctx, func() (err error) {
			fd, err = unix.Openat(int(f.dir.Fd()), f.name, flags, 0)
			return err
		})
	} else {
		err = f.withDir(func(dfd int) (err error) {
			fd, err = unix.Openat(dfd, f.name, flags, 0)
			return err
		})
	}
	if err != nil {
		return -1, c, ipc.Wrap("open", f.path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, c, ipc.Wrap("fstat", f.path, err)
	}
	if err := checkNode(&st, int(f.uid)); err != nil || st.Ino != f.ino || st.Dev != f.dev {
		unix.Close(fd)
		if err == nil {
			err = fmt.Errorf("the FIFO was replaced since it was looked up: %w", ipc.ErrUntrustedObject)
		}
		return -1, c, &ipc.OpError{Op: "open", Object: f.path, Err: err}
	}
	return fd, c, nil
}

// withDir runs call with the directory descriptor unless the FIFO is closed (then
// it returns os.ErrClosed); Close waits for it.
func (f *FIFO) withDir(call func(dfd int) error) error {
	if !f.calls.Acquire() {
		return os.ErrClosed
	}
	defer f.calls.Release()
	return call(int(f.dir.Fd()))
}

// Remove unlinks the FIFO, after checking that the name still refers to the FIFO this
// value was made for (ipc.ErrUntrustedObject if it does not: then it leaves the file
// alone). Ends already opened keep working; a later Open of the path fails with an
// error matching fs.ErrNotExist. It is idempotent (a name already gone is no error).
// Close drops the handle, Remove destroys the FIFO: after Close it still works, in
// the directory the path names now, with the same check.
func (f *FIFO) Remove() error {
	err := f.withDir(f.remove)
	if err != os.ErrClosed {
		return err
	}
	dir, _, err := openParent(f.path, false)
	if err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return ipc.Wrap("open", f.path, err)
	}
	defer dir.Close()
	return f.remove(int(dir.Fd()))
}

func (f *FIFO) remove(dfd int) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, f.name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return ipc.Wrap("stat", f.path, err)
	}
	// Inode numbers are reused, so check the type and owner as well.
	if st.Ino != f.ino || st.Dev != f.dev || checkNode(&st, int(f.uid)) != nil {
		return &ipc.OpError{Op: "unlink", Object: f.path, Err: fmt.Errorf("the name now refers to another file: %w", ipc.ErrUntrustedObject)}
	}
	if err := unix.Unlinkat(dfd, f.name, 0); err != nil && err != unix.ENOENT {
		return ipc.Wrap("unlink", f.path, err)
	}
	return nil
}

// Close drops the handle: it releases the FIFO's directory descriptor and leaves the
// FIFO itself in place (Remove deletes it). Opens blocked in OpenReader or
// OpenWriter return an error matching os.ErrClosed, and so do the handle's later
// calls but Remove. Ends already opened keep working. It is idempotent.
func (f *FIFO) Close() error {
	f.closeOnce.Do(func() {
		f.calls.Close() // interrupts blocked opens and waits for every call to leave
		f.closeErr = f.dir.Close()
	})
	if f.closeErr != nil {
		return ipc.Wrap("close", f.path, f.closeErr)
	}
	return nil
}

// openParent opens path's directory (O_PATH|O_DIRECTORY|O_NOFOLLOW on the last
// directory component) and returns it with the final name. With private set it also
// checks that the directory is safe to create in.
func openParent(path string, private bool) (*os.File, string, error) {
	if path == "" {
		return nil, "", unix.ENOENT
	}
	if strings.IndexByte(path, 0) >= 0 {
		return nil, "", fmt.Errorf("path contains a NUL byte: %w", ipc.ErrInvalid)
	}
	dirPath, name := filepath.Split(path)
	if err := checkName(name); err != nil {
		return nil, "", err
	}
	if dirPath == "" {
		dirPath = "."
	}
	fd, err := unix.Open(dirPath, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", err
	}
	dir := os.NewFile(uintptr(fd), dirPath)
	if private {
		if err := checkDir(dir); err != nil {
			dir.Close()
			return nil, "", err
		}
	}
	return dir, name, nil
}

func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("%q is not a file name: %w", name, ipc.ErrInvalid)
	case len(name) > 255:
		return unix.ENAMETOOLONG
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("%q is not a single file name: %w", name, ipc.ErrInvalid)
	}
	return nil
}

// checkDir refuses a directory that another user could write into.
func checkDir(dir *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(dir.Fd()), &st); err != nil {
		return err
	}
	if int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("directory %s belongs to uid %d, not to us (%d): %w", dir.Name(), st.Uid, os.Geteuid(), ipc.ErrUntrustedObject)
	}
	if st.Mode&0o022 != 0 {
		return fmt.Errorf("directory %s is writable by other users (mode %#o): %w", dir.Name(), st.Mode&0o7777, ipc.ErrUntrustedObject)
	}
	return nil
}

// checkNode verifies that st is a FIFO owned by uid.
func checkNode(st *unix.Stat_t, uid int) error {
	if st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return fmt.Errorf("not a FIFO (mode %#o): %w", st.Mode, ipc.ErrUntrustedObject)
	}
	if int(st.Uid) != uid {
		return fmt.Errorf("FIFO belongs to uid %d, expected %d: %w", st.Uid, uid, ipc.ErrUntrustedObject)
	}
	return nil
}
