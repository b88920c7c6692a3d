package sockets

import (
	"net"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

// loopbackIP is 127.0.0.1, the interface address multicast is bound to.
var loopbackIP = [4]byte{127, 0, 0, 1}

// ListenMulticast joins the IPv4 multicast group of group ("239.x.y.z:port") on the
// loopback interface only and returns a UDP socket bound to the group and port, with
// SO_REUSEADDR (several members on one host), IP_MULTICAST_IF = 127.0.0.1,
// IP_MULTICAST_LOOP on (members on this host hear each other, the sender too) and
// IP_MULTICAST_TTL 0 (nothing leaves the host). Send to the group with SendTo. This
// is the seeds' group-communication primitive: one send, every member receives.
//
// Linux delivers looped-back multicast on lo even when the interface lacks the
// MULTICAST flag, so no interface configuration is needed.
func ListenMulticast(group string, opts ...Option) (*DgramConn, error) {
	c, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	var a sys.Addr
	if err := setInet4(&a, group, true, netip.Prefix{}); err != nil {
		return nil, &ipc.OpError{Op: "bind", Object: group, Err: err}
	}
	gip, _, _ := a.Inet4()
	if gip[0]&0xf0 != 0xe0 {
		return nil, &ipc.OpError{Op: "bind", Object: group, Err: ipc.ErrInvalid}
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, ipc.Wrap("socket", "udp", err)
	}
	fail := func(op string, err error) (*DgramConn, error) {
		unix.Close(fd)
		return nil, ipc.Wrap(op, group, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("setsockopt SO_REUSEADDR", err)
	}
	if err := sys.Bind(fd, &a); err != nil { // a holds the group and port (setInet4)
		return fail("bind", err)
	}
	mreq := &unix.IPMreqn{Multiaddr: gip, Address: loopbackIP}
	if ifi, err := net.InterfaceByName("lo"); err == nil {
		mreq.Ifindex = int32(ifi.Index)
	}
	if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, mreq); err != nil {
		return fail("setsockopt IP_ADD_MEMBERSHIP", err)
	}
	if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, mreq); err != nil {
		return fail("setsockopt IP_MULTICAST_IF", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 1); err != nil {
		return fail("setsockopt IP_MULTICAST_LOOP", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, 0); err != nil {
		return fail("setsockopt IP_MULTICAST_TTL", err)
	}
	b, err := newBase(fd, unix.AF_INET, unix.SOCK_DGRAM, c)
	if err != nil {
		return nil, err
	}
	return newDgram(b), nil
}
