package sockets

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
)

// Helper: opens the file named by args[0], writes args[1] into it and sends its
// descriptor over the stream socket File(0) (syscall TestPassFD, child side).
var _ = ipctest.Helper("passfd-send", func(args []string) int {
	c, err := FileStreamConn(ipctest.File(0))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer c.Close()
	f, err := os.OpenFile(args[0], os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	if _, err := f.WriteString(args[1]); err != nil {
		fmt.Println(err)
		return 1
	}
	if _, err := c.WriteMsg(bg, []byte("F"), []int{int(f.Fd())}); err != nil {
		fmt.Println(err)
		return 1
	}
	f.Close() // the descriptor in flight keeps the file open
	ipctest.Await()
	return 0
})

// Helper: receives a descriptor over File(0), writes args[0] through it and
// acknowledges.
var _ = ipctest.Helper("passfd-use", func(args []string) int {
	c, err := FileSeqpacketConn(ipctest.File(0))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer c.Close()
	fds := make([]int, 1)
	_, nfds, err := c.ReadMsg(bg, make([]byte, 16), fds)
	if err != nil || nfds != 1 {
		fmt.Println("ReadMsg:", nfds, err)
		return 1
	}
	if _, err := unix.Pwrite(fds[0], []byte(args[0]), 0); err != nil {
		fmt.Println("pwrite:", err)
		return 1
	}
	unix.Close(fds[0])
	if err := c.Send(bg, []byte("ok")); err != nil {
		fmt.Println(err)
		return 1
	}
	return 0
})

// Helper: prints the target of every open descriptor, one per line.
var _ = ipctest.Helper("list-fds", func([]string) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil {
			fmt.Println("FD", e.Name(), target)
		}
	}
	return 0
})

// childFds runs list-fds and returns the targets of its open descriptors.
func childFds(t *testing.T) []string {
	t.Helper()
	p := startHelper(t, "list-fds")
	p.MustSucceed()
	var out []string
	sc := bufio.NewScanner(strings.NewReader(p.Output()))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "FD" {
			out = append(out, f[2])
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestFdPassingAcrossProcesses: a child sends a descriptor to us (syscall
// TestPassFD), we read the file through it; we send one to a child, which writes
// through it; and a received descriptor is not inherited by our children (S9).
func TestFdPassingAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "s9-marker-"+strconv.Itoa(os.Getpid()))

	t.Run("SOCK-10/PassFD", func(t *testing.T) {
		ours, theirs := streamPair(t)
		tf, err := theirs.File()
		if err != nil {
			t.Fatal(err)
		}
		p := startHelper(t, "passfd-send", ipctest.WithFiles(tf), ipctest.WithArgs(marker, "from the child"))
		tf.Close()
		theirs.Close()
		fds := make([]int, 1)
		_, nfds, err := ours.ReadMsg(bg, make([]byte, 4), fds)
		if err != nil || nfds != 1 {
			t.Fatalf("ReadMsg: %d fds, %v", nfds, err)
		}
		defer unix.Close(fds[0])
		p.Signal()
		p.MustSucceed()
		if got := readFd(t, fds[0]); got != "from the child" {
			t.Errorf("read %q through the received fd", got)
		}
		checkFlags(t, "fd received from a child", fds[0], false)

		// S9: the received descriptor does not leak into our children.
		t.Run("S9", func(t *testing.T) {
			if contains(childFds(t), marker) {
				t.Fatalf("child inherited the received descriptor for %s", marker)
			}
			// Control: without close-on-exec the same child does see it, so the check
			// above can fail.
			dup, err := unix.Dup(fds[0])
			if err != nil {
				t.Fatal(err)
			}
			seen := contains(childFds(t), marker)
			unix.Close(dup)
			if !seen {
				t.Fatal("control failed: a descriptor without FD_CLOEXEC was not seen by the child")
			}
		})
	})

	t.Run("fd-usable-in-child", func(t *testing.T) {
		ours, theirs := seqPair(t)
		tf, err := theirs.File()
		if err != nil {
			t.Fatal(err)
		}
		p := startHelper(t, "passfd-use", ipctest.WithFiles(tf), ipctest.WithArgs("written by the child"))
		tf.Close()
		theirs.Close()
		f := tempFile(t, "")
		if _, err := ours.WriteMsg(bg, []byte("F"), []int{int(f.Fd())}); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 8)
		if n, err := ours.Recv(bg, buf); err != nil || string(buf[:n]) != "ok" {
			t.Fatalf("ack: %q, %v", buf[:n], err)
		}
		p.MustSucceed()
		if got := readFd(t, int(f.Fd())); got != "written by the child" {
			t.Errorf("file holds %q", got)
		}
	})
}
