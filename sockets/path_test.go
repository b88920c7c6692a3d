package sockets

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
)

// staleFile leaves a socket file at path with nobody listening (a crashed run).
func staleFile(t *testing.T, path string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
}

func TestSocketPaths(t *testing.T) {
	t.Run("S6", func(t *testing.T) {
		dir := privateDir(t)
		path := filepath.Join(dir, "s")

		// Our own stale socket file is replaced; the new file has mode 0600 whatever
		// the umask; Close removes it.
		staleFile(t, path)
		old := unix.Umask(0)
		l, err := ListenStream(path)
		unix.Umask(old)
		if err != nil {
			t.Fatalf("Listen over our stale socket: %v", err)
		}
		st, err := os.Lstat(path)
		if err != nil || st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
			t.Errorf("socket file %v, %v; want a 0600 socket", st.Mode(), err)
		}
		// A live listener is never replaced.
		if l2, err := ListenStream(path); !errors.Is(err, unix.EADDRINUSE) {
			if l2 != nil {
				l2.Close()
			}
			t.Errorf("Listen over a live listener: %v, want EADDRINUSE", err)
		}
		c, err := DialStream(bg, path)
		if err != nil {
			t.Fatalf("the first listener no longer answers: %v", err)
		}
		c.Close()
		l.Close()
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("listener Close left %s: %v", path, err)
		}

		// A regular file, and a stale socket owned by someone else, are left alone.
		if err := os.WriteFile(path, []byte("data"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ListenStream(path); !errors.Is(err, unix.EADDRINUSE) {
			t.Errorf("Listen over a regular file: %v, want EADDRINUSE", err)
		}
		os.Remove(path)
		if os.Geteuid() == 0 {
			staleFile(t, path)
			if err := os.Lchown(path, ipctest.Nobody, ipctest.Nobody); err != nil {
				t.Fatal(err)
			}
			if _, err := ListenStream(path); !errors.Is(err, unix.EADDRINUSE) {
				t.Errorf("Listen over another user's stale socket: %v, want EADDRINUSE", err)
			}
			if _, err := os.Lstat(path); err != nil {
				t.Errorf("another user's socket file was removed: %v", err)
			}
			os.Remove(path)
		}

		// Directories others can write to, or not ours, or symlinks, are refused.
		open := filepath.Join(dir, "open")
		if err := os.Mkdir(open, 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chmod(open, 0o777)
		if _, err := ListenStream(filepath.Join(open, "s")); !errors.Is(err, ipc.ErrUntrustedObject) {
			t.Errorf("Listen in a 0777 directory: %v, want ErrUntrustedObject", err)
		}
		if os.Geteuid() == 0 {
			os.Chmod(open, 0o700)
			os.Chown(open, ipctest.Nobody, ipctest.Nobody)
			if _, err := ListenStream(filepath.Join(open, "s")); !errors.Is(err, ipc.ErrUntrustedObject) {
				t.Errorf("Listen in another user's directory: %v, want ErrUntrustedObject", err)
			}
		}
		link := filepath.Join(dir, "link")
		if err := os.Symlink(privateDir(t), link); err != nil {
			t.Fatal(err)
		}
		if _, err := ListenStream(filepath.Join(link, "s")); !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.ENOTDIR) {
			t.Errorf("Listen through a symlinked directory: %v, want ELOOP", err)
		}
	})

	t.Run("S7", func(t *testing.T) {
		name := fmt.Sprintf("@ipclab-test-%d", os.Getpid())
		// Abstract names and autobind only on request, and then only with a policy.
		for _, n := range []string{name, ""} {
			if _, err := ListenStream(n); !errors.Is(err, ipc.ErrInvalid) {
				t.Errorf("ListenStream(%q) without AllowAbstract: %v, want ErrInvalid", n, err)
			}
		}
		if _, err := DialStream(bg, name); !errors.Is(err, ipc.ErrInvalid) {
			t.Errorf("DialStream(%q) without AllowAbstract: %v, want ErrInvalid", name, err)
		}
		if _, err := ListenStream(name, AllowAbstract(nil)); !errors.Is(err, ipc.ErrInvalid) {
			t.Errorf("AllowAbstract(nil): %v, want ErrInvalid", err)
		}
		ipctest.RequireRoot(t)
		// A squatter (another user) binds our name first.
		p := startHelper(t, "abstract-squat", ipctest.AsUser(ipctest.Nobody), ipctest.WithArgs(name))
		p.Await()
		if l, err := ListenStream(name, AllowAbstract(SameUser())); !errors.Is(err, unix.EADDRINUSE) {
			if l != nil {
				l.Close()
			}
			t.Errorf("Listen on a squatted name: %v, want EADDRINUSE", err)
		}
		if c, err := DialStream(bg, name, AllowAbstract(SameUser())); !errors.Is(err, ErrPeerRejected) {
			if c != nil {
				c.Close()
			}
			t.Errorf("Dial to a squatter: %v, want ErrPeerRejected", err)
		}
		p.Signal()
		p.MustSucceed()
		// Once the squatter is gone, the name works, with the policy enforced.
		l, err := ListenStream(name, AllowAbstract(SameUser()))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		c, err := DialStream(bg, name, AllowAbstract(SameUser()))
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	})

	t.Run("SOCK-09", func(t *testing.T) {
		// Second bind of an abstract name.
		name := fmt.Sprintf("@ipclab-test-dup-%d", os.Getpid())
		l, err := ListenSeqpacket(name, AllowAbstract(SameUser()))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if _, err := ListenSeqpacket(name, AllowAbstract(SameUser())); !errors.Is(err, unix.EADDRINUSE) {
			t.Errorf("second bind of %s: %v, want EADDRINUSE", name, err)
		}
		// Connect to, and (raw) bind over, a stale socket file.
		path := sockPath(t, "stale")
		staleFile(t, path)
		if _, err := DialStream(bg, path); !errors.Is(err, unix.ECONNREFUSED) {
			t.Errorf("connect to a stale socket: %v, want ECONNREFUSED", err)
		}
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != unix.EADDRINUSE {
			t.Errorf("bind over a stale socket: %v, want EADDRINUSE", err)
		}
	})

	t.Run("SOCK-10/UnixUnlink", func(t *testing.T) {
		path := sockPath(t, "u")
		l, err := ListenStream(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := l.File()
		if err != nil {
			t.Fatal(err)
		}
		fl, err := FileStreamListener(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		fl.Close()
		if _, err := os.Lstat(path); err != nil {
			t.Errorf("closing a FileStreamListener removed the file: %v", err)
		}
		l.Close()
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("listener Close did not remove the file: %v", err)
		}
		// A file that replaced ours is not removed.
		l, err = ListenStream(path)
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(path)
		os.WriteFile(path, nil, 0o600)
		l.Close()
		if _, err := os.Lstat(path); err != nil {
			t.Errorf("Close removed a file that was not its socket: %v", err)
		}
	})
}

// Helper: binds the abstract name args[0] as a stream listener and holds it.
var _ = ipctest.Helper("abstract-squat", func(args []string) int {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err == nil {
		err = unix.Bind(fd, &unix.SockaddrUnix{Name: args[0]})
	}
	if err == nil {
		err = unix.Listen(fd, 8)
	}
	if err != nil {
		fmt.Println("squat:", err)
		return 1
	}
	ipctest.Signal()
	ipctest.Await()
	unix.Close(fd)
	return 0
})

func TestUnixgram(t *testing.T) {
	t.Run("SOCK-10/UnnamedSender", func(t *testing.T) {
		srv, err := ListenDgram(sockPath(t, "g"))
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		cl, err := DialDgram(bg, srv.LocalAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if err := cl.Send(bg, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 8)
		n, from, err := srv.RecvFrom(bg, buf)
		if err != nil || string(buf[:n]) != "hi" || from != nil {
			t.Errorf("RecvFrom = %q, %v, %v; want from == nil", buf[:n], from, err)
		}
		// Zero-byte payload and zero-byte buffer.
		if err := cl.Send(bg, nil); err != nil {
			t.Fatal(err)
		}
		if n, err := srv.Recv(bg, buf); n != 0 || err != nil {
			t.Errorf("zero-byte datagram: %d, %v", n, err)
		}
		if err := cl.Send(bg, nil); err != nil {
			t.Fatal(err)
		}
		if n, err := srv.Recv(bg, nil); n != 0 || err != nil {
			t.Errorf("zero-byte datagram into a zero-byte buffer: %d, %v", n, err)
		}
		if err := cl.Send(bg, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Recv(bg, nil); !errors.Is(err, ipc.ErrTruncated) {
			t.Errorf("1-byte datagram into a zero-byte buffer: %v, want ErrTruncated (never hidden)", err)
		}
		// Write to a connected socket with an address; Send on an unconnected one.
		if err := cl.SendTo(bg, []byte("x"), srv.LocalAddr()); !errors.Is(err, unix.EISCONN) {
			t.Errorf("SendTo on a connected socket: %v, want EISCONN", err)
		}
		if err := srv.Send(bg, []byte("x")); !errors.Is(err, unix.ENOTCONN) && !errors.Is(err, unix.EDESTADDRREQ) {
			t.Errorf("Send on an unconnected socket: %v, want ENOTCONN", err)
		}
	})

	t.Run("SOCK-10/Autobind", func(t *testing.T) {
		srv, err := ListenDgram("", AllowAbstract(SameUser()))
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		name := srv.LocalAddr().String()
		if !strings.HasPrefix(name, "@") || len(name) != 6 {
			t.Errorf("autobind name %q, want @ and 5 hex digits", name)
		}
		cl, err := DialDgram(bg, name, AutoBind(), AllowAbstract(SameUser()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if cl.RemoteAddr().String() != name || cl.LocalAddr() == nil || cl.LocalAddr().String()[0] != '@' {
			t.Errorf("client %v -> %v", cl.LocalAddr(), cl.RemoteAddr())
		}
		if err := cl.Send(bg, []byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 8)
		n, from, err := srv.RecvFrom(bg, buf)
		if err != nil || from == nil || from.String() != cl.LocalAddr().String() {
			t.Fatalf("RecvFrom = %d, %v, %v", n, from, err)
		}
		if err := srv.SendTo(bg, []byte("pong"), from); err != nil {
			t.Fatal(err)
		}
		if n, err := cl.Recv(bg, buf); err != nil || string(buf[:n]) != "pong" {
			t.Errorf("reply %q, %v", buf[:n], err)
		}
		// Autobound stream listener: close works.
		l, err := ListenStream("", AllowAbstract(SameUser()))
		if err != nil {
			t.Fatal(err)
		}
		if a := l.Addr().String(); !strings.HasPrefix(a, "@") {
			t.Errorf("autobound listener at %q", a)
		}
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})

	t.Run("SOCK-10/ReadNonblocking", func(t *testing.T) {
		a, _ := dgramPair(t)
		if _, err := a.TryRecv(make([]byte, 4)); !errors.Is(err, unix.EAGAIN) {
			t.Errorf("TryRecv on empty: %v, want EAGAIN", err)
		}
		s, _ := streamPair(t)
		if _, err := s.TryRead(make([]byte, 4)); !errors.Is(err, unix.EAGAIN) {
			t.Errorf("TryRead on empty: %v, want EAGAIN", err)
		}
	})
}
