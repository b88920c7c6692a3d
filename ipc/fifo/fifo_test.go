package fifo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/fifo"
	"github.com/ipclab/ipclab/ipc/pipe"
)

func TestMain(m *testing.M) { ipctest.Main(m) }

func create(t *testing.T, opts ...fifo.Option) *fifo.FIFO {
	t.Helper()
	f, err := fifo.Create(filepath.Join(t.TempDir(), "f"), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { f.Remove(); f.Close() })
	return f
}

func TestCreate(t *testing.T) {
	f := create(t)
	var st unix.Stat_t
	require.NoError(t, unix.Lstat(f.Path(), &st))
	assert.Equal(t, uint32(unix.S_IFIFO), st.Mode&unix.S_IFMT, "FIFO-01")
	assert.Equal(t, uint32(0o600), st.Mode&0o777, "default mode 0600")
	require.NoError(t, f.Close())
	require.NoError(t, unix.Lstat(f.Path(), &st), "Close drops the handle and leaves the FIFO")
	assert.NoError(t, f.Close(), "idempotent")

	g, err := fifo.Open(f.Path())
	require.NoError(t, err)
	require.NoError(t, g.Remove(), "any handle that checks out may remove it")
	_, err = os.Lstat(f.Path())
	assert.ErrorIs(t, err, os.ErrNotExist, "Remove deletes the FIFO")
	_, err = fifo.Open(f.Path())
	assert.ErrorIs(t, err, fs.ErrNotExist, "Open after Remove")
	require.NoError(t, g.Close())
	assert.NoError(t, f.Remove(), "Remove of a FIFO already gone, after Close")
}

// TestAfterClose: every method of a closed FIFO handle fails with an error matching
// os.ErrClosed, inside an *ipc.OpError, and leaves the FIFO in place.
func TestAfterClose(t *testing.T) {
	f := create(t)
	require.NoError(t, f.Close())
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"OpenReader":    func() error { _, err := f.OpenReader(ctx); return err },
		"OpenWriter":    func() error { _, err := f.OpenWriter(ctx); return err },
		"TryOpenReader": func() error { _, err := f.TryOpenReader(); return err },
		"TryOpenWriter": func() error { _, err := f.TryOpenWriter(); return err },
		"OpenReadWrite": func() error { _, _, err := f.OpenReadWrite(); return err },
	} {
		err := call()
		assert.ErrorIs(t, err, os.ErrClosed, name)
		var op *ipc.OpError
		assert.ErrorAs(t, err, &op, name)
	}
	_, err := os.Lstat(f.Path())
	assert.NoError(t, err)
	// Close drops the handle; Remove still destroys the FIFO.
	require.NoError(t, f.Remove())
	_, err = os.Lstat(f.Path())
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func TestGroupInheritance(t *testing.T) {
	ipctest.RequireRoot(t)
	// FIFO-02: in a setgid directory a new FIFO takes the directory's group; elsewhere
	// the creator's. A setgid bit cannot be asked for through this API at all.
	dir := t.TempDir()
	require.NoError(t, os.Chown(dir, 0, 100))
	require.NoError(t, unix.Chmod(dir, 0o2750))
	f, err := fifo.Create(filepath.Join(dir, "g"))
	require.NoError(t, err)
	defer f.Close()
	var st unix.Stat_t
	require.NoError(t, unix.Lstat(f.Path(), &st))
	assert.EqualValues(t, 100, st.Gid, "FIFO-02 setgid directory's group")

	plain := create(t)
	require.NoError(t, unix.Lstat(plain.Path(), &st))
	assert.EqualValues(t, os.Getegid(), st.Gid, "FIFO-02 creator's group")

	_, err = fifo.Create(filepath.Join(dir, "s"), fifo.WithMode(os.ModeSetgid|0o600))
	assert.ErrorIs(t, err, ipc.ErrInvalid, "FIFO-02/FIFO-05 non-permission bits refused")
}

func TestCreateErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := fifo.Create(filepath.Join(dir, strings.Repeat("n", 256)))
	assert.ErrorIs(t, err, unix.ENAMETOOLONG, "FIFO-03 ENAMETOOLONG")
	f := create(t)
	_, err = fifo.Create(f.Path())
	assert.ErrorIs(t, err, unix.EEXIST, "FIFO-03 existing path")
	_, err = fifo.Create("bad\x00name")
	assert.ErrorIs(t, err, ipc.ErrInvalid, "FIFO-03 unrepresentable path (wrapper)")
	_, err = fifo.Create(filepath.Join(dir, "missing", "f"))
	assert.ErrorIs(t, err, unix.ENOENT, "FIFO-03 missing directory")
	_, err = fifo.Create("")
	assert.ErrorIs(t, err, unix.ENOENT, "FIFO-03 empty path")
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err = fifo.Create(filepath.Join(file, "f"))
	assert.ErrorIs(t, err, unix.ENOTDIR, "FIFO-03 non-directory component")

	_, err = fifo.Create(filepath.Join(dir, "m"), fifo.WithMode(os.ModeType))
	assert.ErrorIs(t, err, unix.EINVAL, "FIFO-05 mode with file-type bits")
	_, err = fifo.Create(filepath.Join(dir, "w"), fifo.WithMode(0o666))
	assert.ErrorIs(t, err, ipc.ErrInvalid, "S1 world-writable refused by default")
	w, err := fifo.Create(filepath.Join(dir, "w"), fifo.WithMode(0o666), fifo.AllowWorld())
	require.NoError(t, err)
	var st unix.Stat_t
	require.NoError(t, unix.Lstat(w.Path(), &st))
	assert.Equal(t, uint32(0o666), st.Mode&0o777, "explicit mode, whatever the umask")
	w.Close()

	loop := filepath.Join(dir, "loop")
	require.NoError(t, os.Symlink(loop, loop))
	_, err = fifo.Create(filepath.Join(loop, "f"))
	assert.ErrorIs(t, err, unix.ELOOP, "FIFO-04 symlink loop")
}

func TestUnsafeDirectory(t *testing.T) {
	// S5: a directory that others can write to is refused.
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o777))
	_, err := fifo.Create(filepath.Join(dir, "f"))
	assert.ErrorIs(t, err, ipc.ErrUntrustedObject)
	_, err = fifo.Create("/tmp/ipclab-fifo-in-tmp")
	assert.ErrorIs(t, err, ipc.ErrUntrustedObject, "sticky world-writable /tmp is refused too")
}

func TestReadOnlyFS(t *testing.T) {
	ipctest.RequireRoot(t)
	if os.Getenv("IPCLAB_TEST_IN_NAMESPACE") == "" {
		t.Skip("mounts a read-only tmpfs: only inside the test's private mount namespace")
	}
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o700))
	require.NoError(t, unix.Mount("tmpfs", dir, "tmpfs", unix.MS_RDONLY, "mode=0700"))
	defer unix.Unmount(dir, 0)
	_, err := fifo.Create(filepath.Join(dir, "f"))
	assert.ErrorIs(t, err, unix.EROFS, "FIFO-04 read-only file system")
}

var _ = ipctest.Helper("unprivileged-create", func(args []string) int {
	dir := args[0]
	_, err := fifo.Create(filepath.Join(dir, "f"))
	if !errors.Is(err, unix.EACCES) {
		fmt.Println("FIFO-04: want EACCES in a non-writable directory, got", err)
		return 1
	}
	err = unix.Mknod(filepath.Join(args[1], "dev"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3)))
	if !errors.Is(err, unix.EPERM) {
		fmt.Println("FIFO-04: want EPERM for a device node as non-root, got", err)
		return 1
	}
	return 0
})

func TestUnprivileged(t *testing.T) {
	ipctest.RequireRoot(t)
	dir := t.TempDir()
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o755))
	require.NoError(t, os.Chown(dir, ipctest.Nobody, ipctest.Nobody))
	require.NoError(t, os.Chmod(dir, 0o500))
	writable := filepath.Join(filepath.Dir(dir), "nobody-writable")
	require.NoError(t, os.Mkdir(writable, 0o700))
	require.NoError(t, os.Chown(writable, ipctest.Nobody, ipctest.Nobody))
	ipctest.Start(t, "unprivileged-create", ipctest.AsUser(ipctest.Nobody), ipctest.WithArgs(dir, writable)).MustSucceed()
}

func TestMkfifoat(t *testing.T) {
	// FIFO-06
	d, err := os.Open(t.TempDir())
	require.NoError(t, err)
	defer d.Close()
	f, err := fifo.CreateAt(d, "at")
	require.NoError(t, err)
	defer f.Close()
	var st unix.Stat_t
	require.NoError(t, unix.Fstatat(int(d.Fd()), "at", &st, unix.AT_SYMLINK_NOFOLLOW))
	assert.Equal(t, uint32(unix.S_IFIFO), st.Mode&unix.S_IFMT)
}

func TestObservedSemantics(t *testing.T) {
	f := create(t)
	_, err := f.TryOpenWriter()
	assert.ErrorIs(t, err, unix.ENXIO, "FIFO-07 non-blocking writer with no reader")
	assert.ErrorIs(t, err, ipc.ErrNoReader)

	r, err := f.TryOpenReader()
	require.NoError(t, err, "FIFO-07 non-blocking reader with no writer")
	w, err := f.TryOpenWriter()
	require.NoError(t, err)
	_, err = w.Write([]byte("bye"))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	data, err := io.ReadAll(r)
	require.NoError(t, err)
	assert.Equal(t, "bye", string(data), "FIFO-07 EOF when the writer closes")
	r.Close()

	link := filepath.Join(filepath.Dir(f.Path()), "link")
	require.NoError(t, os.Symlink(f.Path(), link))
	_, err = fifo.Open(link)
	assert.ErrorIs(t, err, ipc.ErrUntrustedObject, "a symlink is not a FIFO")
	// The kernel's own answer to O_NOFOLLOW on a symlink:
	_, err = unix.Open(link, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	assert.ErrorIs(t, err, unix.ELOOP, "FIFO-07 O_NOFOLLOW through a symlink")

	// FIFO-07: plain mkfifo is filtered by the umask; Create is not.
	old := unix.Umask(0o022)
	defer unix.Umask(old)
	raw := filepath.Join(filepath.Dir(f.Path()), "raw")
	require.NoError(t, unix.Mkfifo(raw, 0o666))
	var st unix.Stat_t
	require.NoError(t, unix.Lstat(raw, &st))
	assert.Equal(t, uint32(0o644), st.Mode&0o777, "FIFO-07 umask applies to mkfifo")
	unix.Umask(0o077)
	g, err := fifo.Create(filepath.Join(filepath.Dir(f.Path()), "exact"), fifo.WithMode(0o640))
	require.NoError(t, err)
	defer g.Close()
	require.NoError(t, unix.Lstat(g.Path(), &st))
	assert.Equal(t, uint32(0o640), st.Mode&0o777)
}

func TestOpenCancel(t *testing.T) {
	f := create(t)
	for _, kind := range []string{"reader", "writer"} {
		t.Run(kind, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				var err error
				if kind == "reader" {
					var r *pipe.Reader
					if r, err = f.OpenReader(ctx); err == nil {
						r.Close()
					}
				} else {
					var w *pipe.Writer
					if w, err = f.OpenWriter(ctx); err == nil {
						w.Close()
					}
				}
				done <- err
			}()
			time.Sleep(20 * time.Millisecond)
			cancel()
			select {
			case err := <-done:
				assert.ErrorIs(t, err, context.Canceled)
			case <-time.After(5 * time.Second):
				t.Fatal("blocked open did not return after cancel")
			}
		})
	}
	// Already-cancelled and deadline contexts.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := f.OpenReader(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	_, err = f.OpenWriter(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

var _ = ipctest.Helper("fifo-peer", func(args []string) int {
	f, err := fifo.Open(args[0])
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer f.Close()
	ws, _ := ipc.ParseWaitStrategy(args[1])
	opt := fifo.WithPipeOptions(pipe.WithWait(ws))
	ctx := context.Background()
	// Open order matches the test's: read our requests, then write replies.
	r, err := f.OpenReader(ctx, opt)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	reply, err := fifo.Open(args[2])
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer reply.Close()
	w, err := reply.OpenWriter(ctx, opt)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	buf := make([]byte, 64)
	for {
		if _, err := r.ReadFull(ctx, buf); err != nil {
			return 0
		}
		if _, err := w.Write(bytes.ToUpper(buf)); err != nil {
			return 1
		}
	}
})

func TestRoundTripAcrossProcesses(t *testing.T) {
	for _, ws := range []ipc.WaitStrategy{ipc.WaitAuto, ipc.WaitPoller, ipc.WaitKernel} {
		t.Run(ws.String(), func(t *testing.T) {
			req := create(t)
			rep := create(t)
			p := ipctest.Start(t, "fifo-peer", ipctest.WithArgs(req.Path(), ws.String(), rep.Path()))
			ctx := context.Background()
			opt := fifo.WithPipeOptions(pipe.WithWait(ws))
			w, err := req.OpenWriter(ctx, opt)
			require.NoError(t, err)
			defer w.Close()
			r, err := rep.OpenReader(ctx, opt)
			require.NoError(t, err)
			defer r.Close()
			msg := bytes.Repeat([]byte("abcdefgh"), 8)
			got := make([]byte, 64)
			for i := 0; i < 10; i++ {
				_, err := w.Write(msg)
				require.NoError(t, err)
				_, err = r.ReadFull(ctx, got)
				require.NoError(t, err)
				require.Equal(t, bytes.ToUpper(msg), got)
			}
			require.NoError(t, w.Close())
			p.MustSucceed()
			_, err = r.Read(got)
			assert.Equal(t, io.EOF, err)
		})
	}
}

var _ = ipctest.Helper("fifo-atomic-writer", func(args []string) int {
	f, err := fifo.Open(args[0])
	if err != nil {
		return 1
	}
	defer f.Close()
	w, err := f.OpenWriter(context.Background())
	if err != nil {
		return 1
	}
	size, _ := strconv.Atoi(args[2])
	rec := bytes.Repeat([]byte(args[1][:1]), size)
	for i := 0; i < 200; i++ {
		if _, err := w.Write(rec); err != nil {
			return 1
		}
	}
	return 0
})

func TestAtomicWritesNamed(t *testing.T) {
	// PIPE-06 (named variants): writes ≤ PIPE_BUF from several processes into one FIFO
	// never interleave.
	for _, size := range []int{4090, pipe.PipeBuf} {
		t.Run(fmt.Sprintf("PIPE-06/named/%d", size), func(t *testing.T) {
			f := create(t)
			ctx := context.Background()
			opened := make(chan *pipe.Reader, 1)
			go func() {
				r, err := f.OpenReader(ctx)
				assert.NoError(t, err)
				opened <- r
			}()
			w, err := f.OpenWriter(ctx) // held so that EOF waits for every peer
			require.NoError(t, err)
			r := <-opened
			require.NotNil(t, r)
			defer r.Close()
			var procs []*ipctest.Proc
			for i := 0; i < 3; i++ {
				procs = append(procs, ipctest.Start(t, "fifo-atomic-writer",
					ipctest.WithArgs(f.Path(), string(rune('A'+i)), strconv.Itoa(size))))
			}
			done := make(chan struct{})
			go func() {
				for _, p := range procs {
					p.MustSucceed()
				}
				w.Close()
				close(done)
			}()
			data, err := io.ReadAll(r)
			require.NoError(t, err)
			<-done
			require.Equal(t, 3*200*size, len(data))
			for off := 0; off < len(data); off += size {
				rec := data[off : off+size]
				require.Equal(t, bytes.Repeat(rec[:1], size), rec, "interleaved at %d", off)
			}
		})
	}
}

func TestRemove(t *testing.T) {
	f := create(t)
	r, w, err := f.OpenReadWrite()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	require.NoError(t, f.Remove())
	require.NoError(t, f.Remove(), "idempotent")
	_, err = w.Write([]byte("still works"))
	require.NoError(t, err, "open ends survive the unlink")
	buf := make([]byte, 11)
	_, err = r.ReadFull(context.Background(), buf)
	require.NoError(t, err)

	// A name replaced by someone else is not removed.
	g := create(t)
	require.NoError(t, os.Remove(g.Path()))
	require.NoError(t, os.WriteFile(g.Path(), nil, 0o600))
	assert.ErrorIs(t, g.Remove(), ipc.ErrUntrustedObject)
	os.Remove(g.Path())
}

// TestCloseUnblocksOpen: FI-16. FIFO.Close ends an OpenReader or OpenWriter that
// waits under a context that can never end, for a FIFO made by Create or found by
// Open alike. Close only drops the handle: the FIFO stays until Remove.
func TestCloseUnblocksOpen(t *testing.T) {
	for _, owner := range []bool{true, false} {
		for _, kind := range []string{"reader", "writer"} {
			name := "FI-16/" + kind + "/open"
			if owner {
				name = "FI-16/" + kind + "/create"
			}
			t.Run(name, func(t *testing.T) {
				c := create(t)
				f := c
				if !owner {
					var err error
					f, err = fifo.Open(c.Path())
					require.NoError(t, err)
				}
				done := make(chan error, 1)
				go func() { done <- openEnd(f, kind, context.Background()) }()
				time.Sleep(20 * time.Millisecond) // let it block; not needed for correctness
				require.NoError(t, f.Close())
				select {
				case err := <-done:
					assert.ErrorIs(t, err, os.ErrClosed)
					var op *ipc.OpError
					assert.ErrorAs(t, err, &op)
				case <-time.After(30 * time.Second):
					t.Fatal("Close left the open blocked")
				}
				assert.ErrorIs(t, openEnd(f, kind, context.Background()), os.ErrClosed, "an open after Close")
				_, err := os.Lstat(c.Path())
				assert.NoError(t, err, "Close leaves the FIFO")
			})
		}
	}
	t.Run("FI-16/race", func(t *testing.T) {
		// Close racing opens that are starting, blocked, or about to be: each ends
		// with os.ErrClosed, and nothing is left behind (the leak check in TestMain).
		for i := range 200 {
			f, err := fifo.Create(filepath.Join(t.TempDir(), "r"))
			require.NoError(t, err)
			const n = 4
			errs := make(chan error, n)
			for j := range n {
				kind := []string{"reader", "writer"}[j%2]
				go func() { errs <- openEnd(f, kind, context.Background()) }()
			}
			if i%2 == 0 {
				time.Sleep(time.Millisecond)
			}
			require.NoError(t, f.Close())
			for range n {
				select {
				case err := <-errs:
					// A reader and a writer may meet before Close: then both opened.
					if err != nil {
						require.ErrorIs(t, err, os.ErrClosed, "round %d", i)
					}
				case <-time.After(30 * time.Second):
					t.Fatalf("round %d: an open is still blocked after Close", i)
				}
			}
		}
	})
}

// openEnd opens a reader or writer of f under ctx and closes it again.
func openEnd(f *fifo.FIFO, kind string, ctx context.Context) error {
	if kind == "reader" {
		r, err := f.OpenReader(ctx)
		if err == nil {
			r.Close()
		}
		return err
	}
	w, err := f.OpenWriter(ctx)
	if err == nil {
		w.Close()
	}
	return err
}
