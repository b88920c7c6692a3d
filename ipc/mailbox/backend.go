package mailbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/posixmq"
	"github.com/ipclab/ipclab/ipc/sysv"
)

// Backend is the kernel object behind a mailbox or port.
type Backend uint8

const (
	// PosixMQ backs the queue with a POSIX message queue (mq_overview(7)): a
	// descriptor, so waits park in the Go poller. Capacity is MaxMsgs messages.
	PosixMQ Backend = iota + 1
	// SysV backs the queue with a System V message queue (msgget(2)): no descriptor,
	// so a blocked call holds an OS thread (see ipc/sysv). Capacity is the kernel's
	// msg_qbytes (msgmnb) bytes; MaxMsgs is not enforced.
	SysV
)

// String returns "posixmq" or "sysv".
func (b Backend) String() string {
	switch b {
	case PosixMQ:
		return "posixmq"
	case SysV:
		return "sysv"
	}
	return fmt.Sprintf("Backend(%d)", uint8(b))
}

// ParseBackend parses the names String returns.
func ParseBackend(s string) (Backend, error) {
	switch s {
	case "posixmq":
		return PosixMQ, nil
	case "sysv":
		return SysV, nil
	}
	return 0, fmt.Errorf("unknown backend %q (want posixmq or sysv): %w", s, errInvalid)
}

var errInvalid = ipc.ErrInvalid

// carrier moves whole frames: a message queue or a seqpacket connection.
type carrier interface {
	trySend(p []byte) error
	send(ctx context.Context, p []byte) error
	tryRecv(p []byte) (int, error)
	recv(ctx context.Context, p []byte) (int, error)
	close() error
}

// queueLen is implemented by carriers that can count queued messages.
type queueLen interface{ len() (int, error) }

type mqCarrier struct{ q *posixmq.Queue }

func (c mqCarrier) trySend(p []byte) error                   { return c.q.TrySend(p, 0) }
func (c mqCarrier) send(ctx context.Context, p []byte) error { return c.q.Send(ctx, p, 0) }
func (c mqCarrier) tryRecv(p []byte) (int, error) {
	n, _, err := c.q.TryRecv(p)
	return n, err
}
func (c mqCarrier) recv(ctx context.Context, p []byte) (int, error) {
	n, _, err := c.q.Recv(ctx, p)
	return n, err
}
func (c mqCarrier) close() error      { return c.q.Close() }
func (c mqCarrier) len() (int, error) { return c.q.Len() }

// sysvType is the message type of every frame on a System V queue.
const sysvType = 1

type sysvCarrier struct{ q *sysv.Queue }

func (c sysvCarrier) trySend(p []byte) error { return c.q.TrySend(sysvType, p) }
func (c sysvCarrier) send(ctx context.Context, p []byte) error {
	return c.q.Send(ctx, sysvType, p)
}
func (c sysvCarrier) tryRecv(p []byte) (int, error) {
	n, _, err := c.q.TryRecv(p, sysv.Any()) // empty: ipc.ErrWouldBlock (and unix.ENOMSG)
	return n, err
}
func (c sysvCarrier) recv(ctx context.Context, p []byte) (int, error) {
	n, _, err := c.q.Recv(ctx, p, sysv.Any())
	return n, err
}
func (c sysvCarrier) close() error { return c.q.Close() }
func (c sysvCarrier) len() (int, error) {
	st, err := c.q.Stat()
	return int(st.Messages), err
}

// createQueue creates a fresh kernel queue with an unguessable name (POSIX) or a
// private key (System V), exclusively and with mode 0600.
//
// With receiveRight set, a POSIX queue is created with mode 0200: the creator's own
// descriptor can receive (mq_open checks no permission when it creates), but a later
// mq_open by anyone but a privileged user can only send. The right to receive then
// travels only as a descriptor (SCM_RIGHTS): see Port.Handover. System V checks
// permissions on every call, so there it is a matter of protocol.
func createQueue(b Backend, maxMsgs, maxFrame int, w ipc.WaitStrategy, receiveRight bool) (carrier, string, error) {
	switch b {
	case PosixMQ:
		name := "/ipclab-mbx-" + strconv.Itoa(os.Geteuid()) + "-" + randomHex(12)
		mode := os.FileMode(0o600)
		if receiveRight {
			mode = 0o200
		}
		q, err := posixmq.Create(name, posixmq.WithAttr(maxMsgs, maxFrame), posixmq.WithWait(w), posixmq.WithMode(mode))
		if err != nil {
			return nil, "", err
		}
		return mqCarrier{q}, name, nil
	case SysV:
		q, err := sysv.CreateQueue(sysv.Private)
		if err != nil {
			return nil, "", err
		}
		// The handle kept is one opened with Expect, which compares the queue's
		// change time too: nothing changes a mailbox queue's attributes, so a
		// different time means another queue under the same id (S4).
		strict, err := sysv.OpenQueueID(q.ID(), sysv.Expect(q.Identity()))
		if err != nil {
			q.Remove()
			q.Close()
			return nil, "", err
		}
		q.Close()
		return sysvCarrier{strict}, strconv.Itoa(strict.ID()), nil
	}
	return nil, "", fmt.Errorf("backend %v: %w", b, errInvalid)
}

// sysvIdentity returns what tells the System V queue behind q from a later one given
// the same id, for its record (nil for other carriers).
func sysvIdentity(q carrier) *sysv.Identity {
	if c, ok := q.(sysvCarrier); ok {
		id := c.q.Identity()
		return &id
	}
	return nil
}

// sysvOpen opens the System V queue a record names: with the identity the record
// keeps, a queue that got the id after the record's was removed is refused
// (ipc.ErrRemoved), never used or removed (S4).
func sysvOpen(rec Record) (*sysv.Queue, error) {
	id, err := strconv.Atoi(rec.Object)
	if err != nil {
		return nil, &ipc.OpError{Op: "open", Object: rec.Object, Err: errInvalid}
	}
	if rec.SysV == nil {
		return sysv.OpenQueueID(id)
	}
	return sysv.OpenQueueID(id, sysv.Expect(*rec.SysV))
}

// openQueue opens the queue a record names, refusing one not owned by the effective
// uid or open to others. sendOnly opens a POSIX queue for sending only.
func openQueue(rec Record, w ipc.WaitStrategy, sendOnly bool) (carrier, error) {
	switch rec.Backend {
	case "posixmq":
		opts := []posixmq.Option{posixmq.WithWait(w)}
		if sendOnly {
			opts = append(opts, posixmq.WriteOnly())
		}
		q, err := posixmq.Open(rec.Object, opts...)
		if err != nil {
			return nil, err
		}
		var st unix.Stat_t
		if err := unix.Fstat(q.Fd(), &st); err != nil {
			q.Close()
			return nil, ipc.Wrap("fstat", rec.Object, err)
		}
		if int(st.Uid) != os.Geteuid() || st.Mode&0o077 != 0 {
			q.Close()
			return nil, &ipc.OpError{Op: "open", Object: rec.Object,
				Err: fmt.Errorf("%w: owner %d mode %#o", ipc.ErrUntrustedObject, st.Uid, st.Mode&0o777)}
		}
		return mqCarrier{q}, nil
	case "sysv":
		q, err := sysvOpen(rec)
		if err != nil {
			return nil, err
		}
		return sysvCarrier{q}, nil
	}
	return nil, &ipc.OpError{Op: "open", Object: rec.Name, Err: fmt.Errorf("%w: backend %q", errInvalid, rec.Backend)}
}

// destroyObject removes the kernel object a record names; one already gone is fine.
func destroyObject(rec Record) error {
	switch rec.Backend {
	case "posixmq":
		if err := posixmq.Remove(rec.Object); err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
	case "sysv":
		q, err := sysvOpen(rec)
		if err != nil {
			return nil // gone (or no longer ours: never remove someone else's)
		}
		defer q.Close()
		if err := q.Remove(); err != nil && !errors.Is(err, ipc.ErrRemoved) && !errors.Is(err, unix.EINVAL) {
			return err
		}
	case "seqpacket":
		if err := os.Remove(rec.Object); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// objectExists reports whether the kernel object a record names still exists.
func objectExists(rec Record) (bool, error) {
	switch rec.Backend {
	case "posixmq":
		q, err := posixmq.Open(rec.Object)
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		if err != nil {
			return true, nil
		}
		q.Close()
		return true, nil
	case "sysv":
		if _, err := strconv.Atoi(rec.Object); err != nil {
			return false, nil
		}
		q, err := sysvOpen(rec)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, ipc.ErrRemoved) {
			return false, nil
		}
		if err != nil {
			return true, nil
		}
		q.Close()
		return true, nil
	case "seqpacket":
		_, err := os.Lstat(rec.Object)
		return err == nil, nil
	}
	return false, nil
}
