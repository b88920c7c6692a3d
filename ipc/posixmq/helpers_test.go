package posixmq_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/posixmq"
)

// Helpers (peer processes). Each returns 0 when what it observed is what the test
// expects, and prints why not otherwise.

// errnoArg parses an errno given as a number ("0" for success), or several
// separated by "|" (any of them).
func errnoArg(s string) error {
	var errs []error
	for _, f := range strings.Split(s, "|") {
		if n, err := strconv.Atoi(f); err == nil && n != 0 {
			errs = append(errs, unix.Errno(n))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return anyOf(errs)
}

// anyOf matches any of its errors.
type anyOf []error

func (a anyOf) Error() string { return fmt.Sprint([]error(a)) }
func (a anyOf) Is(target error) bool {
	for _, e := range a {
		if e == target {
			return true
		}
	}
	return false
}

func errnoStr(e unix.Errno) string { return strconv.Itoa(int(e)) }

// check compares err with the expected errno (nil: success).
func check(what string, err, want error) int {
	if want == nil {
		if err != nil {
			fmt.Printf("%s: got %v, want success\n", what, err)
			return 1
		}
		return 0
	}
	if a, ok := want.(anyOf); ok {
		for _, e := range a {
			if errors.Is(err, e) {
				fmt.Printf("%s: %v\n", what, err)
				return 0
			}
		}
	} else if errors.Is(err, want) {
		return 0
	}
	fmt.Printf("%s: got %v, want %v\n", what, err, want)
	return 1
}

func accessOpt(s string) []posixmq.Option {
	switch s {
	case "r":
		return []posixmq.Option{posixmq.ReadOnly()}
	case "w":
		return []posixmq.Option{posixmq.WriteOnly()}
	}
	return nil
}

// mq-open: Open(name, access) and compare with the expected errno.
var _ = ipctest.Helper("mq-open", func(args []string) int {
	q, err := posixmq.Open(args[0], accessOpt(args[1])...)
	if err == nil {
		q.Close()
	}
	return check("open "+args[1], err, errnoArg(args[2]))
})

// mq-create-attr: Create(name, WithAttr(maxmsg, msgsize)) and compare.
var _ = ipctest.Helper("mq-create-attr", func(args []string) int {
	maxmsg, _ := strconv.Atoi(args[1])
	msgsize, _ := strconv.Atoi(args[2])
	q, err := posixmq.Create(args[0], posixmq.WithAttr(maxmsg, msgsize))
	if err == nil {
		q.Close()
		posixmq.Remove(args[0])
	}
	return check("create", err, errnoArg(args[3]))
})

// mq-unlink: Remove(name) and compare.
var _ = ipctest.Helper("mq-unlink", func(args []string) int {
	return check("unlink", posixmq.Remove(args[0]), errnoArg(args[1]))
})

// mq-queues-max: create queues name.0, name.1, ... until the kernel refuses; expect
// exactly args[1] to succeed and the next to fail with ENOSPC. Leaves them for the
// test to unlink.
var _ = ipctest.Helper("mq-queues-max", func(args []string) int {
	want, _ := strconv.Atoi(args[1])
	for i := 0; ; i++ {
		q, err := posixmq.Create(fmt.Sprintf("%s.%d", args[0], i), posixmq.WithAttr(1, 16))
		if err != nil {
			if i != want {
				fmt.Printf("created %d queues before %v, want %d\n", i, err, want)
				return 1
			}
			return check("create beyond queues_max", err, unix.ENOSPC)
		}
		q.Close()
		if i > want {
			fmt.Printf("created %d queues, limit %d not enforced\n", i+1, want)
			return 1
		}
	}
})

// mq-emfile: lower RLIMIT_NOFILE to the descriptors already open, then Open.
var _ = ipctest.Helper("mq-emfile", func(args []string) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	highest := 0
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil && n > highest {
			highest = n
		}
	}
	// Allow no descriptor above the highest open one, then fill the holes below it.
	lim := unix.Rlimit{Cur: uint64(highest + 1), Max: uint64(highest + 1)}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Println("setrlimit:", err)
		return 1
	}
	for {
		if _, err := unix.Dup(0); err != nil {
			if err != unix.EMFILE {
				fmt.Println("dup:", err)
				return 1
			}
			break
		}
	}
	_, err = posixmq.Open(args[0])
	return check("open at RLIMIT_NOFILE", err, unix.EMFILE)
})

// mq-excl-race: wait for the go, then Create; exit 0 if created, 10 on EEXIST.
var _ = ipctest.Helper("mq-excl-race", func(args []string) int {
	ipctest.Await()
	q, err := posixmq.Create(args[0])
	if err == nil {
		q.Close()
		return 0
	}
	if errors.Is(err, unix.EEXIST) {
		return 10
	}
	fmt.Println(err)
	return 1
})

// mq-peer: the other side of TestCrossProcess/Exchange. It receives three messages,
// expecting them highest priority first, then sends each back with priority+1, in
// reverse order of arrival.
var _ = ipctest.Helper("mq-peer", func(args []string) int {
	in, err := posixmq.Open(args[0], posixmq.ReadOnly())
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer in.Close()
	out, err := posixmq.Open(args[1], posixmq.WriteOnly(), posixmq.WithWait(ipc.WaitKernel))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer out.Close()
	ipctest.Signal()
	ipctest.Await() // all three messages are queued now
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	buf := make([]byte, 64)
	type msg struct {
		data string
		prio uint
	}
	var got []msg
	for range 3 {
		n, prio, err := in.Recv(ctx, buf)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		got = append(got, msg{string(buf[:n]), prio})
	}
	if fmt.Sprint(got) != "[{urgent 7} {normal-1 2} {normal-2 2}]" {
		fmt.Printf("received %v\n", got)
		return 1
	}
	for i := len(got) - 1; i >= 0; i-- {
		if err := out.Send(ctx, []byte("re:"+got[i].data), got[i].prio+1); err != nil {
			fmt.Println(err)
			return 1
		}
	}
	return 0
})

// mq-notified: start a Notifier on the queue, signal, and wait for a notification;
// then check the message is still there to receive.
var _ = ipctest.Helper("mq-notified", func(args []string) int {
	q, err := posixmq.Open(args[0])
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer q.Close()
	n, err := q.Notify()
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer n.Stop()
	ipctest.Signal()
	select {
	case <-n.C:
	case <-time.After(time.Minute):
		fmt.Println("no notification")
		return 1
	}
	buf := make([]byte, 64)
	k, _, err := q.TryRecv(buf)
	if err != nil || string(buf[:k]) != "ping" {
		fmt.Printf("after notification: %q %v\n", buf[:k], err)
		return 1
	}
	return 0
})

// mq-unlinked: use an inherited descriptor of a queue whose name is gone.
var _ = ipctest.Helper("mq-unlinked", func(args []string) int {
	if _, err := posixmq.Open(args[0]); !errors.Is(err, unix.ENOENT) {
		fmt.Println("open by the unlinked name:", err)
		return 1
	}
	q, err := posixmq.FromFd(ipctest.Fd(0))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer q.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	buf := make([]byte, 64)
	n, prio, err := q.Recv(ctx, buf)
	if err != nil || string(buf[:n]) != "before" || prio != 1 {
		fmt.Printf("recv: %q %d %v\n", buf[:n], prio, err)
		return 1
	}
	if err := q.Send(ctx, []byte("from child"), 3); err != nil {
		fmt.Println(err)
		return 1
	}
	return 0
})

// mq-notify-register: try to register a SIGEV_NONE notification; compare.
var _ = ipctest.Helper("mq-notify-register", func(args []string) int {
	q, err := posixmq.Open(args[0])
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer q.Close()
	sev := sys.Sigevent{Notify: sys.SigevNone}
	return check("mq_notify", sys.MqNotify(q.Fd(), &sev), errnoArg(args[1]))
})

// mq-sigevent-signal: started with SIGUSR2 blocked in every thread (the test blocks
// it before starting us), register SIGEV_SIGNAL(SIGUSR2, value 42), signal, and read
// the queued signal's siginfo from a signalfd: si_code SI_MESGQ, si_pid and si_uid of
// the sender (args[1], args[2]).
var _ = ipctest.Helper("mq-sigevent-signal", func(args []string) int {
	var set unix.Sigset_t
	set.Val[(unix.SIGUSR2-1)/64] |= 1 << ((uint(unix.SIGUSR2) - 1) % 64)
	var cur unix.Sigset_t
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, nil, &cur); err != nil || cur.Val[0]&set.Val[0] == 0 {
		fmt.Println("SIGUSR2 is not blocked in the helper:", err)
		return 1
	}
	sfd, err := unix.Signalfd(-1, &set, unix.SFD_CLOEXEC)
	if err != nil {
		fmt.Println("signalfd:", err)
		return 1
	}
	defer unix.Close(sfd)
	q, err := posixmq.Open(args[0])
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer q.Close()
	sev := sys.Sigevent{Notify: sys.SigevSignal, Signo: int32(unix.SIGUSR2)}
	sev.SetValueInt(42)
	if err := sys.MqNotify(q.Fd(), &sev); err != nil {
		fmt.Println("mq_notify:", err)
		return 1
	}
	ipctest.Signal()
	// struct signalfd_siginfo: ssi_signo u32 @0, ssi_code s32 @8, ssi_pid u32 @12,
	// ssi_uid u32 @16, ssi_int s32 @44; 128 bytes in all.
	buf := make([]byte, 128)
	if _, err := unix.Read(sfd, buf); err != nil {
		fmt.Println("read signalfd:", err)
		return 1
	}
	ne := binary.NativeEndian
	got := fmt.Sprintf("signo=%d code=%d pid=%d uid=%d int=%d", ne.Uint32(buf[0:]), int32(ne.Uint32(buf[8:])),
		ne.Uint32(buf[12:]), ne.Uint32(buf[16:]), int32(ne.Uint32(buf[44:])))
	want := fmt.Sprintf("signo=%d code=%d pid=%s uid=%s int=42", unix.SIGUSR2, sys.SiMesgq, args[1], args[2])
	if got != want {
		fmt.Printf("siginfo %s, want %s\n", got, want)
		return 1
	}
	return 0
})

// joinArgs is a small helper for readable helper argument lists.
func joinArgs(a ...any) []string {
	out := make([]string, len(a))
	for i, v := range a {
		out[i] = fmt.Sprint(v)
	}
	return out
}
