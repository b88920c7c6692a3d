// Package sockio is the socket layer over the descriptor engine (internal/fdio): the
// system calls of a socket as fdio Attempts, control messages (descriptors and
// credentials), and the request/reply pairs of calls doors make. Package sockets
// is a typed public layer over it; ipc/doors holds a Conn on its own descriptors.
//
// A plain send or receive (no control data, no address) goes through fdio.FD.Do
// with an Attempt made once, so that it allocates nothing. A call with control data
// or an address does too, with its per-call state in a msg the Conn keeps (or, when
// another call holds that one, from a pool).
package sockio

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/fdio"
	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

// Config describes a Conn.
type Config struct {
	// Name is used in errors.
	Name string
	// Wait is the wait mode (ipc.WaitAuto, ipc.WaitPoller, ipc.WaitKernel).
	Wait ipc.WaitStrategy
	// Sotype is the socket type (unix.SOCK_STREAM, SOCK_SEQPACKET, SOCK_DGRAM).
	Sotype int
	// MaxFds is the cap on descriptors per message.
	MaxFds int
	// PassCred: SO_PASSCRED is on, so receives need room for credentials.
	PassCred bool
}

// Conn is one socket under the engine. Init it in place; a Conn must not be copied.
type Conn struct {
	// What every message touches comes first, in the cache line that also holds
	// the head of FD (the descriptor and its in-flight count): behind the whole FD
	// these fields took a line of their own, and after the peer has run on this
	// CPU every extra line is a miss. 40 bytes, so that FD's head stays on the line.
	recvFlags int32
	// wantCred: SO_PASSCRED is on, so receives need room for credentials.
	wantCred atomic.Bool
	sotype   int32
	maxFds   int32
	// recv and send are the plain attempts, made once.
	recv, send fdio.Attempt
	// msg is the state of a call with control data or an address, kept for the
	// next such call: one call at a time takes it, the others use msgs.
	msg atomic.Pointer[msg]

	// FD is the descriptor under the engine: wait modes, deadlines, Close.
	FD fdio.FD

	name string
	msgs sync.Pool // *msg, when the kept one is taken
}

// The system calls a thread blocked on a socket may be in, with the socket as first
// argument.
var (
	readCalls  = []uintptr{unix.SYS_RECVMSG, unix.SYS_RECVMMSG, unix.SYS_ACCEPT4}
	writeCalls = []uintptr{unix.SYS_SENDMSG}
)

// Init takes ownership of fd, a socket, and sets c up in place as cfg says. On error
// fd is closed.
func (c *Conn) Init(fd int, cfg Config) error {
	c.name, c.sotype, c.maxFds = cfg.Name, int32(cfg.Sotype), int32(cfg.MaxFds)
	// On message sockets MSG_TRUNC makes recvmsg return a message's real length
	// even when it did not fit, so that a truncation error can name it (and a count
	// above the buffer's length means truncated). Streams never get it: on TCP it
	// would discard the data instead of copying it.
	c.recvFlags = unix.MSG_CMSG_CLOEXEC
	if cfg.Sotype != unix.SOCK_STREAM {
		c.recvFlags |= unix.MSG_TRUNC
	}
	c.wantCred.Store(cfg.PassCred)
	c.recv, c.send = c.recvAttempt(), sendAttempt
	c.msgs.New = func() any { return newMsg(c) }
	c.msg.Store(newMsg(c))
	return c.FD.Init(fd, fdio.Config{Name: cfg.Name, Wait: cfg.Wait, ReadCalls: readCalls, WriteCalls: writeCalls})
}

// Name returns the name used in errors.
func (c *Conn) Name() string { return c.name }

// Sotype returns the socket type.
func (c *Conn) Sotype() int { return int(c.sotype) }

// MaxFds returns the cap on descriptors per message.
func (c *Conn) MaxFds() int { return int(c.maxFds) }

// WantCred reports whether SO_PASSCRED is on.
func (c *Conn) WantCred() bool { return c.wantCred.Load() }

// SetPassCred turns SO_PASSCRED on or off.
func (c *Conn) SetPassCred(on bool) error {
	v := 0
	if on {
		v = 1
	}
	err := c.FD.Control(func(fd int) error { return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, v) })
	if err == nil {
		c.wantCred.Store(on)
	}
	return err
}

// Errnos the attempts report for outcomes that are no errno of the kernel's; they
// never leave this package.
const (
	errCtrunc   = unix.Errno(1<<20 + iota) // MSG_CTRUNC: control data lost
	errExtraFds                            // descriptors arrived where none were expected
)

// credSpace is CMSG_SPACE(sizeof(struct ucred)) on 64-bit systems, the most it is.
const credSpace = 32

// recvAttempt returns the plain receive: recvmsg(2) into p with no address, and a
// control buffer on the stack only for the credentials SO_PASSCRED attaches. It is
// a closure rather than a method value, whose wrapper would be one more frame on
// the stack of a thread asleep in the call: each costs a mispredicted return when
// the thread wakes.
func (c *Conn) recvAttempt() fdio.Attempt {
	return func(fd int, p []byte, nowait bool) (int, unix.Errno) {
		flags := int(c.recvFlags)
		if nowait {
			flags |= unix.MSG_DONTWAIT
		}
		if !c.wantCred.Load() {
			n, rflags, errno := sys.RecvData(fd, p, flags)
			if errno == 0 && rflags&unix.MSG_CTRUNC != 0 {
				return n, errCtrunc
			}
			return n, errno
		}
		var buf [credSpace]byte
		n, oobn, rflags, err := sys.Recvmsg(fd, p, buf[:], nil, flags)
		if err != nil {
			return 0, err.(unix.Errno) // sys.Recvmsg fails only with an errno
		}
		nfds, extra, _, _ := ParseControl(buf[:oobn], nil)
		switch {
		case rflags&unix.MSG_CTRUNC != 0:
			return n, errCtrunc
		case nfds > 0 || extra:
			return n, errExtraFds
		}
		return n, 0
	}
}

// sendAttempt is the plain send: sendmsg(2) of p with MSG_NOSIGNAL.
func sendAttempt(fd int, p []byte, nowait bool) (int, unix.Errno) {
	flags := unix.MSG_NOSIGNAL
	if nowait {
		flags |= unix.MSG_DONTWAIT
	}
	return sys.SendData(fd, p, flags)
}

// Recv receives into p (one message on message sockets) and returns the count:
// io.EOF for an empty read on a connection, an error matching ipc.ErrTruncated for
// a message longer than p (p then holds its first len(p) bytes). Errors are raw
// (Wrap). It does not allocate.
func (c *Conn) Recv(ctx context.Context, p []byte) (int, error) {
	n, err := c.FD.Do(ctx, false, p, c.recv)
	return c.recvResult(p, n, err)
}

// TryRecv is Recv without waiting.
func (c *Conn) TryRecv(p []byte) (int, error) {
	n, err := c.FD.Try(p, c.recv)
	return c.recvResult(p, n, err)
}

// recvResult is what a plain receive into p that returned n and err gives.
func (c *Conn) recvResult(p []byte, n int, err error) (int, error) {
	switch {
	case err == errCtrunc:
		// Descriptors sent where none were expected: with no room for them the
		// kernel discarded them and installed nothing.
		c.Poison()
		return 0, ErrControlTruncated
	case err == errExtraFds:
		c.Poison()
		return 0, ErrUnexpectedFds
	case err != nil:
		return 0, err
	case n > len(p):
		return len(p), Truncated(n, len(p))
	case n == 0 && len(p) > 0 && c.sotype != unix.SOCK_DGRAM:
		return 0, io.EOF
	}
	return n, nil
}

// Send makes one sendmsg(2) of p, waiting for room. On a stream it may send part
// of p. It does not allocate.
func (c *Conn) Send(ctx context.Context, p []byte) (int, error) {
	if err := c.checkSend(p, nil, false); err != nil {
		return 0, err
	}
	return c.FD.Do(ctx, true, p, c.send)
}

// TrySend is Send without waiting.
func (c *Conn) TrySend(p []byte) (int, error) {
	if err := c.checkSend(p, nil, false); err != nil {
		return 0, err
	}
	return c.FD.Try(p, c.send)
}

// checkSend checks a send's arguments before any system call.
func (c *Conn) checkSend(p []byte, fds []int, cred bool) error {
	if len(fds) > int(c.maxFds) {
		return fmt.Errorf("%d descriptors exceed the cap of %d: %w", len(fds), c.maxFds, ipc.ErrInvalid)
	}
	for _, fd := range fds {
		if fd < 0 {
			return fmt.Errorf("descriptor %d: %w", fd, unix.EBADF)
		}
	}
	if len(p) == 0 && c.sotype == unix.SOCK_SEQPACKET {
		return fmt.Errorf("empty seqpacket message (indistinguishable from end of file): %w", ipc.ErrInvalid)
	}
	if (len(fds) > 0 || cred) && len(p) == 0 && c.sotype != unix.SOCK_DGRAM {
		return fmt.Errorf("control data needs at least one data byte on a connection: %w", ipc.ErrInvalid)
	}
	return nil
}

// Exchange sends req as one message, then receives one message into resp: a
// request and the wait for its reply. sent reports whether req went out (the error
// is then the receive's). It does not allocate.
func (c *Conn) Exchange(ctx context.Context, req, resp []byte) (n int, sent bool, err error) {
	if err := c.checkSend(req, nil, false); err != nil {
		return 0, false, err
	}
	if n, sent, err = c.FD.Pair(ctx, req, c.send, resp, c.recv); !sent {
		return 0, false, err
	}
	n, err = c.recvResult(resp, n, err)
	return n, true, err
}

// SendRecvMsg sends out as one message (nothing when out is empty), then receives
// as RecvMsg does with credentials: a reply and the wait for the next request in
// one call (the pattern of door_return). sent reports whether out went out.
func (c *Conn) SendRecvMsg(ctx context.Context, out, p []byte, fds []int) (r Result, sent bool, err error) {
	return c.recvMsg(ctx, out, p, fds, nil, false)
}

// Poison shuts a connection down after a protocol error, so that neither side goes
// on with a stream whose descriptors were lost.
func (c *Conn) Poison() {
	if c.sotype != unix.SOCK_DGRAM {
		_ = c.FD.Control(func(fd int) error { return unix.Shutdown(fd, unix.SHUT_RDWR) })
	}
}

// Wrap turns an error of any layer into the one *ipc.OpError naming op and the
// socket, leaving io.EOF bare (as io.Reader callers expect); a closed socket's
// error matches os.ErrClosed and net.ErrClosed.
func (c *Conn) Wrap(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	err = fdio.Bare(err)
	if errors.Is(err, os.ErrClosed) {
		err = ErrClosed
	}
	return ipc.Wrap(op, c.name, err)
}

// closedError is the cause of every call on, or blocked in, a closed socket.
type closedError struct{}

func (closedError) Error() string        { return "use of closed socket" }
func (closedError) Is(target error) bool { return target == os.ErrClosed || target == net.ErrClosed }

// ErrClosed is the cause of every call on, or blocked in, a closed socket: it
// matches os.ErrClosed and net.ErrClosed.
var ErrClosed error = closedError{}

// Truncated is the error for a message of n bytes (its real length, with MSG_TRUNC
// passed to recvmsg) received into a buffer of size bytes: the buffer holds its
// first size bytes, the rest is lost. A kernel that returned only the copied length
// gets no made-up figure.
func Truncated(n, size int) error {
	if n > size {
		return fmt.Errorf("%d-byte message into a %d-byte buffer, %d bytes lost: %w", n, size, n-size, ipc.ErrTruncated)
	}
	return fmt.Errorf("message longer than the %d-byte buffer: %w", size, ipc.ErrTruncated)
}

// ParseControl walks every control message, storing received descriptors in fds and
// closing those that do not fit (extra reports that some did not).
func ParseControl(oob []byte, fds []int) (nfds int, extra bool, cred unix.Ucred, hasCred bool) {
	for len(oob) > 0 {
		level, typ, data, rest, ok := sys.ParseCmsg(oob)
		if !ok {
			break
		}
		oob = rest
		if level != unix.SOL_SOCKET {
			continue
		}
		switch typ {
		case unix.SCM_RIGHTS:
			for ; len(data) >= 4; data = data[4:] {
				fd := int(int32(binary.NativeEndian.Uint32(data)))
				if nfds < len(fds) {
					fds[nfds] = fd
					nfds++
				} else {
					unix.Close(fd)
					extra = true
				}
			}
		case unix.SCM_CREDENTIALS:
			if u, ok := sys.Ucred(data); ok {
				cred, hasCred = u, true
			}
		case unix.SCM_PIDFD:
			if len(data) >= 4 {
				unix.Close(int(int32(binary.NativeEndian.Uint32(data))))
			}
		}
	}
	return nfds, extra, cred, hasCred
}

// CloseFds closes fds and marks them -1.
func CloseFds(fds []int) {
	for i, fd := range fds {
		unix.Close(fd)
		fds[i] = -1
	}
}
