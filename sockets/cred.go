package sockets

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
)

// Cred is a process's credentials as the kernel vouches for them: from SO_PEERCRED
// (captured when the connection was made) or per message from SCM_CREDENTIALS.
type Cred struct {
	Pid int32
	Uid uint32
	Gid uint32
}

// PeerPolicy decides whether a peer may talk to us; a non-nil error rejects it.
type PeerPolicy func(Cred) error

// SameUser accepts peers running with our effective uid (the default policy of a door
// server, S8).
func SameUser() PeerPolicy {
	return AllowUsers(uint32(os.Geteuid()))
}

// AllowUsers accepts peers whose uid is one of uids.
func AllowUsers(uids ...uint32) PeerPolicy {
	uids = slices.Clone(uids)
	return func(c Cred) error {
		if slices.Contains(uids, c.Uid) {
			return nil
		}
		return fmt.Errorf("uid %d (pid %d) not in %v: %w", c.Uid, c.Pid, uids, ErrPeerRejected)
	}
}

// PeerCred returns the credentials of the process that made the connection (for a
// socketpair, the process that created it): getsockopt(SO_PEERCRED). They are taken
// at connect time: a connection handed on to another process keeps reporting the
// original connector, so re-authenticate per message with ReadMsgCred when that
// matters. Treat the pid as advisory (pids are reused); PeerPidfd is race-free.
func (b *base) PeerCred() (Cred, error) {
	var c Cred
	err := b.control(func(fd int) error {
		u, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil {
			return err
		}
		c = Cred{Pid: u.Pid, Uid: u.Uid, Gid: u.Gid}
		return nil
	})
	return c, b.wrap("getsockopt SO_PEERCRED", err)
}

// PeerPidfd returns a pidfd (close-on-exec) for the peer that made the connection:
// getsockopt(SO_PEERPIDFD), Linux 6.5. Unlike the pid it cannot be recycled, so a
// caller can check the peer still exists (poll it) or signal exactly that process.
// On older kernels the error matches unix.ENOPROTOOPT.
func (b *base) PeerPidfd() (*os.File, error) {
	var f *os.File
	err := b.control(func(fd int) error {
		pfd, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, sys.SO_PEERPIDFD)
		if err != nil {
			return err
		}
		f = os.NewFile(uintptr(pfd), fmt.Sprintf("pidfd:%s", b.name))
		return nil
	})
	return f, b.wrap("getsockopt SO_PEERPIDFD", err)
}

// checkPeer applies the configured policy to the connection's SO_PEERCRED.
func (b *base) checkPeer() error {
	if b.cfg.policy == nil {
		return nil
	}
	c, err := b.PeerCred()
	if err != nil {
		return err
	}
	if err := b.applyPolicy(c); err != nil {
		return b.wrap("peer check", err)
	}
	return nil
}

// dgramPolicy reports whether a socket of sotype configured with c vets the sender
// of every datagram, and so needs each one's credentials.
func dgramPolicy(sotype int, c config) bool { return sotype == unix.SOCK_DGRAM && c.policy != nil }

// applyPolicy applies the configured policy to c; a refusal matches ErrPeerRejected.
func (b *base) applyPolicy(c Cred) error {
	err := b.cfg.policy(c)
	if err != nil && !errors.Is(err, ErrPeerRejected) {
		err = fmt.Errorf("%w: %w", ErrPeerRejected, err)
	}
	return err
}
