package doors

import (
	"context"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sockio"
	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/sockets"
)

// sock is one end of a door connection: a seqpacket socket that the door holds
// under the descriptor engine itself (internal/sockio), so that a call is one
// request/reply pair of the engine (Exchange, SendRecvMsg) and package sockets
// needs no door-only methods. Its errors are those of sockets.SeqpacketConn: an
// *ipc.OpError whose Op ("sendmsg", "recvmsg") names the call, io.EOF bare.
type sock struct {
	c sockio.Conn
}

// takeOver moves sc's socket under a sock of its own, waiting as wait says, with
// room for maxFds descriptors per message and SO_PASSCRED on: the descriptor is
// duplicated, and sc closed.
func takeOver(sc *sockets.SeqpacketConn, wait ipc.WaitStrategy, maxFds int) (*sock, error) {
	name := sc.String()
	var fd int
	err := syscallConnControl(sc, func(s int) (err error) {
		fd, err = unix.FcntlInt(uintptr(s), unix.F_DUPFD_CLOEXEC, 0)
		return err
	})
	sc.Close()
	if err != nil {
		return nil, ipc.Wrap("dup", name, err)
	}
	s := new(sock)
	if err := s.c.Init(fd, sockio.Config{Name: name, Wait: wait, Sotype: unix.SOCK_SEQPACKET, MaxFds: maxFds, PassCred: true}); err != nil {
		return nil, err
	}
	return s, nil
}

// syscallConnControl runs f with sc's descriptor, guarded against a Close.
func syscallConnControl(sc *sockets.SeqpacketConn, f func(fd int) error) error {
	var ferr error
	if err := sc.SyscallConn().Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

func (s *sock) Recv(ctx context.Context, p []byte) (int, error) {
	n, err := s.c.Recv(ctx, p)
	return n, s.c.Wrap("recvmsg", err)
}

func (s *sock) TryRecv(p []byte) (int, error) {
	n, err := s.c.TryRecv(p)
	return n, s.c.Wrap("recvmsg", err)
}

func (s *sock) Send(ctx context.Context, p []byte) error {
	_, err := s.c.Send(ctx, p)
	return s.c.Wrap("sendmsg", err)
}

func (s *sock) TrySend(p []byte) error {
	_, err := s.c.TrySend(p)
	return s.c.Wrap("sendmsg", err)
}

func (s *sock) ReadMsg(ctx context.Context, p []byte, fds []int) (n, nfds int, err error) {
	r, err := s.c.RecvMsg(ctx, p, fds, nil, false)
	if err != nil {
		return r.N, 0, s.c.Wrap("recvmsg", err)
	}
	return r.N, r.Nfds, nil
}

func (s *sock) WriteMsg(ctx context.Context, p []byte, fds []int) (int, error) {
	n, err := s.c.SendMsg(ctx, p, fds, nil, nil, false)
	return n, s.c.Wrap("sendmsg", err)
}

// credResult is a receive with credentials as sockets' ReadMsgCred returns it.
func (s *sock) credResult(r sockio.Result, fds []int, err error) (n, nfds int, cred sockets.Cred, _ error) {
	if err == nil && !r.HasCred {
		sockio.CloseFds(fds[:r.Nfds])
		r, err = sockio.Result{}, sockets.ErrNoCred
	}
	if err != nil {
		return r.N, 0, sockets.Cred{}, s.c.Wrap("recvmsg", err)
	}
	return r.N, r.Nfds, sockets.Cred{Pid: r.Cred.Pid, Uid: r.Cred.Uid, Gid: r.Cred.Gid}, nil
}

func (s *sock) ReadMsgCred(ctx context.Context, p []byte, fds []int) (n, nfds int, cred sockets.Cred, err error) {
	r, err := s.c.RecvMsg(ctx, p, fds, nil, false)
	return s.credResult(r, fds, err)
}

// SendReadMsgCred sends out as one message, then receives as ReadMsgCred: a
// server's reply and its wait for the next request (the pattern of door_return).
// A failed send is an error with Op "sendmsg" (isSendError), before anything is
// received.
func (s *sock) SendReadMsgCred(ctx context.Context, out, p []byte, fds []int) (n, nfds int, cred sockets.Cred, err error) {
	r, sent, err := s.c.SendRecvMsg(ctx, out, p, fds)
	if !sent {
		return 0, 0, sockets.Cred{}, s.c.Wrap("sendmsg", err)
	}
	return s.credResult(r, fds, err)
}

// Exchange sends req as one message and receives one message into resp: a
// client's call. A failed send is an error with Op "sendmsg" (isSendError).
func (s *sock) Exchange(ctx context.Context, req, resp []byte) (int, error) {
	n, sent, err := s.c.Exchange(ctx, req, resp)
	if !sent {
		return 0, s.c.Wrap("sendmsg", err)
	}
	return n, s.c.Wrap("recvmsg", err)
}

func (s *sock) SetPassCred(on bool) error {
	return s.c.Wrap("setsockopt SO_PASSCRED", s.c.SetPassCred(on))
}

func (s *sock) SetReadDeadline(t time.Time) error {
	return s.c.Wrap("set deadline", s.c.FD.SetDeadline(t, true, false))
}

func (s *sock) CloseWrite() error {
	return s.c.Wrap("shutdown", s.c.FD.Control(func(fd int) error { return unix.Shutdown(fd, unix.SHUT_WR) }))
}

func (s *sock) Close() error { return s.c.Wrap("close", s.c.FD.Close()) }

// PeerPidfd is sockets' PeerPidfd: a pidfd for the peer that made the connection.
func (s *sock) PeerPidfd() (*os.File, error) {
	var f *os.File
	err := s.c.FD.Control(func(fd int) error {
		pfd, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, sys.SO_PEERPIDFD)
		if err != nil {
			return err
		}
		f = os.NewFile(uintptr(pfd), "pidfd:"+s.c.Name())
		return nil
	})
	return f, s.c.Wrap("getsockopt SO_PEERPIDFD", err)
}
