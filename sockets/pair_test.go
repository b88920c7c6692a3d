package sockets

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
)

// rawSocketpairHelper tries socketpair(AF_INET, SOCK_RAW, 0) as an unprivileged user.
var _ = ipctest.Helper("socketpair-raw", func([]string) int {
	_, err := Socketpair(unix.AF_INET, unix.SOCK_RAW, 0)
	if !errors.Is(err, unix.EPROTONOSUPPORT) {
		fmt.Println("raw socketpair as uid", os.Getuid(), ":", err)
		return 1
	}
	return 0
})

func TestSocketpairConformance(t *testing.T) {
	t.Run("SOCK-01", func(t *testing.T) {
		cases := []struct {
			name               string
			domain, typ, proto int
			want               error
		}{
			{"bad domain", 400, unix.SOCK_STREAM, 0, unix.EAFNOSUPPORT},
			{"bad type", unix.AF_UNIX, 75, 0, unix.EINVAL},
			// Go cannot pass a bad pointer; the wrapper instead rejects bad flag bits
			// and a zero type before the call.
			{"pre-validated flag bits", unix.AF_UNIX, unix.SOCK_STREAM | 1<<20, 0, ipc.ErrInvalid},
			{"pre-validated zero type", unix.AF_UNIX, 0, 0, ipc.ErrInvalid},
			{"UDP pair", unix.AF_INET, unix.SOCK_DGRAM, 0, unix.EOPNOTSUPP},
			{"TCP pair", unix.AF_INET, unix.SOCK_STREAM, 0, unix.EOPNOTSUPP},
			{"TCP dgram", unix.AF_INET, unix.SOCK_DGRAM, unix.IPPROTO_TCP, unix.EPROTONOSUPPORT},
			{"ICMP stream", unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_ICMP, unix.EPROTONOSUPPORT},
		}
		for _, c := range cases {
			fds, err := Socketpair(c.domain, c.typ, c.proto)
			if !errors.Is(err, c.want) {
				t.Errorf("%s: %v, want %v", c.name, err, c.want)
			}
			var oe *ipc.OpError
			if err != nil && !errors.As(err, &oe) {
				t.Errorf("%s: %T is not *ipc.OpError", c.name, err)
			}
			if fds != [2]int{-1, -1} {
				t.Errorf("%s: fds %v on error", c.name, fds)
			}
		}
		// Raw as non-root.
		if os.Geteuid() == 0 {
			startHelper(t, "socketpair-raw", ipctest.AsUser(ipctest.Nobody)).MustSucceed()
		} else if _, err := Socketpair(unix.AF_INET, unix.SOCK_RAW, 0); !errors.Is(err, unix.EPROTONOSUPPORT) {
			t.Errorf("raw: %v, want EPROTONOSUPPORT", err)
		}
		// AF_UNIX DGRAM ok.
		fds, err := Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
		if err != nil {
			t.Fatalf("AF_UNIX dgram: %v", err)
		}
		unix.Close(fds[0])
		unix.Close(fds[1])
	})

	t.Run("SOCK-02", func(t *testing.T) {
		fds, err := Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, fd := range fds {
			checkFlags(t, "socketpair end", fd, true)
			unix.Close(fd)
		}
		// Accepted descriptors: close-on-exec, and non-blocking in poller mode.
		poller := WithWait(ipc.WaitPoller)
		l, err := ListenStream(sockPath(t, "s"), poller)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		d, err := DialStream(bg, l.Addr().String(), poller)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		c, err := l.AcceptStream(bg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		checkFlags(t, "accepted", c.Fd(), true)
		checkFlags(t, "dialled", d.Fd(), true)
	})
}

// checkFlags asserts FD_CLOEXEC and (if nonblock) O_NONBLOCK on fd.
func checkFlags(t *testing.T, what string, fd int, nonblock bool) {
	t.Helper()
	fdfl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fdfl&unix.FD_CLOEXEC == 0 {
		t.Errorf("%s: FD_CLOEXEC not set", what)
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := fl&unix.O_NONBLOCK != 0; got != nonblock {
		t.Errorf("%s: O_NONBLOCK = %v, want %v", what, got, nonblock)
	}
}
