package sockets

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

// TestKernelRaces: SOCK-07 and SOCK-08, "no crash" rows, run in helper processes so
// that descriptor-number reuse after the racing closes cannot touch the test binary.
func TestKernelRaces(t *testing.T) {
	t.Run("SOCK-07", func(t *testing.T) {
		startHelper(t, "race-sendmsg-release").MustSucceed()
	})
	t.Run("SOCK-08", func(t *testing.T) {
		startHelper(t, "race-oob-recvmmsg").MustSucceed()
		// The library itself never uses MSG_OOB (S14): no non-test source mentions it.
		files, err := filepath.Glob("*.go")
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(data), "MSG_OOB") {
				t.Errorf("%s uses MSG_OOB", f)
			}
		}
	})
}

// Helper: sendmsg racing the peer's close (unix_release), for stream, dgram and
// seqpacket. Every send either succeeds or reports the peer gone.
var _ = ipctest.Helper("race-sendmsg-release", func([]string) int {
	for _, typ := range []int{unix.SOCK_STREAM, unix.SOCK_DGRAM, unix.SOCK_SEQPACKET} {
		for i := 0; i < 200; i++ {
			fds, err := Socketpair(unix.AF_UNIX, typ, 0)
			if err != nil {
				fmt.Println(err)
				return 1
			}
			var wg sync.WaitGroup
			wg.Add(1)
			var serr error
			go func() {
				defer wg.Done()
				for j := 0; j < 20; j++ {
					_, err := sys.Sendmsg(fds[0], []byte("race"), nil, nil, unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
					if err != nil && !errors.Is(ipc.MapErrno(err.(unix.Errno)), ipc.ErrPeerGone) &&
						err != unix.ECONNREFUSED && err != unix.EAGAIN && err != unix.ENOTCONN {
						serr = err
						return
					}
				}
			}()
			runtime.Gosched()
			unix.Close(fds[1])
			wg.Wait()
			unix.Close(fds[0])
			if serr != nil {
				fmt.Println("sendmsg racing close:", serr)
				return 1
			}
		}
	}
	return 0
})

// Helper: repeated AF_UNIX MSG_OOB send/peek/receive (CVE-2025-38236) and recvmmsg
// racing close (CVE-2016-7117).
var _ = ipctest.Helper("race-oob-recvmmsg", func([]string) int {
	fds, err := Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	b := make([]byte, 1)
	for i := 0; i < 100; i++ {
		_, _ = sys.Sendmsg(fds[1], []byte("o"), nil, nil, unix.MSG_OOB|unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
		_, _ = sys.Sendmsg(fds[1], []byte("n"), nil, nil, unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
		_, _, _, _ = sys.Recvmsg(fds[0], b, nil, nil, unix.MSG_OOB|unix.MSG_DONTWAIT)
		_, _, _, _ = sys.Recvmsg(fds[0], b, nil, nil, unix.MSG_PEEK|unix.MSG_DONTWAIT)
		_, _, _, _ = sys.Recvmsg(fds[0], b, nil, nil, unix.MSG_OOB|unix.MSG_DONTWAIT)
		_, _, _, _ = sys.Recvmsg(fds[0], b, nil, nil, unix.MSG_DONTWAIT)
	}
	unix.Close(fds[0])
	unix.Close(fds[1])
	for i := 0; i < 200; i++ {
		fds, err := Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 8)
			for j := 0; j < 20; j++ {
				_, _ = sys.Recvmmsg(fds[0], buf, unix.MSG_DONTWAIT)
			}
		}()
		_, _ = sys.Sendmsg(fds[1], []byte("m"), nil, nil, unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
		unix.Close(fds[1])
		unix.Close(fds[0])
		wg.Wait()
	}
	return 0
})
