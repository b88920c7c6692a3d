package sockets

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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
		if err := sockDiag(); err != nil {
			// Without sock_diag a stale file cannot be told from a bound socket, so it
			// is left alone, and the error says why.
			if _, lerr := ListenStream(path); !errors.Is(lerr, unix.EADDRINUSE) {
				t.Errorf("Listen over a stale file without sock_diag: %v, want EADDRINUSE", lerr)
			}
			t.Logf("no sock_diag for Unix sockets (%v): stale files stay", err)
			os.Remove(path)
		}
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

// Helper: binds a raw socket of type args[1] ("stream" or "seqpacket") at args[0],
// listens only if args[2] is "listen", signals, and holds it until killed or told to
// go. A program that is not ipclab (socat, say) binds and listens the same way.
var _ = ipctest.Helper("raw-bind", func(args []string) int {
	typ := unix.SOCK_STREAM
	if args[1] == "seqpacket" {
		typ = unix.SOCK_SEQPACKET
	}
	fd, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err == nil {
		err = unix.Bind(fd, &unix.SockaddrUnix{Name: args[0]})
	}
	if err == nil && args[2] == "listen" {
		err = unix.Listen(fd, 8)
	}
	if err != nil {
		fmt.Println("raw-bind:", err)
		return 1
	}
	ipctest.Signal()
	ipctest.Await()
	unix.Close(fd)
	return 0
})

// sockDiag reports whether this kernel answers sock_diag for Unix sockets
// (CONFIG_UNIX_DIAG), which telling a stale socket file from a bound one needs.
func sockDiag() error {
	_, err := boundToFile(0, 0)
	return err
}

func requireSockDiag(t *testing.T) {
	t.Helper()
	if err := sockDiag(); err != nil {
		t.Skipf("no sock_diag for Unix sockets (%v): stale socket files are never replaced here", err)
	}
}

// TestStaleSocketFile: S6 and FI-15. A socket file is replaced only when the kernel
// has no socket bound to it; a socket that is bound but not yet listening (which
// refuses a connect exactly as a stale file does) is never taken.
func TestStaleSocketFile(t *testing.T) {
	t.Run("FI-15/KilledListener", func(t *testing.T) {
		requireSockDiag(t)
		// A listener's process is SIGKILLed: its socket file stays, bound to nothing.
		for _, typ := range []string{"stream", "seqpacket"} {
			path := sockPath(t, "killed")
			p := startHelper(t, "raw-bind", ipctest.WithArgs(path, typ, "listen"))
			p.Await()
			p.Kill()
			_ = p.Wait()
			if _, err := os.Lstat(path); err != nil {
				t.Fatalf("the killed listener's socket file is gone already: %v", err)
			}
			var l interface{ Close() error }
			var err error
			if typ == "stream" {
				l, err = ListenStream(path)
			} else {
				l, err = ListenSeqpacket(path)
			}
			if err != nil {
				t.Fatalf("%s: listen over a dead process's socket file: %v", typ, err)
			}
			if typ == "stream" {
				c, err := DialStream(bg, path)
				if err != nil {
					t.Errorf("the new %s listener is unreachable: %v", typ, err)
				} else {
					c.Close()
				}
			} else {
				c, err := DialSeqpacket(bg, path)
				if err != nil {
					t.Errorf("the new %s listener is unreachable: %v", typ, err)
				} else {
					c.Close()
				}
			}
			l.Close()
		}
	})
	t.Run("S6/BoundNotListening", func(t *testing.T) {
		// Another program has bound the path and not yet called listen: a connect is
		// refused, as for a stale file, but the name is taken.
		path := sockPath(t, "bound")
		p := startHelper(t, "raw-bind", ipctest.WithArgs(path, "stream", "bound"))
		p.Await()
		if _, err := DialStream(bg, path); !errors.Is(err, unix.ECONNREFUSED) {
			t.Errorf("connect to a bound, not listening socket: %v, want ECONNREFUSED", err)
		}
		for _, listen := range []func() (interface{ Close() error }, error){
			func() (interface{ Close() error }, error) { return ListenStream(path) },
			func() (interface{ Close() error }, error) { return ListenSeqpacket(path) },
			func() (interface{ Close() error }, error) { return ListenDgram(path) },
		} {
			l, err := listen()
			if !errors.Is(err, unix.EADDRINUSE) {
				if err == nil {
					l.Close()
				}
				t.Errorf("listen over a bound socket: %v, want EADDRINUSE", err)
			}
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			t.Errorf("the bound socket's file was removed: %v", err)
		}
		p.Signal()
		p.MustSucceed()
		os.Remove(path)
	})
}

// Helper: one racer of TestListenRace. For every byte read from the gate (file 0) it
// listens at args[1] (stream for even ids, seqpacket for odd) and writes a 4-byte
// record to file 1: its id, 'W' (won), 'U' (EADDRINUSE) or 'E' (other error), and
// 's' or 'q' for its socket type. A winner then accepts one connection, writes its
// id on it, closes the listener and writes a second record with 'C'.
var _ = ipctest.Helper("listen-racer", func(args []string) int {
	id, _ := strconv.Atoi(args[0])
	path := args[1]
	gate, res := ipctest.File(0), ipctest.File(1)
	seq := id%2 == 1
	kind := byte('s')
	if seq {
		kind = 'q'
	}
	report := func(outcome byte) bool {
		_, err := res.Write([]byte{byte(id), outcome, kind, 0})
		return err == nil
	}
	b := make([]byte, 1)
	for {
		if _, err := io.ReadFull(gate, b); err != nil {
			return 0 // the test closed the gate: done
		}
		var err error
		var sl *StreamListener
		var ql *SeqpacketListener
		if seq {
			ql, err = ListenSeqpacket(path)
		} else {
			sl, err = ListenStream(path)
		}
		switch {
		case errors.Is(err, unix.EADDRINUSE):
			if !report('U') {
				return 1
			}
			continue
		case err != nil:
			fmt.Println("racer", id, "listen:", err)
			report('E')
			return 1
		}
		if !report('W') {
			return 1
		}
		if seq {
			c, err := ql.Accept(bg)
			if err == nil {
				err = c.Send(bg, []byte{byte(id)})
				c.Close()
			}
			ql.Close()
			if err != nil {
				fmt.Println("racer", id, "serve:", err)
				return 1
			}
		} else {
			c, err := sl.AcceptStream(bg)
			if err == nil {
				_, err = c.Write([]byte{byte(id)})
				c.Close()
			}
			sl.Close()
			if err != nil {
				fmt.Println("racer", id, "serve:", err)
				return 1
			}
		}
		if !report('C') {
			return 1
		}
	}
})

// TestListenRace: S6, issue 16 item 2. Racing processes listen on one path at the
// same moment, half of the rounds over a stale socket file (bound, then closed with
// nobody listening: what a killed process leaves). Every round has exactly one
// winner, every loser gets EADDRINUSE, and the winner is the one a client reaches.
// -short shrinks the run.
func TestListenRace(t *testing.T) {
	racers, rounds := 16, 1000
	if testing.Short() {
		racers, rounds = 8, 100
	}
	path := sockPath(t, "race")
	gateR, gateW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	resR, resW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer resR.Close()
	procs := make([]*ipctest.Proc, racers)
	for i := range procs {
		procs[i] = startHelper(t, "listen-racer", ipctest.WithArgs(strconv.Itoa(i), path), ipctest.WithFiles(gateR, resW))
	}
	gateR.Close()
	resW.Close()
	closeGate := sync.OnceFunc(func() { gateW.Close() })
	defer closeGate()

	rec := make([]byte, 4)
	next := func() []byte {
		t.Helper()
		_ = resR.SetReadDeadline(time.Now().Add(time.Minute))
		if _, err := io.ReadFull(resR, rec); err != nil {
			t.Fatalf("racers stopped reporting: %v", err)
		}
		return rec
	}
	go1 := bytes.Repeat([]byte{1}, racers)
	staleRounds := 0
	diagErr := sockDiag()
	if diagErr != nil {
		t.Logf("no sock_diag for Unix sockets (%v): no rounds over a stale file", diagErr)
	}
	for round := range rounds {
		if round%2 == 1 && diagErr == nil {
			staleFile(t, path)
			staleRounds++
		}
		if _, err := gateW.Write(go1); err != nil { // one write: every racer wakes at once
			t.Fatal(err)
		}
		winner, kind, winners, inUse := -1, byte(0), 0, 0
		for range racers {
			r := next()
			switch r[1] {
			case 'W':
				winners++
				winner, kind = int(r[0]), r[2]
			case 'U':
				inUse++
			default:
				t.Fatalf("round %d: racer %d failed with something other than EADDRINUSE", round, r[0])
			}
		}
		if winners != 1 || inUse != racers-1 {
			t.Fatalf("round %d: %d winners, %d EADDRINUSE; want exactly 1 winner", round, winners, inUse)
		}
		got := make([]byte, 1)
		if kind == 's' {
			c, err := DialStream(bg, path)
			if err != nil {
				t.Fatalf("round %d: the winner is unreachable: %v", round, err)
			}
			_, err = io.ReadFull(c, got)
			c.Close()
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		} else {
			c, err := DialSeqpacket(bg, path)
			if err != nil {
				t.Fatalf("round %d: the winner is unreachable: %v", round, err)
			}
			_, err = c.Recv(bg, got)
			c.Close()
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if int(got[0]) != winner {
			t.Fatalf("round %d: a client reached racer %d, but racer %d won", round, got[0], winner)
		}
		if r := next(); r[1] != 'C' || int(r[0]) != winner {
			t.Fatalf("round %d: want the winner's close, got %q", round, r)
		}
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("round %d: the winner's Close left its socket file: %v", round, err)
		}
	}
	closeGate()
	for _, p := range procs {
		p.MustSucceed()
	}
	t.Logf("%d racers × %d rounds (%d over a stale file): one winner each", racers, rounds, staleRounds)
}
