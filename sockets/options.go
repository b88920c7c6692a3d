package sockets

import (
	"fmt"
	"io/fs"
	"net/netip"

	"github.com/ipclab/ipclab/ipc"
)

// DefaultMaxFds is the default cap on descriptors accepted or sent in one message.
const DefaultMaxFds = 16

// maxFdsLimit is SCM_MAX_FD, the kernel's own cap on descriptors per message.
const maxFdsLimit = 253

// Option configures the constructors (Listen*, Dial*, *Pair, File*).
type Option func(*config)

type config struct {
	wait     ipc.WaitStrategy
	maxFds   int
	mode     fs.FileMode
	policy   PeerPolicy
	abstract bool
	passCred bool
	autobind bool
	noFds    bool
	backlog  int
	inet     netip.Prefix
}

// WithWait sets how blocking calls wait: ipc.WaitAuto (the default: a call with no
// context that can end and no deadline sleeps in the kernel while it is expected to
// be short, and moves to the Go runtime poller if it stays blocked; others wait in
// the poller), ipc.WaitPoller (the descriptor is non-blocking and in the poller) or
// ipc.WaitKernel (the calling thread sleeps inside recvmsg/sendmsg/accept4,
// interrupted by a signal on cancellation, Close or a deadline). Listeners in the
// default mode wait in the poller; the connections they accept use the default.
func WithWait(w ipc.WaitStrategy) Option { return func(c *config) { c.wait = w } }

// WithMaxFds sets the cap on descriptors per message (default DefaultMaxFds, at most
// 253, the kernel's SCM_MAX_FD). The receive control buffer is sized for exactly this
// many, so a peer sending more trips MSG_CTRUNC.
func WithMaxFds(n int) Option { return func(c *config) { c.maxFds = n } }

// WithMode sets the permission bits of a socket file created by a Listen call
// (default 0600). The directory's permissions remain the real guard.
func WithMode(m fs.FileMode) Option { return func(c *config) { c.mode = m } }

// WithPeerPolicy checks the peer's SO_PEERCRED credentials on every accepted or
// dialled connection; a connection the policy rejects is closed and the call fails
// with an error matching ErrPeerRejected.
func WithPeerPolicy(p PeerPolicy) Option { return func(c *config) { c.policy = p } }

// AllowAbstract permits abstract-namespace names ("@name") and autobound listeners.
// Abstract names have no permissions and the first binder wins (CVE-2020-15257), so a
// peer policy is mandatory: p is checked against every peer, the server a client
// dialled included. A nil p is an error.
func AllowAbstract(p PeerPolicy) Option {
	return func(c *config) { c.abstract = true; c.policy = p }
}

// PassCred sets SO_PASSCRED: every received message then carries the sender's
// credentials (SCM_CREDENTIALS), read with ReadMsgCred.
func PassCred() Option { return func(c *config) { c.passCred = true } }

// AutoBind binds a dialling datagram socket to a kernel-chosen abstract name first
// (autobind), so the server can reply to it.
func AutoBind() Option { return func(c *config) { c.autobind = true } }

// RefuseFds makes the kernel refuse descriptors sent to this socket (SO_PASSRIGHTS=0,
// Linux 6.16). On older kernels the option is ignored and unexpected descriptors are
// closed on receipt instead.
func RefuseFds() Option { return func(c *config) { c.noFds = true } }

// WithBacklog sets the listen(2) backlog (default 128).
func WithBacklog(n int) Option { return func(c *config) { c.backlog = n } }

// AllowInetPrefix makes the TCP and UDP constructors, and SendTo on the sockets they
// return, accept IPv4 addresses in p besides 127.0.0.0/8: for a network the caller
// made itself, such as a veth pair between two network namespaces of its own (ipclab's
// rule: the library reaches only addresses the user created, never others). p must
// be an IPv4 prefix inside the private-use ranges of RFC 1918 (10.0.0.0/8,
// 172.16.0.0/12, 192.168.0.0/16), in canonical form (no host bits set), so that the
// option can never open a socket to a routable address. It does not authenticate
// anyone: a peer in p is another host, whatever credentials it claims.
func AllowInetPrefix(p netip.Prefix) Option { return func(c *config) { c.inet = p } }

// privateInet4 reports whether every address of p is private-use (RFC 1918).
func privateInet4(p netip.Prefix) bool {
	if !p.IsValid() || !p.Addr().Is4() || p.Masked() != p {
		return false
	}
	for _, r := range []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
	} {
		if p.Bits() >= r.Bits() && r.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// buildConfig applies opts to the defaults and checks the result; bad options are
// an *ipc.OpError matching ipc.ErrInvalid, before any system call.
func buildConfig(opts []Option) (config, error) {
	c := config{maxFds: DefaultMaxFds, mode: 0o600, backlog: 128}
	for i, o := range opts {
		if o == nil {
			return c, optErr("option %d is nil: %w", i, ipc.ErrInvalid)
		}
		o(&c)
	}
	if c.wait != ipc.WaitAuto && c.wait != ipc.WaitPoller && c.wait != ipc.WaitKernel {
		return c, optErr("wait strategy %v not supported (want auto, poller or kernel): %w", c.wait, ipc.ErrInvalid)
	}
	if c.maxFds < 0 || c.maxFds > maxFdsLimit {
		return c, optErr("max fds %d out of range [0,%d]: %w", c.maxFds, maxFdsLimit, ipc.ErrInvalid)
	}
	if c.abstract && c.policy == nil {
		return c, optErr("abstract names need a peer policy: %w", ipc.ErrInvalid)
	}
	if c.mode&^fs.ModePerm != 0 {
		return c, optErr("mode %v has bits other than permissions: %w", c.mode, ipc.ErrInvalid)
	}
	if c.inet != (netip.Prefix{}) && !privateInet4(c.inet) {
		return c, optErr("prefix %v is not a canonical IPv4 prefix inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16: %w", c.inet, ipc.ErrInvalid)
	}
	if c.backlog <= 0 {
		return c, optErr("backlog %d: %w", c.backlog, ipc.ErrInvalid)
	}
	return c, nil
}

// optErr is the error for bad options: format and args describe the problem.
func optErr(format string, args ...any) error {
	return &ipc.OpError{Op: "sockets options", Err: fmt.Errorf(format, args...)}
}
