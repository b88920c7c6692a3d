package sockio

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/fdio"
	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

// msg is the state of one call with control data or an address: what its attempt
// passes to recvmsg/sendmsg beside the data and what recvmsg returned. A call takes
// one from its Conn's pool and owns it until it returns, so that the attempts,
// method values made once, allocate nothing.
type msg struct {
	c      *Conn
	buf    []byte // control buffer sized for the cap on descriptors and credentials
	oob    []byte // the part of buf this call uses
	addr   sys.Addr
	to     *sys.Addr // &addr or nil
	oobn   int
	rflags int

	recv, send fdio.Attempt
}

func newMsg(c *Conn) *msg {
	m := &msg{c: c}
	n := unix.CmsgSpace(unix.SizeofUcred)
	if c.maxFds > 0 {
		n += unix.CmsgSpace(4 * int(c.maxFds))
	}
	m.buf = make([]byte, n)
	m.recv, m.send = m.recvAttempt, m.sendAttempt
	return m
}

func (m *msg) recvAttempt(fd int, p []byte, nowait bool) (int, unix.Errno) {
	flags := int(m.c.recvFlags)
	if nowait {
		flags |= unix.MSG_DONTWAIT
	}
	n, oobn, rflags, err := sys.Recvmsg(fd, p, m.oob, m.to, flags)
	if err != nil {
		return 0, err.(unix.Errno) // sys.Recvmsg fails only with an errno
	}
	m.oobn, m.rflags = oobn, rflags
	return n, 0
}

func (m *msg) sendAttempt(fd int, p []byte, nowait bool) (int, unix.Errno) {
	flags := unix.MSG_NOSIGNAL
	if nowait {
		flags |= unix.MSG_DONTWAIT
	}
	n, err := sys.Sendmsg(fd, p, m.oob, m.to, flags)
	if err != nil {
		return 0, err.(unix.Errno) // sys.Sendmsg fails only with an errno
	}
	return n, 0
}

// getMsg returns a msg for one call: the Conn's kept one when no other call holds
// it (one atomic swap, on the line every message touches anyway), otherwise one
// from the pool.
func (c *Conn) getMsg() *msg {
	if m := c.msg.Swap(nil); m != nil {
		return m
	}
	return c.msgs.Get().(*msg)
}

// putMsg gives back a msg that getMsg returned.
func (c *Conn) putMsg(m *msg) {
	if !c.msg.CompareAndSwap(nil, m) {
		c.msgs.Put(m)
	}
}

// Result is what one receive with control data delivered.
type Result struct {
	N       int
	Nfds    int
	Cred    unix.Ucred
	HasCred bool
}

// RecvMsg receives into p, with a control buffer sized for len(fds) descriptors
// (at most the cap) and, with SO_PASSCRED, credentials; the sender's address goes
// to from when it is not nil. It walks every control message; descriptors beyond
// len(fds), a truncated control buffer (MSG_CTRUNC) or truncated data (MSG_TRUNC)
// close every descriptor that arrived and return an error. A truncated message
// gives len(p) bytes, the data actually copied, and an error naming its real
// length; an empty read on a connection, io.EOF. nowait makes it not wait. It
// allocates nothing.
func (c *Conn) RecvMsg(ctx context.Context, p []byte, fds []int, from *sys.Addr, nowait bool) (r Result, err error) {
	r, _, err = c.recvMsg(ctx, nil, p, fds, from, nowait)
	return r, err
}

// recvMsg is RecvMsg, after a send of out when out is not empty (fdio's Pair: the
// send and the wait for the reply in one call); sent reports whether out went out.
func (c *Conn) recvMsg(ctx context.Context, out, p []byte, fds []int, from *sys.Addr, nowait bool) (r Result, sent bool, err error) {
	if len(fds) > int(c.maxFds) {
		// Nothing was sent: a reply (out) is not sent when its sender's next receive
		// is bad input; with no reply there was nothing to send.
		return r, len(out) == 0, fmt.Errorf("fd buffer of %d exceeds the cap of %d: %w", len(fds), c.maxFds, ipc.ErrInvalid)
	}
	if len(out) > 0 {
		if err := c.checkSend(out, nil, false); err != nil {
			return r, false, err
		}
	}
	m := c.getMsg()
	defer c.putMsg(m)
	size := 0
	if len(fds) > 0 {
		size = unix.CmsgSpace(4 * len(fds))
	}
	if c.wantCred.Load() {
		size += unix.CmsgSpace(unix.SizeofUcred)
	}
	m.oob, m.to, m.oobn, m.rflags = m.buf[:size], nil, 0, 0
	if from != nil {
		m.to = &m.addr
	}
	var n int
	switch {
	case len(out) > 0:
		n, sent, err = c.FD.Pair(ctx, out, c.send, p, m.recv)
	case nowait:
		n, err = c.FD.Try(p, m.recv)
	default:
		n, err = c.FD.Do(ctx, false, p, m.recv)
	}
	sent = sent || len(out) == 0
	m.oob, m.to = nil, nil
	if err != nil {
		return r, sent, err
	}
	if from != nil {
		*from = m.addr
	}
	var extra bool
	r.N = n
	r.Nfds, extra, r.Cred, r.HasCred = ParseControl(m.buf[:m.oobn], fds)
	switch {
	case m.rflags&unix.MSG_CTRUNC != 0:
		CloseFds(fds[:r.Nfds])
		c.Poison()
		return Result{}, true, ErrControlTruncated
	case extra:
		CloseFds(fds[:r.Nfds])
		c.Poison()
		return Result{}, true, ErrUnexpectedFds
	case m.rflags&unix.MSG_TRUNC != 0 || n > len(p):
		CloseFds(fds[:r.Nfds])
		return Result{N: len(p)}, true, Truncated(n, len(p))
	case n == 0 && len(p) > 0 && c.sotype != unix.SOCK_DGRAM:
		CloseFds(fds[:r.Nfds])
		return Result{}, true, io.EOF
	}
	return r, true, nil
}

// SendMsg makes one sendmsg(2) of p with MSG_NOSIGNAL, the descriptors fds as one
// SCM_RIGHTS message and, when cred is not nil, explicit SCM_CREDENTIALS (which the
// kernel checks: an unprivileged sender cannot claim another identity), to the
// address to (nil: the connected peer). nowait makes it not wait. It allocates
// nothing.
func (c *Conn) SendMsg(ctx context.Context, p []byte, fds []int, cred *unix.Ucred, to *sys.Addr, nowait bool) (int, error) {
	if err := c.checkSend(p, fds, cred != nil); err != nil {
		return 0, err
	}
	if len(fds) == 0 && cred == nil && to == nil {
		if nowait {
			return c.FD.Try(p, c.send)
		}
		return c.FD.Do(ctx, true, p, c.send)
	}
	m := c.getMsg()
	defer c.putMsg(m)
	size := 0
	if len(fds) > 0 {
		data := sys.PutCmsg(m.buf, unix.SOL_SOCKET, unix.SCM_RIGHTS, 4*len(fds))
		for i, fd := range fds {
			binary.NativeEndian.PutUint32(data[4*i:], uint32(int32(fd)))
		}
		size = unix.CmsgSpace(4 * len(fds))
	}
	if cred != nil {
		data := sys.PutCmsg(m.buf[size:], unix.SOL_SOCKET, unix.SCM_CREDENTIALS, unix.SizeofUcred)
		sys.PutUcred(data, *cred)
		size += unix.CmsgSpace(unix.SizeofUcred)
	}
	m.oob, m.to = m.buf[:size], nil
	if to != nil {
		m.addr = *to
		m.to = &m.addr
	}
	var n int
	var err error
	if nowait {
		n, err = c.FD.Try(p, m.send)
	} else {
		n, err = c.FD.Do(ctx, true, p, m.send)
	}
	m.oob, m.to = nil, nil
	return n, err
}

// sentinel is an error value callers test with errors.Is; also is a broader error it
// matches too.
type sentinel struct {
	msg  string
	also error
}

func (s *sentinel) Error() string        { return s.msg }
func (s *sentinel) Is(target error) bool { return s.also != nil && target == s.also }

// The errors of receives with control data; package sockets exports them.
var (
	ErrControlTruncated error = &sentinel{"control message truncated (MSG_CTRUNC); received descriptors closed", ipc.ErrTruncated}
	ErrUnexpectedFds    error = &sentinel{"unexpected descriptors received; all closed", nil}
	ErrNoCred           error = &sentinel{"message carried no credentials (enable PassCred)", nil}
)
