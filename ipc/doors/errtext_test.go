package doors

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/sysv"
	"github.com/ipclab/ipclab/sockets"
)

// not-a-door listens at args[1] on a Unix socket of kind args[0] ("stream" or
// "seqpacket") and signals. A seqpacket server accepts one connection, reads one
// message and answers it with text that is no door frame. It exits after the
// test's signal.
var _ = ipctest.Helper("not-a-door", func(args []string) int {
	ctx, cancel := context.WithTimeout(bg, time.Minute)
	defer cancel()
	if args[0] == "stream" {
		l, err := sockets.ListenStream(args[1])
		if err != nil {
			return helperFail("listen: %v", err)
		}
		defer l.Close()
		ipctest.Signal()
		ipctest.Await()
		return 0
	}
	l, err := sockets.ListenSeqpacket(args[1])
	if err != nil {
		return helperFail("listen: %v", err)
	}
	defer l.Close()
	ipctest.Signal()
	c, err := l.Accept(ctx)
	if err != nil {
		return helperFail("accept: %v", err)
	}
	defer c.Close()
	buf := make([]byte, 4096)
	if _, err := c.Recv(ctx, buf); err != nil {
		return helperFail("recv: %v", err)
	}
	if err := c.Send(ctx, []byte("no door here")); err != nil {
		return helperFail("send: %v", err)
	}
	ipctest.Await()
	return 0
})

// TestNotADoor is issue 14 §5: Open on a path that is a regular file, a FIFO, a
// stream socket or a seqpacket socket whose server (another process) does not
// speak the door protocol, and NewClient on a descriptor that is no door, say "not
// a door" and match ErrNotDoor and the errno that showed it.
func TestNotADoor(t *testing.T) {
	dir := doorDir(t)
	ctx, cancel := context.WithTimeout(bg, time.Minute)
	defer cancel()
	notDoor := func(what, path, text string, targets ...error) {
		t.Helper()
		c, err := Open(ctx, path)
		if err == nil {
			c.Close()
		}
		ipctest.CheckOpError(t, what, err, append(targets, ErrNotDoor)...)
		if err != nil && !strings.Contains(err.Error(), "not a door ("+text+")") {
			t.Errorf("%s: %q does not say \"not a door (%s)\"", what, err, text)
		}
	}

	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	notDoor("regular file", file, "a regular file", unix.ECONNREFUSED)
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(fifo)
	notDoor("FIFO", fifo, "a FIFO", unix.ECONNREFUSED)

	stream := filepath.Join(dir, "stream")
	p := ipctest.Start(t, "not-a-door", ipctest.WithArgs("stream", stream))
	p.Await()
	notDoor("stream socket", stream, "a socket of another type than seqpacket", unix.EPROTOTYPE)
	p.Signal()
	p.MustSucceed()

	seq := filepath.Join(dir, "seqpacket")
	p = ipctest.Start(t, "not-a-door", ipctest.WithArgs("seqpacket", seq))
	p.Await()
	notDoor("seqpacket server that is no door", seq, "its server did not answer the door handshake", ErrProtocol, unix.EPROTO)
	p.Signal()
	p.MustSucceed()

	// No such path is not "not a door": nothing is there.
	_, err := Open(ctx, filepath.Join(dir, "absent"))
	ipctest.CheckOpError(t, "absent path", err, unix.ENOENT)
	if errors.Is(err, ErrNotDoor) {
		t.Errorf("absent path: %v matches ErrNotDoor", err)
	}

	// NewClient on descriptors that are no door.
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = NewClient(ctx, f)
	ipctest.CheckOpError(t, "NewClient(regular file)", err, ErrNotDoor, unix.ENOTSOCK)
	if err != nil && !strings.Contains(err.Error(), "not a door (a regular file)") {
		t.Errorf("NewClient(regular file): %q does not say \"not a door (a regular file)\"", err)
	}
	a, b, err := sockets.StreamPair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	sf, err := a.File()
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	_, err = NewClient(ctx, sf)
	ipctest.CheckOpError(t, "NewClient(stream socket)", err, ErrNotDoor, ipc.ErrInvalid)
	if err != nil && !strings.Contains(err.Error(), "not a door (a socket of another type)") {
		t.Errorf("NewClient(stream socket): %q does not say \"not a door (a socket of another type)\"", err)
	}
}

// TestNewClientNil is issue 16 item 6: NewClient with a nil *os.File (untyped and
// a nil variable) or a nil option returns an error matching ipc.ErrInvalid instead
// of crashing.
func TestNewClientNil(t *testing.T) {
	var nilFile *os.File
	for _, c := range []struct {
		what string
		call func() (*Client, error)
	}{
		{"nil", func() (*Client, error) { return NewClient(bg, nil) }},
		{"nil variable", func() (*Client, error) { return NewClient(bg, nilFile) }},
		{"nil option", func() (*Client, error) { return Open(bg, "/nonexistent", nil) }},
	} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("NewClient(%s) panicked: %v", c.what, r)
				}
			}()
			_, err := c.call()
			ipctest.CheckOpError(t, c.what, err, ipc.ErrInvalid, unix.EINVAL)
		}()
	}
}

// TestErrorTextsOneLine is issue 14 §5's last rule: a batch of bad-input and
// wrong-object errors from sockets, sysv and doors are *ipc.OpError values whose
// text fits on one line.
func TestErrorTextsOneLine(t *testing.T) {
	ctx, cancel := context.WithTimeout(bg, time.Minute)
	defer cancel()
	errs := map[string]error{}
	add := func(name string, err error) { errs[name] = err }

	// sockets
	_, err := sockets.FileSeqpacketConn(nil)
	add("sockets.FileSeqpacketConn(nil)", err)
	_, _, err = sockets.SeqpacketPair(sockets.WithMaxFds(-1))
	add("sockets.SeqpacketPair(WithMaxFds(-1))", err)
	_, err = sockets.DialSeqpacket(ctx, "")
	add("sockets.DialSeqpacket(\"\")", err)
	a, b, err := sockets.SeqpacketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	add("SeqpacketConn.Send(empty)", a.Send(ctx, nil))
	_, err = a.WriteMsg(ctx, []byte("x"), []int{-1})
	add("SeqpacketConn.WriteMsg(fd -1)", err)
	if err := b.Send(ctx, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	_, err = a.Recv(ctx, make([]byte, 10))
	add("SeqpacketConn.Recv(truncated)", err)
	d, e, err := sockets.DgramPair()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	defer e.Close()
	add("DgramConn.SendTo(nil address)", d.SendTo(ctx, []byte("x"), nil))

	// sysv
	q, err := sysv.CreateQueue(sysv.Private)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Remove()
	add("Queue.TrySend(mtype 0)", q.TrySend(0, []byte("x")))
	add("Queue.TrySend(over msgmax)", q.TrySend(1, make([]byte, 1<<20)))
	_, _, err = q.TryRecv(make([]byte, 8), sysv.OfType(0))
	add("Queue.TryRecv(OfType(0))", err)
	_, err = sysv.OpenQueueID(-1)
	add("sysv.OpenQueueID(-1)", err)

	// doors
	_, err = NewClient(ctx, nil)
	add("doors.NewClient(nil)", err)
	_, err = Open(ctx, "/", MaxResult(-1))
	add("doors.Open(MaxResult(-1))", err)
	_, err = Open(ctx, "/")
	add("doors.Open(directory)", err)
	_, err = New(nil)
	add("doors.New(nil handler)", err)

	for name, err := range errs {
		ipctest.CheckOpError(t, name, err)
	}
	if t.Failed() || testing.Verbose() {
		for name, err := range errs {
			t.Logf("%s: %v", name, err)
		}
	}
}
