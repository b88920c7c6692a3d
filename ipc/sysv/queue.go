package sysv

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

// Perm is an object's struct ipc_perm.
type Perm struct {
	Key  Key
	UID  uint32 // owner
	GID  uint32
	CUID uint32 // creator
	CGID uint32
	// Mode holds the permission bits and, for segments, the SHM_DEST (01000) and
	// SHM_LOCKED (02000) state bits.
	Mode uint32
	Seq  uint16
}

func permOf(p *unix.SysvIpcPerm) Perm {
	return Perm{Key: Key(p.Key), UID: p.Uid, GID: p.Gid, CUID: p.Cuid, CGID: p.Cgid, Mode: p.Mode, Seq: p.Seq}
}

// unixTime converts a System V time (seconds, 0 = never) to a time.Time (zero = never).
func unixTime(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0)
}

// Queue is a handle on a System V message queue. Its methods may be called
// concurrently.
type Queue struct {
	msgmax atomicInt // first: Send reads it beside the object's hot fields
	object
}

// QueueStat is a queue's struct msqid_ds.
type QueueStat struct {
	Perm        Perm
	SendTime    time.Time // last msgsnd (zero: never)
	RecvTime    time.Time // last msgrcv (zero: never)
	ChangeTime  time.Time // creation or last IPC_SET
	Bytes       uint64    // bytes of text queued
	Messages    uint64    // messages queued
	MaxBytes    uint64    // capacity in bytes (msg_qbytes)
	LastSendPID int
	LastRecvPID int
}

// CreateQueue creates a message queue (msgget(2) with IPC_CREAT|IPC_EXCL): key Private
// for a new anonymous queue, otherwise a key no object uses yet (unix.EEXIST if one
// does). Options: WithMode, AllowWorld, AllowGroup.
func CreateQueue(key Key, opts ...Option) (*Queue, error) {
	c, err := buildConfig("msgget", opts)
	if err != nil {
		return nil, err
	}
	id, err := sys.Msgget(int32(key), unix.IPC_CREAT|unix.IPC_EXCL|int(c.mode))
	if err != nil {
		return nil, ipc.Wrap("msgget", key.String(), err)
	}
	q := newQueue(id, key, c)
	return created(q, &q.object, "msgget")
}

// OpenQueue opens the existing queue with key (unix.ENOENT if there is none) and
// checks its owner and mode (see the package doc; ipc.ErrUntrustedObject). Options:
// WithAccess or ReadOnly, WithOwner, WithMode (widest accepted).
func OpenQueue(key Key, opts ...Option) (*Queue, error) {
	c, err := buildConfig("msgget", opts)
	if err != nil {
		return nil, err
	}
	if key == Private {
		return nil, ipc.Wrap("msgget", key.String(), ipc.ErrInvalid)
	}
	id, err := sys.Msgget(int32(key), int(c.access))
	if err != nil {
		return nil, ipc.Wrap("msgget", key.String(), err)
	}
	return openQueue(id, key, c)
}

// OpenQueueID opens the queue with the given id (passed on by its creator) and checks
// its owner and mode as OpenQueue does.
func OpenQueueID(id int, opts ...Option) (*Queue, error) {
	c, err := buildConfig("msgctl", opts)
	if err != nil {
		return nil, err
	}
	if id < 0 {
		return nil, ipc.Wrap("msgctl", "msg", ipc.ErrInvalid)
	}
	return openQueue(id, Private, c)
}

func openQueue(id int, key Key, c config) (*Queue, error) {
	q := newQueue(id, key, c)
	st, err := q.stat()
	if err != nil {
		return nil, openErr("msgctl IPC_STAT", q.name, err)
	}
	if err := c.verify(st.uid, st.ident.CUID, st.mode); err != nil {
		return nil, ipc.Wrap("open", q.name, err)
	}
	q.strict = c.expect != nil && c.expect.ChangeTime != 0
	if err := q.adopt("open", st, false); err != nil {
		return nil, err
	}
	return q, nil
}

func newQueue(id int, key Key, c config) *Queue {
	q := &Queue{}
	q.init("msg", id, key, c, func() (objStat, error) {
		var ds sys.MsqidDS
		_, err := sys.MsgctlStat(id, unix.IPC_STAT, &ds)
		if err == unix.EACCES {
			return procStat("msg", id)
		}
		return queueIdent(&ds), err
	}, unix.SYS_MSGRCV, unix.SYS_MSGSND)
	q.msgmax.Store(8192)
	q.refreshMsgmax()
	return q
}

func queueIdent(ds *sys.MsqidDS) objStat {
	return objStat{ident: Identity{Key: Key(ds.Perm.Key), CUID: ds.Perm.Cuid, CGID: ds.Perm.Cgid, ChangeTime: ds.Ctime},
		uid: ds.Perm.Uid, mode: ds.Perm.Mode}
}

// refreshMsgmax re-reads /proc/sys/kernel/msgmax (alone: ReadLimits reads every
// limit); on failure the last value stands.
func (q *Queue) refreshMsgmax() {
	if b, err := os.ReadFile("/proc/sys/kernel/msgmax"); err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			q.msgmax.Store(v)
		}
	}
}

// Selector says which message Recv takes. The zero Selector is Any.
type Selector struct {
	typ      int64
	flags    int
	truncate bool
	bad      bool
}

// Any selects the first message in the queue (msgtyp 0).
func Any() Selector { return Selector{} }

// OfType selects the first message of type t (> 0).
func OfType(t int64) Selector { return Selector{typ: t, bad: t <= 0} }

// UpTo selects the first message with the lowest type not above t (> 0): msgtyp -t.
// It gives priority queues: smaller types first.
func UpTo(t int64) Selector { return Selector{typ: -t, bad: t <= 0} }

// Except selects the first message whose type is not t (> 0): MSG_EXCEPT.
func Except(t int64) Selector { return Selector{typ: t, flags: sys.MSG_EXCEPT, bad: t <= 0} }

// Truncate returns s that accepts a message longer than the buffer: the buffer is
// filled, the rest of the message is discarded, and Recv reports the loss with an
// error matching ipc.ErrTruncated (MSG_NOERROR). Without it, such a message stays
// queued and Recv fails with unix.E2BIG.
func (s Selector) Truncate() Selector { s.truncate = true; return s }

// smallMsg is the longest text that Send and Recv move through a buffer on the stack;
// longer ones go through a pooled buffer.
const smallMsg = 256

// bufPool holds message buffers (type header + text), so that Send and Recv allocate
// nothing per message.
var bufPool = sync.Pool{New: func() any { return new(msgBuf) }}

type msgBuf struct{ b []byte }

// getBuf returns a buffer of n bytes from the pool (whose fast path costs no atomic
// instruction).
func getBuf(n int) *msgBuf {
	mb := bufPool.Get().(*msgBuf)
	if cap(mb.b) < n {
		mb.b = make([]byte, n, max(n, 256))
	}
	mb.b = mb.b[:n]
	return mb
}

func (q *Queue) checkSend(mtype int64, data []byte) error {
	if err := q.ready("msgsnd"); err != nil {
		return err
	}
	if mtype <= 0 {
		return ipc.Wrap("msgsnd", q.name, fmt.Errorf("message type %d, want > 0: %w", mtype, ipc.ErrInvalid))
	}
	if len(data) > int(q.msgmax.Load()) {
		q.refreshMsgmax() // the limit may have been raised since
		if limit := q.msgmax.Load(); len(data) > int(limit) {
			return ipc.Wrap("msgsnd", q.name, fmt.Errorf("%d-byte message over msgmax (%d bytes, /proc/sys/kernel/msgmax): %w",
				len(data), limit, ipc.ErrInvalid))
		}
	}
	return nil
}

// Send queues a message of type mtype (> 0) with text data (at most msgmax bytes),
// waiting while the queue is full until ctx ends (msgsnd(2)).
func (q *Queue) Send(ctx context.Context, mtype int64, data []byte) error {
	if mtype > 0 && len(data) <= smallMsg && ctx.Done() == nil && len(data) <= int(q.msgmax.Load()) && !q.recheck.Load() {
		// The hot path: a short message, built on the stack, sent under a context
		// that cannot end (only Close interrupts it), with the identity confirmed
		// less than recheckEvery ago.
		var b [sys.MsgHeaderSize + smallMsg]byte
		binary.NativeEndian.PutUint64(b[:], uint64(mtype))
		n := sys.MsgHeaderSize + copy(b[sys.MsgHeaderSize:], data)
		for q.enter() {
			errno := sys.MsgsndErrno(q.id, b[:n], 0)
			q.leave()
			if errno == 0 {
				return nil
			}
			if errno != unix.EINTR {
				return q.fail("msgsnd", errno)
			}
		}
		// closed or removed: the full path says which
	}
	if err := q.checkSend(mtype, data); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return q.fail("msgsnd", err)
	}
	mb := getBuf(sys.MsgHeaderSize + len(data))
	b := mb.b
	binary.NativeEndian.PutUint64(b, uint64(mtype))
	copy(b[sys.MsgHeaderSize:], data)
	id := q.id
	var err error
	if ctx.Done() == nil {
		err = q.block(ctx, func() error { return sys.Msgsnd(id, b, 0) })
	} else if err = sys.Msgsnd(id, b, unix.IPC_NOWAIT); err == unix.EAGAIN {
		err = q.block(ctx, func() error { return sys.Msgsnd(id, b, 0) })
	}
	bufPool.Put(mb)
	return q.fail("msgsnd", err)
}

// TrySend is Send without waiting: with the queue full it returns an error matching
// ipc.ErrWouldBlock and unix.EAGAIN.
func (q *Queue) TrySend(mtype int64, data []byte) error {
	if err := q.checkSend(mtype, data); err != nil {
		return err
	}
	mb := getBuf(sys.MsgHeaderSize + len(data))
	binary.NativeEndian.PutUint64(mb.b, uint64(mtype))
	copy(mb.b[sys.MsgHeaderSize:], data)
	err := sys.Msgsnd(q.id, mb.b, unix.IPC_NOWAIT)
	bufPool.Put(mb)
	return q.fail("msgsnd", err)
}

// Recv takes the message sel selects into buf, waiting until there is one or ctx ends
// (msgrcv(2)). It returns the text's length and the message's type. A message longer
// than buf stays queued (unix.E2BIG) unless sel.Truncate() was used, in which case buf
// is filled and the error matches ipc.ErrTruncated.
func (q *Queue) Recv(ctx context.Context, buf []byte, sel Selector) (int, int64, error) {
	if len(buf) <= smallMsg && ctx.Done() == nil && !sel.bad && !sel.truncate && !q.recheck.Load() {
		// The hot path, as in Send: a short message received on the stack.
		var b [sys.MsgHeaderSize + smallMsg]byte
		for q.enter() {
			n, errno := sys.MsgrcvErrno(q.id, b[:sys.MsgHeaderSize+len(buf)], sel.typ, sel.flags)
			q.leave()
			if errno == 0 {
				copy(buf, b[sys.MsgHeaderSize:sys.MsgHeaderSize+n])
				return n, int64(binary.NativeEndian.Uint64(b[:])), nil
			}
			if errno != unix.EINTR {
				return 0, 0, q.fail("msgrcv", errno)
			}
		}
	}
	return q.recv(ctx, buf, sel, true)
}

// TryRecv is Recv without waiting: with no matching message it returns an error
// matching ipc.ErrWouldBlock and unix.ENOMSG.
func (q *Queue) TryRecv(buf []byte, sel Selector) (int, int64, error) {
	return q.recv(context.Background(), buf, sel, false)
}

// Peek copies message number index (0 is the oldest) into buf without removing it
// (MSG_COPY, which needs CONFIG_CHECKPOINT_RESTORE). It never waits: with fewer
// messages queued it returns an error matching ipc.ErrWouldBlock and unix.ENOMSG.
func (q *Queue) Peek(buf []byte, index int) (int, int64, error) {
	if index < 0 {
		return 0, 0, ipc.Wrap("msgrcv", q.name, ipc.ErrInvalid)
	}
	return q.recv(context.Background(), buf, Selector{typ: int64(index), flags: sys.MSG_COPY}, false)
}

func (q *Queue) recv(ctx context.Context, buf []byte, sel Selector, block bool) (int, int64, error) {
	if err := q.ready("msgrcv"); err != nil {
		return 0, 0, err
	}
	if sel.bad {
		return 0, 0, ipc.Wrap("msgrcv", q.name, fmt.Errorf("selector's message type not > 0: %w", ipc.ErrInvalid))
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, q.fail("msgrcv", err)
	}
	// Receive one byte more than buf holds, so that a MSG_NOERROR truncation shows;
	// a buffer beyond msgmax cannot be overrun, so it is not copied through in full.
	size := len(buf)
	if size > int(q.msgmax.Load()) {
		q.refreshMsgmax()
		size = min(size, int(q.msgmax.Load()))
	}
	flags := sel.flags
	if sel.truncate {
		flags |= sys.MSG_NOERROR
		size++
	}
	mb := getBuf(sys.MsgHeaderSize + size)
	b := mb.b
	id, typ := q.id, sel.typ
	var n int
	var err error
	blocking := func() error {
		var e error
		n, e = sys.Msgrcv(id, b, typ, flags)
		return e
	}
	if !block || flags&sys.MSG_COPY != 0 {
		n, err = sys.Msgrcv(id, b, typ, flags|unix.IPC_NOWAIT)
	} else if ctx.Done() == nil {
		// a context that never ends: block at once (a message already there is
		// taken as fast as with IPC_NOWAIT)
		err = q.block(ctx, blocking)
	} else if n, err = sys.Msgrcv(id, b, typ, flags|unix.IPC_NOWAIT); err == unix.ENOMSG {
		err = q.block(ctx, blocking)
	}
	if err != nil {
		bufPool.Put(mb)
		return 0, 0, q.fail("msgrcv", err)
	}
	mtype := int64(binary.NativeEndian.Uint64(b))
	if n > len(buf) {
		copy(buf, b[sys.MsgHeaderSize:])
		bufPool.Put(mb)
		return len(buf), mtype, ipc.Wrap("msgrcv", q.name, ipc.ErrTruncated)
	}
	copy(buf, b[sys.MsgHeaderSize:sys.MsgHeaderSize+n])
	bufPool.Put(mb)
	return n, mtype, nil
}

// Stat returns the queue's state (msgctl IPC_STAT).
func (q *Queue) Stat() (QueueStat, error) {
	if err := q.usable("msgctl IPC_STAT"); err != nil {
		return QueueStat{}, err
	}
	var ds sys.MsqidDS
	if _, err := sys.MsgctlStat(q.id, unix.IPC_STAT, &ds); err != nil {
		return QueueStat{}, q.fail("msgctl IPC_STAT", err)
	}
	if err := q.confirm("msgctl IPC_STAT", queueIdent(&ds)); err != nil {
		return QueueStat{}, err
	}
	return QueueStat{
		Perm:     permOf(&ds.Perm),
		SendTime: unixTime(ds.Stime), RecvTime: unixTime(ds.Rtime), ChangeTime: unixTime(ds.Ctime),
		Bytes: ds.Cbytes, Messages: ds.Qnum, MaxBytes: ds.Qbytes,
		LastSendPID: int(ds.Lspid), LastRecvPID: int(ds.Lrpid),
	}, nil
}

// QueueAttr is what SetAttr changes (msgctl IPC_SET).
type QueueAttr struct {
	UID, GID uint32
	Mode     os.FileMode // permission bits, checked as WithMode's
	MaxBytes uint64      // capacity; raising it above msgmnb needs CAP_SYS_RESOURCE
}

// Attr returns the queue's current QueueAttr, to be modified and passed to SetAttr.
func (q *Queue) Attr() (QueueAttr, error) {
	st, err := q.Stat()
	if err != nil {
		return QueueAttr{}, err
	}
	return QueueAttr{UID: st.Perm.UID, GID: st.Perm.GID, Mode: os.FileMode(st.Perm.Mode & 0o777), MaxBytes: st.MaxBytes}, nil
}

// SetAttr changes the queue's owner, mode and capacity (msgctl IPC_SET), after
// confirming that the id still names this queue (S4). Only the owner, the creator or
// a privileged process may.
func (q *Queue) SetAttr(a QueueAttr) error {
	if err := q.usable("msgctl IPC_SET"); err != nil {
		return err
	}
	if err := q.cfg.checkMode(uint32(a.Mode)); err != nil {
		return ipc.Wrap("msgctl IPC_SET", q.name, err)
	}
	if err := q.check("msgctl IPC_SET"); err != nil {
		return err
	}
	var ds sys.MsqidDS
	ds.Perm.Uid, ds.Perm.Gid, ds.Perm.Mode, ds.Qbytes = a.UID, a.GID, uint32(a.Mode.Perm()), a.MaxBytes
	if _, err := sys.MsgctlStat(q.id, unix.IPC_SET, &ds); err != nil {
		return q.fail("msgctl IPC_SET", err)
	}
	q.changed()
	return nil
}

// Remove destroys the queue (msgctl IPC_RMID): queued messages are discarded and
// every blocked sender and receiver, in any process, fails with ipc.ErrRemoved. The
// handle stays open (later calls fail with ipc.ErrRemoved) until Close. It first
// confirms that the id still names this queue: if it names another one now, Remove
// leaves it alone and returns ipc.ErrRemoved (S4). A closed handle may still Remove, after the same check
// with its ChangeTime included.
func (q *Queue) Remove() error {
	if err := q.checkRemove("msgctl IPC_RMID"); err != nil {
		return err
	}
	_, err := sys.Msgctl(q.id, unix.IPC_RMID)
	if err == nil {
		q.removed.Store(true)
	}
	return q.fail("msgctl IPC_RMID", err)
}

// Close drops the handle; the queue itself stays (see Remove). Calls blocked on this
// handle return os.ErrClosed. Close is idempotent.
func (q *Queue) Close() error {
	q.close()
	return nil
}
