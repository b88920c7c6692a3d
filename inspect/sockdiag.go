package inspect

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
)

// This file reads sockets from the kernel's sock_diag netlink interface
// (NETLINK_SOCK_DIAG), as ss(8) does. sock_diag reports the sockets of the reader's
// network namespace only. The request and reply layouts are those of
// linux/unix_diag.h and linux/inet_diag.h, in native byte order except the inet
// ports and addresses, which are in network order.

// Layout of struct unix_diag_req and struct unix_diag_msg, and the unix_diag
// request flags and reply attributes used here.
const (
	sizeofUnixDiagReq = 24 // family, protocol, pad[2], states, ino, show, cookie[2]
	sizeofUnixDiagMsg = 16 // family, type, state, pad, ino, cookie[2]

	udiagShowName  = 0x01
	udiagShowPeer  = 0x04
	udiagShowIcons = 0x08
	udiagShowRqlen = 0x10
	udiagShowUID   = 0x40

	unixDiagName  = 0
	unixDiagPeer  = 2
	unixDiagIcons = 3
	unixDiagRqlen = 4
	unixDiagUID   = 7
)

// Layout of struct inet_diag_req_v2 and struct inet_diag_msg (which embeds struct
// inet_diag_sockid at offset 4).
const (
	sizeofInetDiagReqV2 = 56
	sizeofInetDiagMsg   = 72

	inetDiagSport  = 4  // __be16
	inetDiagDport  = 6  // __be16
	inetDiagSrc    = 8  // __be32[4]
	inetDiagDst    = 24 // __be32[4]
	inetDiagRqueue = 56
	inetDiagWqueue = 60
	inetDiagUID    = 64
	inetDiagInode  = 68
)

// The kernel's TCP state numbers (include/net/tcp_states.h), which Unix and UDP
// sockets use too.
const (
	tcpEstablished = 1
	tcpClose       = 7
)

// tcpStates names the TCP states as ss prints them, lowercase and spelled out.
var tcpStates = [...]string{
	1:  "established",
	2:  "syn-sent",
	3:  "syn-recv",
	4:  "fin-wait-1",
	5:  "fin-wait-2",
	6:  "time-wait",
	7:  "close",
	8:  "close-wait",
	9:  "last-ack",
	10: "listen",
	11: "closing",
	12: "new-syn-recv",
	13: "bound-inactive",
}

// stateName names a socket's kernel state. A Unix or UDP socket in TCP_CLOSE is
// "unconnected" (ss's UNCONN); a TCP socket in it is "close".
func stateName(state uint8, tcp bool) string {
	if state == tcpClose && !tcp {
		return "unconnected"
	}
	if int(state) < len(tcpStates) && tcpStates[state] != "" {
		return tcpStates[state]
	}
	return "state-" + strconv.Itoa(int(state))
}

// ne is the byte order of netlink messages: the host's.
var ne = binary.NativeEndian

// malformed is the error for a reply that is shorter than its layout or its own
// length fields say.
func malformed(format string, args ...any) error {
	return fmt.Errorf("malformed sock_diag reply: %s: %w", fmt.Sprintf(format, args...), unix.EBADMSG)
}

// readUnixSockets returns every Unix socket the kernel reports, in all states, as
// Objects: ID "unix:INODE", Kind KindUnixStream, KindUnixDgram or KindUnixSeqpacket,
// Name the bound path ("@name" for an abstract name, every NUL in it shown as @ as ss
// does; "" if unbound), State "listen", "established" or "unconnected", Peer
// "unix:PEERINODE" when the kernel names a peer (an unaccepted connection's peer has
// no inode, and none is set), UID the socket's owner (-1 if the kernel does not say).
//
// Queued and SendQueued are UNIX_DIAG_RQLEN's two numbers. For a listener they are
// the accept queue's length in connections and the backlog limit, and Pending is the
// number of connections waiting (UNIX_DIAG_ICONS). Otherwise Queued is bytes: for a
// stream or seqpacket socket every byte in the receive queue, for a datagram socket
// the size of the first datagram only (what FIONREAD says); and SendQueued is the
// memory the socket's sent, unread skbs take (sk_wmem_alloc, which counts skb
// overhead too, not payload bytes). Queued is -1 if the kernel did not report it.
func readUnixSockets() ([]Object, error) {
	c, err := openDiag()
	if err != nil {
		return nil, err
	}
	defer c.close()
	req := make([]byte, sizeofUnixDiagReq)
	req[0] = unix.AF_UNIX
	ne.PutUint32(req[4:], ^uint32(0)) // every state
	ne.PutUint32(req[12:], udiagShowName|udiagShowPeer|udiagShowIcons|udiagShowRqlen|udiagShowUID)
	var objs []Object
	err = c.dump("unix", req, func(m []byte) error {
		o, err := parseUnixDiag(m)
		if err == nil {
			objs = append(objs, o)
		}
		return err
	})
	return objs, err
}

// parseUnixDiag reads one struct unix_diag_msg and its attributes.
func parseUnixDiag(m []byte) (Object, error) {
	if len(m) < sizeofUnixDiagMsg {
		return Object{}, malformed("unix_diag_msg of %d bytes", len(m))
	}
	ino := uint64(ne.Uint32(m[4:]))
	o := Object{
		ID:     "unix:" + strconv.FormatUint(ino, 10),
		Kind:   unixKind(m[1]),
		Inode:  ino,
		State:  stateName(m[2], false),
		UID:    -1,
		GID:    -1,
		Queued: -1,
	}
	err := parseAttrs(m[sizeofUnixDiagMsg:], func(typ uint16, v []byte) error {
		switch typ {
		case unixDiagName:
			o.Name = unixName(v)
		case unixDiagPeer:
			if len(v) < 4 {
				return malformed("UNIX_DIAG_PEER of %d bytes", len(v))
			}
			if peer := ne.Uint32(v); peer != 0 {
				o.Peer = "unix:" + strconv.FormatUint(uint64(peer), 10)
			}
		case unixDiagIcons:
			o.Pending = len(v) / 4 // one inode per waiting connection
		case unixDiagRqlen:
			if len(v) < 8 {
				return malformed("UNIX_DIAG_RQLEN of %d bytes", len(v))
			}
			o.Queued = int64(ne.Uint32(v))
			o.SendQueued = int64(ne.Uint32(v[4:]))
		case unixDiagUID:
			if len(v) < 4 {
				return malformed("UNIX_DIAG_UID of %d bytes", len(v))
			}
			o.UID = int(ne.Uint32(v))
		}
		return nil
	})
	return o, err
}

// unixKind names a Unix socket's type (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET).
func unixKind(typ uint8) string {
	switch typ {
	case unix.SOCK_STREAM:
		return KindUnixStream
	case unix.SOCK_DGRAM:
		return KindUnixDgram
	case unix.SOCK_SEQPACKET:
		return KindUnixSeqpacket
	}
	return "unix-type-" + strconv.Itoa(int(typ))
}

// unixName turns UNIX_DIAG_NAME's sun_path bytes into a Name: a path ends at its
// first NUL; an abstract name (leading NUL) keeps its exact length, with every NUL
// shown as @.
func unixName(b []byte) string {
	if len(b) > 0 && b[0] == 0 {
		return strings.ReplaceAll(string(b), "\x00", "@")
	}
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// inetDump is one inet_diag dump: an address family and a protocol.
type inetDump struct {
	family, proto uint8
	kind, what    string
}

var inetDumps = []inetDump{
	{unix.AF_INET, unix.IPPROTO_TCP, KindTCP, "tcp4"},
	{unix.AF_INET6, unix.IPPROTO_TCP, KindTCP, "tcp6"},
	{unix.AF_INET, unix.IPPROTO_UDP, KindUDP, "udp4"},
	{unix.AF_INET6, unix.IPPROTO_UDP, KindUDP, "udp6"},
}

// readInetSockets returns the TCP and UDP sockets, IPv4 and IPv6, whose local or
// remote address is a loopback address (127.0.0.0/8, ::1, ::ffff:127.x), in every
// state, as Objects: ID "tcp:INODE" or "udp:INODE", Kind KindTCP or KindUDP, Local
// and Remote ("127.0.0.1:8080", "[::1]:53"; Remote is "" for a socket with no peer),
// State as ss names it, lowercase and spelled out ("listen", "established",
// "time-wait", ...; a UDP socket is "unconnected" or "established"), Queued and
// SendQueued the kernel's idiag_rqueue and idiag_wqueue, UID idiag_uid.
//
// For a TCP listener Queued is the accept queue's length in connections and
// SendQueued the backlog limit; for a connected TCP socket they are the bytes not
// yet read and not yet acknowledged; for UDP, the memory the receive and send
// queues take. A socket no descriptor holds (time-wait, a connection request) has
// no inode: its ID is "tcp:LOCAL->REMOTE", Inode 0 and UID -1.
func readInetSockets() ([]Object, error) {
	c, err := openDiag()
	if err != nil {
		return nil, err
	}
	defer c.close()
	var objs []Object
	for _, d := range inetDumps {
		req := make([]byte, sizeofInetDiagReqV2)
		req[0], req[1] = d.family, d.proto
		ne.PutUint32(req[4:], ^uint32(0)) // every state; the zero sockid matches all
		err := c.dump(d.what, req, func(m []byte) error {
			o, loopback, err := parseInetDiag(m, d.kind)
			if err == nil && loopback {
				objs = append(objs, o)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return objs, nil
}

// parseInetDiag reads one struct inet_diag_msg, and reports whether either of its
// addresses is a loopback address.
func parseInetDiag(m []byte, kind string) (o Object, loopback bool, err error) {
	if len(m) < sizeofInetDiagMsg {
		return Object{}, false, malformed("inet_diag_msg of %d bytes", len(m))
	}
	var local, remote netip.Addr
	switch m[0] {
	case unix.AF_INET:
		local = netip.AddrFrom4([4]byte(m[inetDiagSrc:]))
		remote = netip.AddrFrom4([4]byte(m[inetDiagDst:]))
	case unix.AF_INET6:
		local = netip.AddrFrom16([16]byte(m[inetDiagSrc:]))
		remote = netip.AddrFrom16([16]byte(m[inetDiagDst:]))
	default:
		return Object{}, false, malformed("inet_diag_msg of family %d", m[0])
	}
	lport := binary.BigEndian.Uint16(m[inetDiagSport:])
	rport := binary.BigEndian.Uint16(m[inetDiagDport:])
	ino := uint64(ne.Uint32(m[inetDiagInode:]))
	o = Object{
		Kind:       kind,
		Inode:      ino,
		Local:      netip.AddrPortFrom(local, lport).String(),
		State:      stateName(m[1], kind == KindTCP),
		UID:        int(ne.Uint32(m[inetDiagUID:])),
		GID:        -1,
		Queued:     int64(ne.Uint32(m[inetDiagRqueue:])),
		SendQueued: int64(ne.Uint32(m[inetDiagWqueue:])),
	}
	if !remote.IsUnspecified() || rport != 0 {
		o.Remote = netip.AddrPortFrom(remote, rport).String()
	}
	if ino != 0 {
		o.ID = kind + ":" + strconv.FormatUint(ino, 10)
	} else {
		o.ID = kind + ":" + o.Local + "->" + o.Remote
		o.UID = -1
	}
	return o, local.Unmap().IsLoopback() || remote.Unmap().IsLoopback(), nil
}

// diagConn is a NETLINK_SOCK_DIAG socket.
type diagConn struct {
	fd  int
	seq uint32
	buf []byte
}

// openDiag opens a sock_diag netlink socket.
func openDiag() (*diagConn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, ipc.Wrap("socket", "sock_diag", err)
	}
	// A dump's datagrams are at most 32 KiB; twice that leaves room.
	return &diagConn{fd: fd, buf: make([]byte, 64<<10)}, nil
}

// close closes the socket.
func (c *diagConn) close() { unix.Close(c.fd) }

// dump sends a SOCK_DIAG_BY_FAMILY dump request whose payload is req and calls fn
// with the payload of every reply, until the kernel says the dump is done. what
// names the dump in errors ("unix", "tcp4", ...).
func (c *diagConn) dump(what string, req []byte, fn func(payload []byte) error) error {
	object := "sock_diag:" + what
	c.seq++
	msg := make([]byte, unix.NLMSG_HDRLEN+len(req))
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(msg[8:], c.seq)
	copy(msg[unix.NLMSG_HDRLEN:], req)
	if err := unix.Sendto(c.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return ipc.Wrap("sendto", object, err)
	}
	for {
		n, _, err := unix.Recvfrom(c.fd, c.buf, unix.MSG_TRUNC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return ipc.Wrap("recvfrom", object, err)
		}
		if n > len(c.buf) { // MSG_TRUNC makes n the datagram's real length
			return ipc.Wrap("recvfrom", object, malformed("datagram of %d bytes truncated", n))
		}
		done, err := c.replies(c.buf[:n], fn)
		if err != nil {
			return ipc.Wrap("dump", object, err)
		}
		if done {
			return nil
		}
	}
}

// replies walks the netlink messages of one datagram, calling fn with the payload
// of each reply to the current request. It reports whether the dump is over: an
// NLMSG_DONE, or a reply that is not part of a multipart message.
func (c *diagConn) replies(b []byte, fn func([]byte) error) (done bool, err error) {
	for len(b) > 0 {
		if len(b) < unix.NLMSG_HDRLEN {
			return false, malformed("%d bytes left after the last message", len(b))
		}
		length := int(ne.Uint32(b[0:]))
		typ, flags, seq := ne.Uint16(b[4:]), ne.Uint16(b[6:]), ne.Uint32(b[8:])
		if length < unix.NLMSG_HDRLEN || length > len(b) {
			return false, malformed("message length %d in a datagram of %d bytes", length, len(b))
		}
		payload := b[unix.NLMSG_HDRLEN:length]
		b = b[min(nlmsgAlign(length), len(b)):]
		if seq != c.seq {
			continue // a reply to an earlier request
		}
		switch typ {
		case unix.NLMSG_DONE:
			// Its payload, when there is one, is the dump's final status.
			if len(payload) >= 4 {
				if e := int32(ne.Uint32(payload)); e < 0 {
					return true, unix.Errno(-e)
				}
			}
			return true, nil
		case unix.NLMSG_ERROR:
			if len(payload) < 4 {
				return false, malformed("NLMSG_ERROR of %d bytes", len(payload))
			}
			if e := int32(ne.Uint32(payload)); e < 0 {
				return true, unix.Errno(-e)
			}
			return true, nil // an acknowledgement
		case unix.SOCK_DIAG_BY_FAMILY:
			if err := fn(payload); err != nil {
				return false, err
			}
		}
		if flags&unix.NLM_F_MULTI == 0 {
			return true, nil
		}
	}
	return false, nil
}

// nlmsgAlign rounds a netlink message length up to NLMSG_ALIGNTO.
func nlmsgAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// parseAttrs calls fn with the type and value of every netlink attribute in b.
func parseAttrs(b []byte, fn func(typ uint16, value []byte) error) error {
	for len(b) > 0 {
		if len(b) < unix.SizeofNlAttr {
			return malformed("%d bytes left after the last attribute", len(b))
		}
		length := int(ne.Uint16(b[0:]))
		if length < unix.SizeofNlAttr || length > len(b) {
			return malformed("attribute length %d with %d bytes left", length, len(b))
		}
		if err := fn(ne.Uint16(b[2:])&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER), b[unix.SizeofNlAttr:length]); err != nil {
			return err
		}
		b = b[min(nlmsgAlign(length), len(b)):]
	}
	return nil
}
