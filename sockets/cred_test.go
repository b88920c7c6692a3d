package sockets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/internal/sys"
)

// Helper: over the stream socket File(0) and the datagram socket File(1), sends a
// message with its true credentials, one with none (the kernel attaches them), and
// tries to forge uid 0 and pid 1, which must fail with EPERM.
var _ = ipctest.Helper("cred-forge", func([]string) int {
	me := Cred{Pid: int32(os.Getpid()), Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())}
	s, err := FileStreamConn(ipctest.File(0))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer s.Close()
	d, err := FileDgramConn(ipctest.File(1))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer d.Close()
	for _, c := range []interface {
		WriteMsgCred(ctx context.Context, p []byte, fds []int, cred Cred) (int, error)
		WriteMsg(ctx context.Context, p []byte, fds []int) (int, error)
	}{s, d} {
		forged := me
		forged.Uid = 0
		if _, err := c.WriteMsgCred(bg, []byte("U"), nil, forged); !errors.Is(err, unix.EPERM) {
			fmt.Println("forged uid 0:", err)
			return 1
		}
		forged = me
		forged.Pid = 1
		if _, err := c.WriteMsgCred(bg, []byte("P"), nil, forged); !errors.Is(err, unix.EPERM) {
			fmt.Println("forged pid 1:", err)
			return 1
		}
		if _, err := c.WriteMsgCred(bg, []byte("T"), nil, me); err != nil {
			fmt.Println("true credentials:", err)
			return 1
		}
		if _, err := c.WriteMsg(bg, []byte("N"), nil); err != nil {
			fmt.Println("no credentials:", err)
			return 1
		}
	}
	ipctest.Await()
	return 0
})

// Helper: dials the stream socket at args[0] and waits.
var _ = ipctest.Helper("dial-wait", func(args []string) int {
	c, err := DialStream(bg, args[0])
	if err != nil {
		fmt.Println("dial:", err)
		return 1
	}
	defer c.Close()
	ipctest.Signal()
	ipctest.Await()
	return 0
})

// sharedDir makes a directory that we own and others may traverse (0711) but not
// list or write, outside the 0700 test temp tree, for peers with another uid.
func sharedDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "ipclab-sockets-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func TestCredentials(t *testing.T) {
	t.Run("SOCK-06", func(t *testing.T) {
		ipctest.RequireRoot(t)
		path := filepath.Join(sharedDir(t), "s")
		l, err := ListenStream(path, WithMode(0o666))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		p := startHelper(t, "dial-wait", ipctest.AsUser(ipctest.Nobody), ipctest.WithArgs(path))
		c, err := l.AcceptStream(bg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		p.Await()
		got, err := c.PeerCred()
		if err != nil {
			t.Fatal(err)
		}
		want := Cred{Pid: int32(p.Pid()), Uid: ipctest.Nobody, Gid: ipctest.Nobody}
		if got != want {
			t.Errorf("SO_PEERCRED = %+v, want %+v", got, want)
		}
		// SO_PEERPIDFD names the same process.
		pf, err := c.PeerPidfd()
		if errors.Is(err, unix.ENOPROTOOPT) {
			t.Log("SO_PEERPIDFD not supported by this kernel")
		} else if err != nil {
			t.Fatal(err)
		} else {
			checkFlags(t, "pidfd", int(pf.Fd()), false)
			if pid := pidfdPid(t, pf); pid != p.Pid() {
				t.Errorf("pidfd refers to pid %d, want %d", pid, p.Pid())
			}
			pf.Close()
		}
		p.Signal()
		p.MustSucceed()
	})

	t.Run("S8", func(t *testing.T) {
		ipctest.RequireRoot(t)
		// Same-uid policy: a connection from another user is refused at Accept.
		path := filepath.Join(sharedDir(t), "door")
		l, err := ListenSeqpacket(path, WithMode(0o666), WithPeerPolicy(SameUser()))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		p := startHelper(t, "dial-seqpacket", ipctest.AsUser(ipctest.Nobody), ipctest.WithArgs(path))
		if c, err := l.Accept(bg); !errors.Is(err, ErrPeerRejected) {
			if c != nil {
				c.Close()
			}
			t.Fatalf("Accept from uid %d: %v, want ErrPeerRejected", ipctest.Nobody, err)
		}
		p.MustSucceed() // the helper saw its connection closed
		forgedCreds(t)
	})

	t.Run("SOCK-09", forgedCreds)

	t.Run("SOCK-10/SCMCredentials", func(t *testing.T) {
		// Our own credentials, stream and datagram, received with flags 0 and with
		// MSG_CMSG_CLOEXEC.
		me := Cred{Pid: int32(os.Getpid()), Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())}
		a, b := streamPair(t, PassCred())
		c, d := dgramPair(t, PassCred())
		for _, flags := range []int{0, unix.MSG_CMSG_CLOEXEC} {
			if _, err := b.WriteMsg(bg, []byte("s"), nil); err != nil {
				t.Fatal(err)
			}
			if err := d.Send(bg, []byte("d")); err != nil {
				t.Fatal(err)
			}
			for _, fd := range []int{a.Fd(), c.Fd()} {
				oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
				_, oobn, _, err := sys.Recvmsg(fd, make([]byte, 4), oob, nil, flags|unix.MSG_DONTWAIT)
				if err != nil {
					t.Fatal(err)
				}
				_, _, got, ok := parseControl(oob[:oobn], nil)
				if !ok || got != me {
					t.Errorf("flags %#x: credentials %+v (%v), want %+v", flags, got, ok, me)
				}
			}
		}
		// And through the API.
		if _, err := b.WriteMsgCred(bg, []byte("x"), nil, me); err != nil {
			t.Fatal(err)
		}
		if _, _, got, err := a.ReadMsgCred(bg, make([]byte, 4), nil); err != nil || got != me {
			t.Errorf("ReadMsgCred = %+v, %v", got, err)
		}
	})
}

// forgedCreds: an unprivileged peer that claims uid 0 or pid 1 in SCM_CREDENTIALS is
// refused by the kernel (EPERM); what it may send arrives with its true identity.
func forgedCreds(t *testing.T) {
	ipctest.RequireRoot(t)
	sa, sb := streamPair(t, PassCred())
	da, db := dgramPair(t, PassCred())
	sf, err := sb.File()
	if err != nil {
		t.Fatal(err)
	}
	df, err := db.File()
	if err != nil {
		t.Fatal(err)
	}
	p := startHelper(t, "cred-forge", ipctest.AsUser(ipctest.Nobody), ipctest.WithFiles(sf, df))
	sf.Close()
	df.Close()
	want := Cred{Uid: ipctest.Nobody, Gid: ipctest.Nobody}
	for _, c := range []*base{sa.base, da.base} {
		for _, tag := range []string{"T", "N"} {
			buf := make([]byte, 1)
			n, _, got, err := c.ReadMsgCred(bg, buf, nil)
			if err != nil {
				t.Fatal(err)
			}
			want.Pid = int32(p.Pid())
			if string(buf[:n]) != tag || got != want {
				t.Errorf("%s: message %q from %+v, want %q from %+v", c, buf[:n], got, tag, want)
			}
		}
	}
	p.Signal()
	p.MustSucceed()
}

// Helper: dials the seqpacket socket at args[0] and expects to be cut off.
var _ = ipctest.Helper("dial-seqpacket", func(args []string) int {
	c, err := DialSeqpacket(bg, args[0])
	if err != nil {
		fmt.Println("dial:", err)
		return 1
	}
	defer c.Close()
	if _, err := c.Recv(bg, make([]byte, 8)); err == nil {
		fmt.Println("the server talked to a rejected peer")
		return 1
	}
	return 0
})

// pidfdPid reads the pid a pidfd refers to from /proc/self/fdinfo.
func pidfdPid(t *testing.T, f *os.File) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "Pid:"); ok {
			pid, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return pid
}

// TestDgramPolicySurvivesPassCredOff: a datagram socket with a peer policy needs every
// sender's credentials, so SetPassCred(false) must not turn them off (it did, and every
// receive then failed with ErrNoCred).
func TestDgramPolicySurvivesPassCredOff(t *testing.T) {
	a, b := dgramPair(t, WithPeerPolicy(SameUser()))
	if err := b.SetPassCred(false); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(bg, []byte("x")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if n, err := b.Recv(bg, buf); err != nil || string(buf[:n]) != "x" {
		t.Fatalf("recv with the policy after SetPassCred(false): %q %v", buf[:n], err)
	}
}
