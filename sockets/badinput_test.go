package sockets

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
)

// TestNilFile is issue 16 item 6: the File constructors given a nil *os.File (the
// untyped nil and a nil variable), a closed file or a file that is no socket return
// an error, never panic.
func TestNilFile(t *testing.T) {
	var nilFile *os.File
	closed, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	notSock, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer notSock.Close()
	ctors := []struct {
		name string
		f    func(*os.File, ...Option) (any, error)
	}{
		{"FileStreamConn", func(f *os.File, o ...Option) (any, error) { return FileStreamConn(f, o...) }},
		{"FileSeqpacketConn", func(f *os.File, o ...Option) (any, error) { return FileSeqpacketConn(f, o...) }},
		{"FileDgramConn", func(f *os.File, o ...Option) (any, error) { return FileDgramConn(f, o...) }},
		{"FileStreamListener", func(f *os.File, o ...Option) (any, error) { return FileStreamListener(f, o...) }},
	}
	for _, c := range ctors {
		call := func(what string, f *os.File, targets ...error) {
			t.Helper()
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s(%s) panicked: %v", c.name, what, r)
				}
			}()
			_, err := c.f(f)
			ipctest.CheckOpError(t, c.name+"("+what+")", err, targets...)
		}
		call("nil", nil, ipc.ErrInvalid, unix.EINVAL)
		call("nil variable", nilFile, ipc.ErrInvalid, unix.EINVAL)
		call("closed file", closed, unix.EBADF)
		call("not a socket", notSock, unix.ENOTSOCK)
	}
}

// TestBadOptions: a nil Option or an option out of range is an *ipc.OpError
// matching ipc.ErrInvalid, before any socket is made.
func TestBadOptions(t *testing.T) {
	_, _, err := StreamPair(nil)
	ipctest.CheckOpError(t, "StreamPair(nil option)", err, ipc.ErrInvalid)
	_, _, err = SeqpacketPair(WithMaxFds(-1))
	ipctest.CheckOpError(t, "SeqpacketPair(WithMaxFds(-1))", err, ipc.ErrInvalid)
	_, err = ListenUDP("127.0.0.1:0", WithWait(ipc.WaitSpin))
	ipctest.CheckOpError(t, "ListenUDP(WithWait(WaitSpin))", err, ipc.ErrInvalid)
	_, err = ListenSeqpacket(sockPath(t, "s"), WithBacklog(0))
	ipctest.CheckOpError(t, "ListenSeqpacket(WithBacklog(0))", err, ipc.ErrInvalid)
}
