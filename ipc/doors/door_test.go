package doors

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/sockets"
)

// Helpers: processes that use a door the test serves, or serve one it uses.

// door-echo-client opens args[0] and checks echoes of the sizes args[2:]; args[1]
// is the shm threshold ("0": socket only) and "kernel" as args[1] suffix waits in
// the kernel.
var _ = ipctest.Helper("door-echo-client", func(args []string) int {
	opts := []ClientOption{ShmThreshold(atoi(strings.TrimSuffix(args[1], "k")))}
	if strings.HasSuffix(args[1], "k") {
		opts = append(opts, ClientWait(ipc.WaitKernel))
	}
	c, err := Open(bg, args[0], opts...)
	if err != nil {
		return helperFail("open: %v", err)
	}
	defer c.Close()
	sizes := make([]int, 0, len(args)-2)
	for _, a := range args[2:] {
		sizes = append(sizes, atoi(a))
	}
	if err := echoSizes(c, sizes...); err != nil {
		return helperFail("%v", err)
	}
	if c.Info().Pid != os.Getppid() {
		return helperFail("info pid %d, server is %d", c.Info().Pid, os.Getppid())
	}
	return 0
})

// door-file-client calls the door descriptor it inherited (File(0)).
var _ = ipctest.Helper("door-file-client", func(args []string) int {
	c, err := NewClient(bg, ipctest.File(0))
	if err == nil {
		defer c.Close()
		_, _, err = c.Call(bg, []byte("via a passed descriptor"), nil)
	}
	if len(args) > 0 && args[0] == "want-perm" {
		if !errors.Is(err, ErrPermission) || !errors.Is(err, os.ErrPermission) {
			return helperFail("call as uid %d: %v, want ErrPermission", os.Geteuid(), err)
		}
		return 0
	}
	if err != nil {
		return helperFail("call: %v", err)
	}
	return 0
})

// door-open-expect opens args[0] and calls it; args[1] is "ok" or "perm".
var _ = ipctest.Helper("door-open-expect", func(args []string) int {
	c, err := Open(bg, args[0])
	if err == nil {
		_, _, err = c.Call(bg, []byte("hello"), nil)
		c.Close()
	}
	switch args[1] {
	case "ok":
		if err != nil {
			return helperFail("uid %d: %v", os.Geteuid(), err)
		}
	case "perm":
		if !errors.Is(err, ErrPermission) || !errors.Is(err, unix.EACCES) {
			return helperFail("uid %d: %v, want ErrPermission", os.Geteuid(), err)
		}
	}
	return 0
})

// TestCallAcrossProcesses: echoes of every size through every data path, served
// by a door whose connections wait in the poller (the default) and by one whose
// reading goroutines block in recvmsg (the fast paths: SendReadMsgCred).
func TestCallAcrossProcesses(t *testing.T) {
	for _, w := range []ipc.WaitStrategy{ipc.WaitPoller, ipc.WaitKernel} {
		t.Run(w.String(), func(t *testing.T) { callAcrossProcesses(t, w) })
	}
}

func callAcrossProcesses(t *testing.T, w ipc.WaitStrategy) {
	d, path := attach(t, echo, WithWait(w))
	for _, tc := range []struct {
		name      string
		threshold string
		sizes     []string
		split     bool
		shm       bool
	}{
		{"inline", "65536", []string{"1", "64", "4096", "16384"}, false, false},
		{"inline-kernel-wait", "65536k", []string{"1", "64", "16384"}, false, false},
		{"socket-large", "0", []string{"16385", "100000", "1048576"}, true, false},
		{"shm-large", "65536", []string{"65536", "1048576", "300000"}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			split0, shm0 := d.argPath[1].Load(), d.argPath[2].Load()
			rsplit0, rshm0 := d.resPath[1].Load(), d.resPath[2].Load()
			p := ipctest.Start(t, "door-echo-client", ipctest.WithArgs(append([]string{path, tc.threshold}, tc.sizes...)...))
			p.MustSucceed()
			n := int64(len(tc.sizes))
			wantSplit, wantShm := int64(0), int64(0)
			if tc.split {
				wantSplit = n
			}
			if tc.shm {
				wantShm = n
			}
			if got := d.argPath[1].Load() - split0; got != wantSplit {
				t.Errorf("%d arguments went split over the socket, want %d", got, wantSplit)
			}
			if got := d.argPath[2].Load() - shm0; got != wantShm {
				t.Errorf("%d arguments went through shared memory, want %d", got, wantShm)
			}
			if got := d.resPath[1].Load() - rsplit0; got != wantSplit {
				t.Errorf("%d results went split over the socket, want %d", got, wantSplit)
			}
			if got := d.resPath[2].Load() - rshm0; got != wantShm {
				t.Errorf("%d results went through shared memory, want %d", got, wantShm)
			}
		})
	}
}

func TestShmInPlace(t *testing.T) {
	d, path := attach(t, func(_ context.Context, c *Call) (*Reply, error) {
		return &Reply{Data: c.Data}, nil // the echo goes back without a copy
	}, ShmInPlace())
	ipctest.Start(t, "door-echo-client", ipctest.WithArgs(path, "65536", "70000", "1048576", "65536", "100", "300000")).MustSucceed()
	if got := d.argPath[2].Load(); got != 4 {
		t.Errorf("%d arguments through shared memory, want 4", got)
	}
	if got := d.resPath[2].Load(); got != 4 {
		t.Errorf("%d results through shared memory, want 4", got)
	}
}

// door-fds passes a pipe's write end to the door and expects "from server" in it,
// and a descriptor back holding "to client".
var _ = ipctest.Helper("door-fds", func(args []string) int {
	c, err := Open(bg, args[0])
	if err != nil {
		return helperFail("open: %v", err)
	}
	defer c.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return helperFail("pipe: %v", err)
	}
	defer r.Close()
	res, fds, err := c.Call(bg, []byte("fds please"), []int{int(w.Fd())})
	w.Close()
	if err != nil {
		return helperFail("call: %v", err)
	}
	if string(res) != "here" || len(fds) != 1 {
		return helperFail("reply %q with %d fds", res, len(fds))
	}
	back := os.NewFile(uintptr(fds[0]), "from door")
	defer back.Close()
	got, err := io.ReadAll(back)
	if err != nil || string(got) != "to client" {
		return helperFail("returned descriptor holds %q (%v)", got, err)
	}
	got, err = io.ReadAll(r)
	if err != nil || string(got) != "from server" {
		return helperFail("passed descriptor received %q (%v)", got, err)
	}
	if flags, err := unix.FcntlInt(uintptr(fds[0]), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
		return helperFail("returned descriptor not close-on-exec (%#x, %v)", flags, err)
	}
	return 0
})

func TestFdsBothWays(t *testing.T) {
	_, path := attach(t, func(_ context.Context, c *Call) (*Reply, error) {
		if len(c.Fds) != 1 {
			closeFds(c.Fds)
			return nil, fmt.Errorf("got %d descriptors", len(c.Fds))
		}
		w := os.NewFile(uintptr(c.Fds[0]), "from client")
		_, err := w.WriteString("from server")
		w.Close()
		if err != nil {
			return nil, err
		}
		r, pw, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		pw.WriteString("to client")
		pw.Close()
		fd, err := unix.Dup(int(r.Fd()))
		r.Close()
		if err != nil {
			return nil, err
		}
		return &Reply{Data: []byte("here"), Fds: []int{fd}, Release: true}, nil
	})
	ipctest.Start(t, "door-fds", ipctest.WithArgs(path)).MustSucceed()
}

func TestCredentialsAndPidfd(t *testing.T) {
	type seen struct {
		cred   sockets.Cred
		pidfd  int
		pfdErr error
	}
	got := make(chan seen, 1)
	_, path := attach(t, func(_ context.Context, c *Call) (*Reply, error) {
		s := seen{cred: c.Cred, pidfd: -1}
		f, err := c.Pidfd()
		s.pfdErr = err
		if err == nil {
			s.pidfd = pidOfPidfd(t, f)
			f.Close()
		}
		got <- s
		return nil, nil
	})
	p := ipctest.Start(t, "door-open-expect", ipctest.WithArgs(path, "ok"))
	p.MustSucceed()
	s := <-got
	if int(s.cred.Pid) != p.Pid() || s.cred.Uid != uint32(os.Geteuid()) || s.cred.Gid != uint32(os.Getegid()) {
		t.Errorf("handler saw %+v, want pid %d uid %d gid %d", s.cred, p.Pid(), os.Geteuid(), os.Getegid())
	}
	switch {
	case errors.Is(s.pfdErr, unix.ENOPROTOOPT):
		t.Logf("no SO_PEERPIDFD here: %v", s.pfdErr)
	case s.pfdErr != nil:
		t.Errorf("Pidfd: %v", s.pfdErr)
	case s.pidfd != p.Pid():
		t.Errorf("pidfd refers to pid %d, caller is %d", s.pidfd, p.Pid())
	}
}

// pidOfPidfd reads the pid a pidfd refers to from /proc/self/fdinfo.
func pidOfPidfd(t testing.TB, f *os.File) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", f.Fd()))
	if err != nil {
		t.Error(err)
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pid:"); ok {
			return atoi(strings.TrimSpace(v))
		}
	}
	return -1
}

func TestDoorDescriptorPassed(t *testing.T) {
	d := newDoor(t, echo)
	t.Run("NewClientFile", func(t *testing.T) {
		f, err := d.NewClientFile()
		if err != nil {
			t.Fatal(err)
		}
		ipctest.Start(t, "door-file-client", ipctest.Handover(f)).MustSucceed()
	})
	t.Run("Dup", func(t *testing.T) {
		path := t.TempDir() + "/door"
		if err := d.Attach(path); err != nil {
			t.Fatal(err)
		}
		defer d.Detach()
		c := open(t, path)
		f, err := c.Dup(bg)
		if err != nil {
			t.Fatal(err)
		}
		ipctest.Start(t, "door-file-client", ipctest.Handover(f)).MustSucceed()
		// The original connection is untouched.
		if err := echoSizes(c, 10); err != nil {
			t.Fatal(err)
		}
	})
}

// S8: only the server's uid by default, per connection and per call.
func TestPolicy(t *testing.T) {
	ipctest.RequireRoot(t)
	t.Run("S8-default-refuses-other-uid", func(t *testing.T) {
		_, path := attach(t, echo, WithSocketMode(0o666))
		ipctest.Start(t, "door-open-expect", ipctest.WithArgs(path, "perm"), ipctest.AsUser(ipctest.Nobody)).MustSucceed()
		ipctest.Start(t, "door-open-expect", ipctest.WithArgs(path, "ok")).MustSucceed()
	})
	t.Run("S8-allow-list", func(t *testing.T) {
		_, path := attach(t, echo, WithSocketMode(0o666), AllowUsers(0, ipctest.Nobody))
		ipctest.Start(t, "door-open-expect", ipctest.WithArgs(path, "ok"), ipctest.AsUser(ipctest.Nobody)).MustSucceed()
	})
	t.Run("S8-passed-descriptor-checked-per-call", func(t *testing.T) {
		// SO_PEERCRED of a NewClientFile connection names the server itself; the
		// per-call credentials still catch the other uid.
		d := newDoor(t, echo)
		f, err := d.NewClientFile()
		if err != nil {
			t.Fatal(err)
		}
		ipctest.Start(t, "door-file-client", ipctest.Handover(f), ipctest.WithArgs("want-perm"), ipctest.AsUser(ipctest.Nobody)).MustSucceed()
	})
}

// door-block-client calls args[0] with "block" and expects args[1]: "revoked".
var _ = ipctest.Helper("door-block-client", func(args []string) int {
	c, err := Open(bg, args[0])
	if err != nil {
		return helperFail("open: %v", err)
	}
	defer c.Close()
	_, _, err = c.CallBuf(bg, []byte("block"), nil, nil, nil) // the fast path
	if !errors.Is(err, ErrRevoked) || !errors.Is(err, unix.EBADF) {
		return helperFail("blocked call: %v, want ErrRevoked", err)
	}
	if _, _, err = c.Call(bg, []byte("again"), nil); !errors.Is(err, ErrRevoked) {
		return helperFail("call after revoke: %v, want ErrRevoked", err)
	}
	return 0
})

func TestRevokeDuringCall(t *testing.T) {
	started := make(chan struct{}, 1)
	cancelled := make(chan struct{}, 1)
	d, path := attach(t, func(ctx context.Context, c *Call) (*Reply, error) {
		started <- struct{}{}
		<-ctx.Done()
		cancelled <- struct{}{}
		return &Reply{Data: []byte("too late")}, nil
	})
	p := ipctest.Start(t, "door-block-client", ipctest.WithArgs(path))
	within(t, time.Minute, "call reaching the handler", started)
	if err := d.Revoke(); err != nil {
		t.Fatal(err)
	}
	within(t, time.Minute, "handler context cancelled by Revoke", cancelled)
	p.MustSucceed()
	if d.Info().Attr&AttrRevoked == 0 {
		t.Error("Info does not say revoked")
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("path still there after Revoke: %v", err)
	}
	if _, err := d.NewClientFile(); !errors.Is(err, ErrRevoked) {
		t.Errorf("NewClientFile after Revoke: %v", err)
	}
}

func TestUnref(t *testing.T) {
	unref := make(chan struct{}, 4)
	d, path := attach(t, echo, OnUnref(func() { unref <- struct{}{} }))
	if d.Info().Attr&AttrUnref == 0 {
		t.Error("AttrUnref not set")
	}
	c := open(t, path)
	ipctest.Start(t, "door-open-expect", ipctest.WithArgs(path, "ok")).MustSucceed()
	// The helper has gone but c still holds a reference.
	if err := echoSizes(c, 3); err != nil {
		t.Fatal(err)
	}
	select {
	case <-unref:
		t.Fatal("unreferenced while a client was connected")
	default:
	}
	c.Close()
	within(t, time.Minute, "unreferenced notification", unref)
	// And again once the next (helper) client has gone.
	ipctest.Start(t, "door-open-expect", ipctest.WithArgs(path, "ok")).MustSucceed()
	within(t, time.Minute, "second unreferenced notification", unref)
}

// door-cancel-client: a call abandoned by its deadline, then a second call that
// must get its own reply, not the late one.
var _ = ipctest.Helper("door-cancel-client", func(args []string) int {
	c, err := Open(bg, args[0])
	if err != nil {
		return helperFail("open: %v", err)
	}
	defer c.Close()
	for _, what := range []string{"wait", "ignore"} {
		ctx, cancel := context.WithTimeout(bg, 100*time.Millisecond)
		_, _, err = c.Call(ctx, []byte(what), nil)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			return helperFail("%s call: %v, want DeadlineExceeded", what, err)
		}
		ipctest.Signal()
		ipctest.Await() // the test has seen the handler notice
		// CallBuf without room for descriptors: the fast path, which must pass over
		// the late reply too.
		res, _, err := c.CallBuf(bg, []byte("second"), nil, nil, nil)
		if err != nil || string(res) != "second" {
			return helperFail("call after the abandoned one: %q, %v", res, err)
		}
	}
	return 0
})

// TestCancelSeenByServer: a caller that gives up on a call is seen by its handler,
// which runs on the connection's reading goroutine: the watchdog, asleep while the
// door was idle, wakes when the handler starts and hands the reading to another
// goroutine, which receives the CANCEL frame.
func TestCancelSeenByServer(t *testing.T) {
	noticed := make(chan error, 1)
	replied := make(chan struct{}, 1)
	d, path := attach(t, func(ctx context.Context, c *Call) (*Reply, error) {
		switch string(c.Data) {
		case "wait":
			<-ctx.Done()
			noticed <- ctx.Err()
			return &Reply{Data: []byte("late")}, nil
		case "ignore":
			// A handler that ignores its context: its reply comes after the caller
			// gave up, and must not be taken for the next call's.
			time.Sleep(300 * time.Millisecond)
			replied <- struct{}{}
			return &Reply{Data: []byte("late")}, nil
		}
		return echo(ctx, c)
	})
	for start := time.Now(); !d.wdParked.Load(); time.Sleep(time.Millisecond) {
		if time.Since(start) > time.Minute {
			t.Fatal("the watchdog of an idle door does not sleep")
		}
	}
	p := ipctest.Start(t, "door-cancel-client", ipctest.WithArgs(path))
	p.Await()
	select {
	case err := <-noticed:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("handler context: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("handler did not see the cancellation")
	}
	p.Signal()
	p.Await()
	within(t, time.Minute, "ignoring handler", replied)
	p.Signal()
	p.MustSucceed()
}

// door-server serves an echo door at args[0]; "hang" blocks forever (after telling
// the test).
var _ = ipctest.Helper("door-server", func(args []string) int {
	d, err := New(func(ctx context.Context, c *Call) (*Reply, error) {
		if string(c.Data) == "hang" {
			ipctest.Signal()
			select {}
		}
		return &Reply{Data: c.Data}, nil
	})
	if err != nil {
		return helperFail("new: %v", err)
	}
	if err := d.Attach(args[0]); err != nil {
		return helperFail("attach: %v", err)
	}
	ipctest.Signal()
	ipctest.Await()
	d.Close()
	return 0
})

func TestServerKilled(t *testing.T) {
	t.Run("FI-04", func(t *testing.T) {
		path := doorDir(t) + "/door"
		p := ipctest.Start(t, "door-server", ipctest.WithArgs(path))
		p.Await()
		c, c2 := open(t, path), open(t, path)
		if err := echoSizes(c, 64, 64); err != nil {
			t.Fatal(err)
		}
		const deadline = 30 * time.Second
		ctx, cancel := context.WithTimeout(bg, deadline)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			_, _, err := c.Call(ctx, []byte("hang"), nil)
			done <- err
		}()
		p.Await() // the handler is running
		start := time.Now()
		p.Kill()
		err := <-done
		if !errors.Is(err, ipc.ErrPeerGone) {
			t.Fatalf("call to a killed server: %v, want ErrPeerGone", err)
		}
		if el := time.Since(start); el > deadline/4 {
			t.Errorf("ErrPeerGone after %v, most of the %v deadline", el, deadline)
		}
		if _, _, err := c.Call(bg, []byte("x"), nil); !errors.Is(err, ipc.ErrPeerGone) {
			t.Errorf("next call: %v, want ErrPeerGone", err)
		}
		// A connection that saw nothing of the death: its first call (on the fast
		// path) finds the server gone.
		if _, _, err := c2.CallBuf(bg, []byte("x"), nil, nil, nil); !errors.Is(err, ipc.ErrPeerGone) {
			t.Errorf("call on another connection: %v, want ErrPeerGone", err)
		}
	})
}

// S11/FI-18: limits are checked from the header, before any allocation.
var _ = ipctest.Helper("door-liar", func(args []string) int {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return helperFail("socket: %v", err)
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: args[0]}); err != nil {
		return helperFail("connect: %v", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		return helperFail("passcred: %v", err)
	}
	var b [hdrSize]byte
	h := header{kind: kCall, id: 1, flags: fSplit, length: 1 << 30, aux0: 100, aux1: 100}
	if args[1] == "lie" { // declares 10 bytes inline, sends 5000
		h = header{kind: kCall, id: 1, length: 10}
	}
	h.put(b[:])
	msg := b[:]
	if args[1] == "lie" {
		msg = append(msg, make([]byte, 5000)...)
	}
	if _, err := unix.Write(fd, msg); err != nil {
		return helperFail("write: %v", err)
	}
	// The server answers with a protocol error and hangs up.
	buf := make([]byte, 2048)
	n, err := unix.Read(fd, buf)
	if err != nil {
		return helperFail("read: %v", err)
	}
	rh, _, err := decodeFrame(buf[:n], 0)
	if err != nil || rh.kind != kError || rh.aux0 != codeProtocol {
		return helperFail("answer %+v (%v), want a protocol error", rh, err)
	}
	if n, err := unix.Read(fd, buf); n != 0 || err != nil {
		return helperFail("after the error: %d bytes, %v; want end of file", n, err)
	}
	return 0
})

func TestLimits(t *testing.T) {
	t.Run("FI-18", func(t *testing.T) {
		d, path := attach(t, echo, WithMaxData(4096), WithMaxFds(1))
		for _, how := range []string{"huge", "lie"} {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			ipctest.Start(t, "door-liar", ipctest.WithArgs(path, how)).MustSucceed()
			runtime.ReadMemStats(&after)
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
				t.Errorf("%s: server allocated %d bytes for a frame declaring 1 GiB", how, grew)
			}
		}
		// The door still serves honest clients, who learn the limits up front.
		c := open(t, path)
		if err := echoSizes(c, 4096); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Call(bg, make([]byte, 4097), nil); !errors.Is(err, ErrTooBig) || !errors.Is(err, unix.E2BIG) {
			t.Errorf("4097 bytes to a 4096-byte door: %v", err)
		}
		if _, _, err := c.Call(bg, []byte("x"), []int{0, 1}); !errors.Is(err, ErrTooBig) {
			t.Errorf("2 descriptors to a 1-descriptor door: %v", err)
		}
		if c.Info().MaxData != 4096 || c.Info().MaxFds != 1 || c.Info().ID != d.Info().ID {
			t.Errorf("client info %+v, door info %+v", c.Info(), d.Info())
		}
	})
	t.Run("refuse-fds", func(t *testing.T) {
		_, path := attach(t, echo, RefuseFds())
		c := open(t, path)
		if c.Info().Attr&AttrRefuseFds == 0 || c.Info().MaxFds != 0 {
			t.Errorf("info %+v", c.Info())
		}
		if _, _, err := c.Call(bg, []byte("x"), []int{0}); !errors.Is(err, ErrFdsRefused) {
			t.Errorf("descriptor to a refusing door: %v", err)
		}
		if err := echoSizes(c, 10, 200000); err != nil { // large data still works (split)
			t.Fatal(err)
		}
	})
	t.Run("max-result", func(t *testing.T) {
		_, path := attach(t, echo)
		c := open(t, path, MaxResult(1000))
		if _, _, err := c.Call(bg, make([]byte, 1001), nil); !errors.Is(err, ErrTooBig) {
			t.Errorf("result over MaxResult: %v", err)
		}
		if err := echoSizes(c, 1000); err != nil {
			t.Fatal(err)
		}
	})
}

// door-concurrent makes args[1] calls at once, each on its own connection.
var _ = ipctest.Helper("door-concurrent", func(args []string) int {
	n := atoi(args[1])
	errs := make(chan error, n)
	for i := range n {
		go func() {
			c, err := Open(bg, args[0])
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			want := fmt.Sprint("call ", i)
			res, _, err := c.Call(bg, []byte(want), nil)
			if err == nil && string(res) != want {
				err = fmt.Errorf("reply %q to %q", res, want)
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			return helperFail("%v", err)
		}
	}
	return 0
})

func TestPoolGrowsToLimit(t *testing.T) {
	const limit, calls = 2, 5
	var running, peak atomic.Int32
	release := make(chan struct{})
	arrived := make(chan struct{}, calls)
	d, path := attach(t, func(ctx context.Context, c *Call) (*Reply, error) {
		n := running.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		arrived <- struct{}{}
		<-release
		running.Add(-1)
		return &Reply{Data: c.Data}, nil
	}, PrivatePool(limit))
	if d.Info().Attr&AttrPrivatePool == 0 {
		t.Error("AttrPrivatePool not set")
	}
	p := ipctest.Start(t, "door-concurrent", ipctest.WithArgs(path, fmt.Sprint(calls)))
	for range limit {
		within(t, time.Minute, "handlers up to the limit", arrived)
	}
	// The others wait in the queue: the pool never goes past its limit.
	time.Sleep(50 * time.Millisecond)
	if r, _ := d.pool.Stats(); r != limit {
		t.Errorf("%d handlers running, want %d", r, limit)
	}
	close(release)
	p.MustSucceed()
	if _, pk := d.pool.Stats(); pk != limit || peak.Load() != limit {
		t.Errorf("peak %d (handlers saw %d), want the limit %d", pk, peak.Load(), limit)
	}
}

// door-two-conns opens args[0] twice, calls "slow" on the first connection and,
// once the test says its handler runs, "quick" on the second; then it tells the
// test, waits, and calls each connection again.
var _ = ipctest.Helper("door-two-conns", func(args []string) int {
	var cs [2]*Client
	for i := range cs {
		c, err := Open(bg, args[0], ClientWait(ipc.WaitKernel))
		if err != nil {
			return helperFail("open: %v", err)
		}
		defer c.Close()
		cs[i] = c
	}
	call := func(c *Client, what string) error {
		res, _, err := c.CallBuf(bg, []byte(what), nil, nil, nil)
		if err == nil && string(res) != what {
			err = fmt.Errorf("echo %q", res)
		}
		if err != nil {
			return fmt.Errorf("%s call: %w", what, err)
		}
		return nil
	}
	slow := make(chan error, 1)
	go func() { slow <- call(cs[0], "slow") }()
	ipctest.Await()
	if err := errors.Join(call(cs[1], "quick"), <-slow); err != nil {
		return helperFail("%v", err)
	}
	ipctest.Signal()
	ipctest.Await()
	for _, c := range cs {
		if err := call(c, "again"); err != nil {
			return helperFail("%v", err)
		}
	}
	return 0
})

// TestOthersSettle: a call taken over by the watchdog, and one queued for the
// pool, are finished by goroutines other than their connections' readers; once
// they are done, the readers send their replies without the write lock again.
func TestOthersSettle(t *testing.T) {
	started := make(chan struct{}, 1)
	d, path := attach(t, func(ctx context.Context, c *Call) (*Reply, error) {
		if string(c.Data) == "slow" {
			started <- struct{}{}
			time.Sleep(50 * time.Millisecond)
		}
		return c.Return(c.Data, nil), nil
	}, WithWait(ipc.WaitKernel), PrivatePool(1))
	p := ipctest.Start(t, "door-two-conns", ipctest.WithArgs(path))
	within(t, time.Minute, "slow call", started)
	p.Signal()
	p.Await()
	if n := takeovers(d); n != 1 {
		t.Errorf("%d calls taken over, want the slow one", n)
	}
	// The pool goroutine counts its call done only after its reply is out, which the
	// client may have read (and told us) a moment before.
	counted := func() (conns int, others int32) {
		d.mu.Lock()
		defer d.mu.Unlock()
		for c := range d.conns {
			others += c.others.Load()
		}
		return len(d.conns), others
	}
	conns, others := counted()
	for start := time.Now(); others != 0 && time.Since(start) < 5*time.Second; conns, others = counted() {
		time.Sleep(time.Millisecond)
	}
	if conns != 2 || others != 0 {
		t.Fatalf("%d connections counting %d calls of other goroutines, want 2 and 0", conns, others)
	}
	own := d.ownReplies.Load()
	p.Signal()
	p.MustSucceed()
	if n := d.ownReplies.Load() - own; n != 2 {
		t.Errorf("%d of the last two calls replied from the reading goroutine's buffer, want 2", n)
	}
}

// A late reply must be dropped by the client, descriptors and body included:
// played by hand on the server's side of a socketpair.
func TestLateReplyDropped(t *testing.T) {
	t.Run("general", func(t *testing.T) { lateReplyDropped(t, false) })
	// The second call on the client's fast path (CallBuf without room for
	// descriptors): the late replies carry none, or they would end the connection
	// (ErrControlTruncated).
	t.Run("fast", func(t *testing.T) { lateReplyDropped(t, true) })
}

func lateReplyDropped(t *testing.T, fast bool) {
	srv, cli, err := socketpairFiles()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	// A fake server; on any failure it hangs up, so the client fails instead of
	// waiting.
	tv := unix.NsecToTimeval(int64(20 * time.Second))
	if err := unix.SetsockoptTimeval(int(srv.Fd()), unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer wg.Done()
		defer srv.Close()
		buf := make([]byte, 1<<16)
		read := func() header {
			n, _, _, _, err := unix.Recvmsg(int(srv.Fd()), buf, nil, 0)
			if err != nil {
				t.Error(err)
				return header{}
			}
			h, _, err := decodeFrame(buf[:n], 1<<20)
			if err != nil {
				t.Error(err)
			}
			return h
		}
		write := func(h header, data []byte, fds ...int) {
			b := make([]byte, hdrSize, hdrSize+len(data))
			h.put(b)
			b = append(b, data...)
			if _, err := unix.SendmsgN(int(srv.Fd()), b, unix.UnixRights(fds...), nil, 0); err != nil {
				t.Error(err)
			}
		}
		h := read() // INFO
		in := Info{Pid: os.Getpid(), ID: 7, MaxData: 1 << 20, MaxFds: 4, Inline: defaultInline}
		var ib [infoSize]byte
		in.put(ib[:])
		write(header{kind: kInfo, id: h.id, length: infoSize}, ib[:])
		first := read() // the call that will be abandoned
		if c := read(); c.kind != kCancel || c.id != first.id {
			t.Errorf("after the deadline: %+v, want CANCEL of %d", c, first.id)
		}
		second := read()
		if t.Failed() {
			return
		}
		// Late replies to the first call: one with a descriptor (or a plain one),
		// one split.
		r, w, _ := os.Pipe()
		if fast {
			write(header{kind: kReply, id: first.id, length: 4}, []byte("late"))
		} else {
			write(header{kind: kReply, id: first.id, nfds: 1, length: 4}, []byte("late"), int(r.Fd()))
		}
		r.Close()
		write(header{kind: kReply, id: first.id, flags: fSplit, length: chunkSize + 1}, nil)
		unix.Write(int(srv.Fd()), make([]byte, chunkSize))
		unix.Write(int(srv.Fd()), []byte{1})
		write(header{kind: kReply, id: second.id, length: 6}, []byte("second"))
		w.Close()
	}()
	c, err := NewClient(bg, cli, ShmThreshold(0))
	cli.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
	_, _, err = c.Call(ctx, []byte("first"), nil)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("abandoned call: %v", err)
	}
	var res []byte
	var fds []int
	if fast {
		res, _, err = c.CallBuf(bg, []byte("second"), nil, make([]byte, 1), nil)
	} else {
		res, fds, err = c.Call(bg, []byte("second"), nil)
	}
	wg.Wait()
	if err != nil || string(res) != "second" || len(fds) != 0 {
		t.Fatalf("second call: %q %v %v", res, fds, err)
	}
	// The leak check of TestMain fails the run if the late descriptor stayed open.
}

func socketpairFiles() (*os.File, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[0]), "srv"), os.NewFile(uintptr(fds[1]), "cli"), nil
}

func TestInvalid(t *testing.T) {
	if _, err := New(nil); !errors.Is(err, ipc.ErrInvalid) {
		t.Errorf("nil handler: %v", err)
	}
	for _, o := range []Option{WithMaxData(0), WithMaxFds(-1), WithMaxFds(300), PrivatePool(-1)} {
		if _, err := New(echo, o); !errors.Is(err, ipc.ErrInvalid) {
			t.Errorf("bad option: %v", err)
		}
	}
	if _, err := NewPool(0); !errors.Is(err, ipc.ErrInvalid) {
		t.Errorf("NewPool(0): %v", err)
	}
	d, path := attach(t, echo)
	if err := d.Attach(path + "2"); !errors.Is(err, unix.EBUSY) {
		t.Errorf("second Attach: %v", err)
	}
	c := open(t, path)
	if _, _, err := c.CallBuf(bg, nil, []int{-1}, nil, nil); !errors.Is(err, unix.EBADF) {
		t.Errorf("negative fd: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, _, err := c.Call(bg, []byte("x"), nil); !errors.Is(err, os.ErrClosed) {
		t.Errorf("call on a closed client: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := Open(bg, path); err == nil {
		t.Error("Open of a closed door's path succeeded")
	}
}

// TestCopyShared checks the chunked copy of the shared-memory paths at the chunk
// boundaries, against copy.
func TestCopyShared(t *testing.T) {
	for _, n := range []int{0, 1, cachedChunk - 1, cachedChunk, cachedChunk + 1, 3*cachedChunk + 17} {
		src := make([]byte, n)
		for i := range src {
			src[i] = byte(i*7 + i>>13)
		}
		for _, dn := range []int{n, n / 2} {
			dst := make([]byte, dn)
			if got := copyShared(dst, src); got != min(n, dn) {
				t.Fatalf("n=%d dst=%d: copied %d", n, dn, got)
			}
			if !bytes.Equal(dst, src[:min(n, dn)]) {
				t.Fatalf("n=%d dst=%d: contents differ", n, dn)
			}
		}
	}
}

// door-stall-client sends the header and the first of three body messages of a
// split call to the door at args[0], signals, and waits; once let go it expects the
// server to have dropped the connection (an error frame at most, then end of file).
var _ = ipctest.Helper("door-stall-client", func(args []string) int {
	sc, err := sockets.DialSeqpacket(bg, args[0], sockets.PassCred())
	if err != nil {
		return helperFail("dial: %v", err)
	}
	defer sc.Close()
	var hb [hdrSize]byte
	h := header{kind: kCall, flags: fSplit, id: 1, length: 3 * chunkSize, aux0: defaultInline, aux1: 1 << 20}
	h.put(hb[:])
	if err := sc.Send(bg, hb[:]); err != nil {
		return helperFail("send header: %v", err)
	}
	if err := sc.Send(bg, make([]byte, chunkSize)); err != nil {
		return helperFail("send body: %v", err)
	}
	ipctest.Signal()
	ipctest.Await() // the parent stops us here, past the server's body deadline
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	buf := make([]byte, hdrSize+defaultInline)
	for {
		_, err := sc.Recv(ctx, buf)
		switch {
		case err == nil:
			continue // the server's error frame
		case errors.Is(err, io.EOF) || errors.Is(err, ipc.ErrPeerGone):
			return 0
		default:
			return helperFail("after the stall: %v, want end of file", err)
		}
	}
})

// TestStalledBody is FI-17 for doors: a client that sends a split call's header and
// then stalls (SIGSTOP) loses its connection once the body deadline passes, while
// other clients' calls go on; after SIGCONT the stalled client sees the connection
// gone, not a hang.
func TestStalledBody(t *testing.T) {
	old := bodyTimeout
	bodyTimeout = 300 * time.Millisecond
	t.Cleanup(func() { bodyTimeout = old })
	d, path := attach(t, echo)
	conns := func() int {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.conns)
	}
	c := open(t, path)
	p := ipctest.Start(t, "door-stall-client", ipctest.WithArgs(path))
	p.Await()
	stalled := time.Now() // the header and one body message are out by now
	if err := syscall.Kill(p.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for wait := time.Now().Add(10 * time.Second); conns() != 2; time.Sleep(time.Millisecond) {
		if time.Now().After(wait) { // the listener adopts connections asynchronously
			t.Fatalf("%d connections while the client stalls, want 2", conns())
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; conns() > 1; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("stalled connection still open %v after its body deadline", 30*time.Second)
		}
		if err := echoSizes(c, 64, 3*chunkSize); err != nil { // others go on meanwhile
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if held := time.Since(stalled); held < bodyTimeout*2/3 {
		t.Errorf("stalled connection dropped after %v, before its body deadline (%v): not the deadline", held, bodyTimeout)
	}
	if err := syscall.Kill(p.Pid(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	p.Signal()
	p.MustSucceed()
	if err := echoSizes(c, 64, 3*chunkSize); err != nil {
		t.Fatal(err)
	}
}

// TestCallsNotReused: a handler that keeps its context and its *Call after returning
// finds them as it left them — the context cancelled, the id unchanged — however many
// calls follow (Calls come from slabs but are never reused).
func TestCallsNotReused(t *testing.T) {
	type kept struct {
		ctx  context.Context
		call *Call
		id   uint64
	}
	var mu sync.Mutex
	var all []kept
	_, path := attach(t, func(ctx context.Context, c *Call) (*Reply, error) {
		mu.Lock()
		all = append(all, kept{ctx, c, c.ID})
		mu.Unlock()
		return c.Return(c.Data, nil), nil
	})
	c := open(t, path)
	for i := range 3*callSlab + 5 {
		if err := echoSizes(c, 8+i%3); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i, k := range all {
		if k.ctx.Err() == nil {
			t.Fatalf("call %d: context live after the handler returned", i)
		}
		select {
		case <-k.ctx.Done():
		default:
			t.Fatalf("call %d: Done not closed after the handler returned", i)
		}
		if k.call.ID != k.id {
			t.Fatalf("call %d: *Call reused (id %d, was %d)", i, k.call.ID, k.id)
		}
	}
}
