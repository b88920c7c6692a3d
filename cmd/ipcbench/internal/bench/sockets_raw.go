package bench

import (
	"encoding/binary"
	"fmt"
	"io"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
)

// rawSockPair makes the raw baseline's connected pair, blocking and close-on-exec:
// socketpair(2) for Unix sockets; for TCP and UDP, loopback sockets connected to
// each other (TCP_NODELAY on TCP).
func rawSockPair(family, sotype int) ([2]int, error) {
	if family == unix.AF_UNIX {
		return unix.Socketpair(unix.AF_UNIX, sotype|unix.SOCK_CLOEXEC, 0)
	}
	bad := [2]int{-1, -1}
	lo := &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
	bound := func() (int, *unix.SockaddrInet4, error) {
		fd, err := unix.Socket(unix.AF_INET, sotype|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return -1, nil, err
		}
		if err := unix.Bind(fd, lo); err != nil {
			unix.Close(fd)
			return -1, nil, err
		}
		sa, err := unix.Getsockname(fd)
		if err != nil {
			unix.Close(fd)
			return -1, nil, err
		}
		return fd, sa.(*unix.SockaddrInet4), nil
	}
	a, aAddr, err := bound()
	if err != nil {
		return bad, err
	}
	b, bAddr, err := bound()
	if err != nil {
		unix.Close(a)
		return bad, err
	}
	fail := func(err error) ([2]int, error) {
		unix.Close(a)
		unix.Close(b)
		return bad, err
	}
	if sotype == unix.SOCK_DGRAM {
		if err := unix.Connect(a, bAddr); err != nil {
			return fail(err)
		}
		if err := unix.Connect(b, aAddr); err != nil {
			return fail(err)
		}
		return [2]int{a, b}, nil
	}
	if err := unix.Listen(a, 1); err != nil {
		return fail(err)
	}
	if err := unix.Connect(b, aAddr); err != nil {
		return fail(err)
	}
	c, _, err := unix.Accept4(a, unix.SOCK_CLOEXEC)
	if err != nil {
		return fail(err)
	}
	unix.Close(a)
	for _, fd := range []int{b, c} {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
			unix.Close(b)
			unix.Close(c)
			return bad, err
		}
	}
	return [2]int{c, b}, nil
}

// rawSockEP is the raw baseline: a blocking descriptor, sendmsg/recvmsg with
// MSG_NOSIGNAL, no library code.
type rawSockEP struct {
	fd     int
	stream bool
	oob    [64]byte
}

func (e *rawSockEP) Send(p []byte) error { return e.SendFds(p, nil) }

func (e *rawSockEP) SendFds(p []byte, fds []int) error {
	var oob []byte
	if len(fds) > 0 {
		d := sys.PutCmsg(e.oob[:], unix.SOL_SOCKET, unix.SCM_RIGHTS, 4*len(fds))
		for i, fd := range fds {
			binary.NativeEndian.PutUint32(d[4*i:], uint32(fd))
		}
		oob = e.oob[:unix.CmsgSpace(4*len(fds))]
	}
	for n := 0; n < len(p) || (n == 0 && len(p) == 0); {
		m, err := sys.Sendmsg(e.fd, p[n:], oob, nil, unix.MSG_NOSIGNAL)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		oob = nil
		n += m
		if !e.stream || len(p) == 0 {
			break
		}
	}
	return nil
}

func (e *rawSockEP) Recv(p []byte) error {
	_, err := e.RecvFds(p, nil)
	return err
}

func (e *rawSockEP) RecvFds(p []byte, fds []int) (int, error) {
	nfds := 0
	for n := 0; n < len(p) || (n == 0 && len(p) == 0); {
		oob := e.oob[:0]
		if len(fds) > 0 && nfds == 0 {
			oob = e.oob[:unix.CmsgSpace(4*len(fds))]
		}
		m, oobn, flags, err := sys.Recvmsg(e.fd, p[n:], oob, nil, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nfds, err
		}
		for b := oob[:oobn]; len(b) > 0; {
			level, typ, data, rest, ok := sys.ParseCmsg(b)
			if !ok {
				break
			}
			b = rest
			for ; level == unix.SOL_SOCKET && typ == unix.SCM_RIGHTS && len(data) >= 4; data = data[4:] {
				fd := int(int32(binary.NativeEndian.Uint32(data)))
				if nfds < len(fds) {
					fds[nfds] = fd
					nfds++
				} else {
					unix.Close(fd)
				}
			}
		}
		if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
			return nfds, fmt.Errorf("recvmsg: truncated (flags %#x)", flags)
		}
		if m == 0 && len(p) > 0 && e.stream {
			return nfds, io.ErrUnexpectedEOF
		}
		n += m
		if !e.stream {
			if n != len(p) {
				return nfds, fmt.Errorf("short message: %d of %d bytes", n, len(p))
			}
			break
		}
	}
	return nfds, nil
}

func (e *rawSockEP) Close() error { return unix.Close(e.fd) }
