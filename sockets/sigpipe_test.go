package sockets

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

// TestSIGPIPE (S13): a write to a connection whose peer has gone returns
// ErrPeerGone and raises no SIGPIPE. Go ignores SIGPIPE on descriptors other than 1
// and 2, which would hide a missing MSG_NOSIGNAL, so the helper blocks SIGPIPE on its
// thread and looks for it pending: the library's sends must leave none, a plain
// write(2) (the control) leaves one.
func TestSIGPIPE(t *testing.T) {
	t.Run("S13", func(t *testing.T) {
		bothWaits(t, func(t *testing.T, w ipc.WaitStrategy) {
			startHelper(t, "sigpipe", ipctest.WithArgs(w.String())).MustSucceed()
		})
	})
}

var _ = ipctest.Helper("sigpipe", func(args []string) int {
	w, _ := ipc.ParseWaitStrategy(args[0])
	runtime.LockOSThread()
	var set unix.Sigset_t
	set.Val[0] = 1 << (uint(unix.SIGPIPE) - 1)
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil); err != nil {
		fmt.Println(err)
		return 1
	}
	a, b, err := StreamPair(WithWait(w))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	b.Close()
	s, c, err := SeqpacketPair(WithWait(w))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	c.Close()
	if _, err := a.Write([]byte("x")); !errors.Is(err, ipc.ErrPeerGone) || !errors.Is(err, unix.EPIPE) {
		fmt.Println("stream write to a gone peer:", err)
		return 1
	}
	if _, err := a.WriteMsg(bg, []byte("x"), []int{0}); !errors.Is(err, ipc.ErrPeerGone) {
		fmt.Println("WriteMsg to a gone peer:", err)
		return 1
	}
	if err := s.Send(bg, []byte("x")); !errors.Is(err, ipc.ErrPeerGone) {
		fmt.Println("seqpacket send to a gone peer:", err)
		return 1
	}
	if sigpipePending() {
		fmt.Println("the library's sends raised SIGPIPE")
		return 1
	}
	// Control: write(2) without MSG_NOSIGNAL raises it.
	if _, err := sys.Write(a.Fd(), []byte("x")); err != unix.EPIPE {
		fmt.Println("control write:", err)
		return 1
	}
	if !sigpipePending() {
		fmt.Println("control failed: write(2) left no SIGPIPE pending")
		return 1
	}
	a.Close()
	s.Close()
	return 0
})

// sigpipePending reports whether SIGPIPE is pending for this thread or the process.
func sigpipePending() bool {
	data, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "SigPnd" && k != "ShdPnd") {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err == nil && mask&(1<<(uint(unix.SIGPIPE)-1)) != 0 {
			return true
		}
	}
	return false
}
