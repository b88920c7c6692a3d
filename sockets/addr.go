package sockets

import (
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

// kindName names a socket type for errors and descriptions.
func kindName(family, sotype int) string {
	if family == unix.AF_INET {
		if sotype == unix.SOCK_STREAM {
			return "tcp"
		}
		return "udp"
	}
	switch sotype {
	case unix.SOCK_STREAM:
		return "unix-stream"
	case unix.SOCK_SEQPACKET:
		return "unix-seqpacket"
	case unix.SOCK_DGRAM:
		return "unix-dgram"
	}
	return fmt.Sprintf("socket(type %d)", sotype)
}

// unixNet is the net package's network name for a Unix socket type.
func unixNet(sotype int) string {
	switch sotype {
	case unix.SOCK_DGRAM:
		return "unixgram"
	case unix.SOCK_SEQPACKET:
		return "unixpacket"
	}
	return "unix"
}

// sockAddrs returns the socket's own and its peer's addresses (nil when none or
// unnamed) and whether it is connected.
func sockAddrs(fd, sotype int) (local, remote net.Addr, connected bool) {
	var a sys.Addr
	if sys.Getsockname(fd, &a) == nil {
		local = toNetAddr(&a, sotype)
	}
	if sys.Getpeername(fd, &a) == nil {
		remote, connected = toNetAddr(&a, sotype), true
	}
	return local, remote, connected
}

// toNetAddr converts a kernel address; an unnamed Unix address is nil.
func toNetAddr(a *sys.Addr, sotype int) net.Addr {
	switch a.Family() {
	case unix.AF_UNIX:
		name, _ := a.Unix()
		if name == "" {
			return nil
		}
		return &net.UnixAddr{Name: name, Net: unixNet(sotype)}
	case unix.AF_INET:
		ip, port, _ := a.Inet4()
		if sotype == unix.SOCK_STREAM {
			return &net.TCPAddr{IP: net.IP(ip[:]), Port: port}
		}
		return &net.UDPAddr{IP: net.IP(ip[:]), Port: port}
	}
	return nil
}

func describe(family, sotype int, local, remote net.Addr) string {
	s := kindName(family, sotype)
	if local != nil {
		s += " " + local.String()
	} else {
		s += " (unnamed)"
	}
	if remote != nil {
		s += "->" + remote.String()
	}
	return s
}

// setUnixName validates a Unix socket name and stores it in a. Abstract names need
// abstract (the AllowAbstract option).
func setUnixName(a *sys.Addr, name string, abstract bool) error {
	if len(name) > 0 && name[0] == '@' && !abstract {
		return fmt.Errorf("abstract name %q without AllowAbstract: %w", name, ipc.ErrInvalid)
	}
	if err := a.SetUnix(name); err != nil {
		return fmt.Errorf("unix socket name %q too long or malformed: %w", name, ipc.ErrInvalid)
	}
	return nil
}

// setInet4 parses "127.x.y.z:port" and stores it in a. Only loopback addresses are
// accepted, plus multicast groups when multicast is true and addresses in allow (the
// AllowInetPrefix option; the zero Prefix allows nothing).
func setInet4(a *sys.Addr, hostport string, multicast bool, allow netip.Prefix) error {
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		return fmt.Errorf("address %q: %v: %w", hostport, err, ipc.ErrInvalid)
	}
	return setAddrPort(a, ap, multicast, allow)
}

func setAddrPort(a *sys.Addr, ap netip.AddrPort, multicast bool, allow netip.Prefix) error {
	ip := ap.Addr().Unmap()
	if !ip.Is4() || !(ip.IsLoopback() || (multicast && ip.IsMulticast()) || (allow.IsValid() && allow.Contains(ip))) {
		if allow.IsValid() {
			return fmt.Errorf("address %v is neither an IPv4 loopback address nor in %v: %w", ap, allow, ipc.ErrInvalid)
		}
		return fmt.Errorf("address %v is not an IPv4 loopback address (only 127.0.0.0/8 is allowed): %w", ap, ipc.ErrInvalid)
	}
	a.SetInet4(ip.As4(), int(ap.Port()))
	return nil
}

// setNetAddr stores a destination given as a net.Addr without allocating.
func setNetAddr(a *sys.Addr, addr net.Addr, family int, allow netip.Prefix) error {
	switch v := addr.(type) {
	case *net.UnixAddr:
		if family != unix.AF_UNIX {
			break
		}
		return setUnixName(a, v.Name, true)
	case *net.UDPAddr:
		if family != unix.AF_INET {
			break
		}
		return setAddrPort(a, v.AddrPort(), true, allow)
	}
	return fmt.Errorf("destination %v (%T) does not suit this socket: %w", addr, addr, ipc.ErrInvalid)
}
