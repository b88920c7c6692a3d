package sockets

import (
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sockio"
	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

// base is what every socket shares: the socket under the descriptor engine
// (internal/sockio over internal/fdio: wait modes, deadlines, Close), its name and
// addresses, and the options it was made with.
type base struct {
	c sockio.Conn

	name   string // used in errors
	family int
	sotype int
	cfg    config

	onCloseOnce sync.Once
	onClose     func() // runs before the descriptor is released (listener unlink)

	local, remote net.Addr
	connected     bool
}

// newBase takes ownership of fd, a socket, and sets it up for the configured wait
// strategy. On error fd is closed.
func newBase(fd, family, sotype int, c config) (*base, error) {
	b := &base{family: family, sotype: sotype, cfg: c}
	b.local, b.remote, b.connected = sockAddrs(fd, sotype)
	b.name = describe(family, sotype, b.local, b.remote)
	wantCred := c.passCred || dgramPolicy(sotype, c)
	if wantCred {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
			unix.Close(fd)
			return nil, ipc.Wrap("setsockopt SO_PASSCRED", b.name, err)
		}
	}
	if c.noFds {
		// Linux < 6.16 answers ENOPROTOOPT; receipt then closes unexpected fds.
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, sys.SO_PASSRIGHTS, 0)
	}
	err := b.c.Init(fd, sockio.Config{Name: b.name, Wait: c.wait, Sotype: sotype, MaxFds: c.maxFds, PassCred: wantCred})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// control runs f with the descriptor, guarding against a concurrent Close.
func (b *base) control(f func(fd int) error) error { return b.c.FD.Control(f) }

// wrap builds the package's *ipc.OpError; io.EOF stays bare, as io.Reader callers
// expect, and a closed socket's error matches os.ErrClosed and net.ErrClosed.
func (b *base) wrap(op string, err error) error { return b.c.Wrap(op, err) }

// Close closes the socket. Calls blocked on it return an error matching
// os.ErrClosed and net.ErrClosed. Close is idempotent: later calls return nil.
func (b *base) Close() error {
	b.onCloseOnce.Do(func() {
		if b.onClose != nil {
			b.onClose()
		}
	})
	return b.wrap("close", b.c.FD.Close())
}

// Fd returns the descriptor. It stays valid until Close; do not close it or change
// its flags.
func (b *base) Fd() int { return b.c.FD.Fd() }

// Wait returns the socket's wait strategy.
func (b *base) Wait() ipc.WaitStrategy { return b.c.FD.Mode() }

// String describes the socket ("unix-stream /run/x/s -> @", "tcp 127.0.0.1:1 -> ...").
func (b *base) String() string { return b.name }

// LocalAddr returns the socket's own address (*net.UnixAddr, *net.TCPAddr or
// *net.UDPAddr), or nil if it has none.
func (b *base) LocalAddr() net.Addr { return b.local }

// RemoteAddr returns the connected peer's address, or nil.
func (b *base) RemoteAddr() net.Addr { return b.remote }

// SyscallConn returns a raw connection for socket options the package does not
// wrap. Its Read and Write wait as the socket does between calls of the callback.
func (b *base) SyscallConn() syscall.RawConn { return b.c.FD.RawConn() }

// File returns a duplicate of the descriptor, close-on-exec, for handing to another
// process (exec.Cmd.ExtraFiles). It shares the open file description, so its
// O_NONBLOCK flag is shared too.
func (b *base) File() (*os.File, error) {
	var f *os.File
	err := b.control(func(fd int) error {
		nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return err
		}
		f = os.NewFile(uintptr(nfd), b.name)
		return nil
	})
	return f, b.wrap("dup", err)
}

// shutdown is shutdown(2).
func (b *base) shutdown(how int) error {
	return b.wrap("shutdown", b.control(func(fd int) error { return unix.Shutdown(fd, how) }))
}

// SetDeadline sets the read and write deadlines (see net.Conn), for calls already
// waiting too. A zero time means none. Calls past the deadline fail with an error
// matching os.ErrDeadlineExceeded whose Timeout method reports true.
func (b *base) SetDeadline(t time.Time) error { return b.setDeadline(t, true, true) }

// SetReadDeadline sets the deadline for receives.
func (b *base) SetReadDeadline(t time.Time) error { return b.setDeadline(t, true, false) }

// SetWriteDeadline sets the deadline for sends.
func (b *base) SetWriteDeadline(t time.Time) error { return b.setDeadline(t, false, true) }

func (b *base) setDeadline(t time.Time, read, write bool) error {
	return b.wrap("set deadline", b.c.FD.SetDeadline(t, read, write))
}
