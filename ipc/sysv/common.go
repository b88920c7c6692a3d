package sysv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/option"
	"github.com/ipclab/ipclab/internal/wait"
	"github.com/ipclab/ipclab/ipc"
)

// Key names a System V object in its IPC namespace.
type Key int32

// Private is IPC_PRIVATE: a new object that can only be reached through its id.
const Private Key = 0

// String formats the key as ipcs(1) does.
func (k Key) String() string { return fmt.Sprintf("0x%08x", uint32(k)) }

// Ftok derives a key from an existing file and a non-zero project byte, as ftok(3):
// the project in the top 8 bits, the low 8 bits of the device minor number, the low 16
// bits of the inode. Distinct files can collide (and hard links always do), so keyed
// objects must still be checked on open. Ftok refuses (ipc.ErrUntrustedObject) a path
// whose directory other users can write, where anyone could replace the file.
func Ftok(path string, proj byte) (Key, error) {
	if proj == 0 {
		return 0, ipc.Wrap("ftok", path, ipc.ErrInvalid)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, ipc.Wrap("ftok", path, err)
	}
	var dst unix.Stat_t
	if err := unix.Stat(filepath.Dir(path), &dst); err != nil {
		return 0, ipc.Wrap("ftok", path, err)
	}
	if dst.Mode&0o002 != 0 {
		return 0, ipc.Wrap("ftok", path, ipc.ErrUntrustedObject)
	}
	k := uint32(proj)<<24 | (uint32(unix.Minor(st.Dev))&0xff)<<16 | uint32(st.Ino&0xffff)
	return Key(int32(k)), nil
}

// Option configures creating or opening an object.
type Option func(*config)

type config struct {
	mode       uint32 // permission bits to create with, and the widest accepted on open
	access     uint32 // permission bits requested on open
	allowWorld bool
	allowGroup bool
	owner      int
	readOnly   bool
	locked     bool
	hugePages  bool
	expect     *Identity
}

// WithMode sets the permission bits (default 0600) an object is created with, in one
// step, and the widest mode accepted when opening one. Modes that give other users
// access, or the group write access, are refused unless AllowWorld or AllowGroup is
// also given.
func WithMode(mode os.FileMode) Option { return func(c *config) { c.mode = uint32(mode.Perm()) } }

// AllowWorld permits a mode that gives other users (and the group) read or write
// access. Such objects can be read, filled or removed by anyone on the host.
func AllowWorld() Option { return func(c *config) { c.allowWorld, c.allowGroup = true, true } }

// AllowGroup permits a mode that gives the owning group write access.
func AllowGroup() Option { return func(c *config) { c.allowGroup = true } }

// WithOwner sets the user expected to own and to have created an object opened by key
// or id (default: the effective uid).
func WithOwner(uid int) Option { return func(c *config) { c.owner = uid } }

// WithAccess sets the permission the caller asks for when opening (0400 read, 0200
// write, 0600 both; default 0600). The kernel checks it against the object's mode.
func WithAccess(perm os.FileMode) Option { return func(c *config) { c.access = uint32(perm.Perm()) } }

// ReadOnly opens for reading only: a read-only attachment (SHM_RDONLY) for a
// Segment, read access for the others.
func ReadOnly() Option { return func(c *config) { c.readOnly = true; c.access = 0o400 } }

// Locked locks a created segment in memory (SHM_LOCK), so it is never swapped.
func Locked() Option { return func(c *config) { c.locked = true } }

// HugePages backs a created segment with huge pages (SHM_HUGETLB); its size must be a
// multiple of the huge page size.
func HugePages() Option { return func(c *config) { c.hugePages = true } }

// Expect opens an object only if it has identity id, as returned by Identity on a
// handle for it (or stored from one), ChangeTime included unless zero; otherwise the
// open fails with ipc.ErrRemoved: the id names another object now (S4). A queue opened
// so compares ChangeTime on every later check too, which tells a queue from one
// created under the same id by the same user in another second; use it only for
// queues whose attributes nobody changes (IPC_SET: SetAttr), since such a change
// makes every handle opened with Expect see a different queue (its own SetAttr
// excepted).
func Expect(id Identity) Option { return func(c *config) { c.expect = &id } }

func buildConfig(op string, opts []Option) (config, error) {
	c := config{mode: 0o600, access: 0o600, owner: os.Geteuid()}
	if err := option.Apply(&c, opts); err != nil {
		return c, ipc.Wrap(op, "", err)
	}
	if err := c.checkMode(c.mode); err != nil {
		return c, ipc.Wrap(op, "", err)
	}
	return c, nil
}

// checkMode applies the S1 rule: no access for others, no write for the group, unless
// asked for explicitly.
func (c *config) checkMode(mode uint32) error {
	if mode&^0o777 != 0 {
		return ipc.ErrInvalid
	}
	if mode&0o006 != 0 && !c.allowWorld {
		return fmt.Errorf("mode %#o gives other users access (use AllowWorld): %w", mode, ipc.ErrInvalid)
	}
	if mode&0o020 != 0 && !c.allowGroup {
		return fmt.Errorf("mode %#o gives the group write access (use AllowGroup): %w", mode, ipc.ErrInvalid)
	}
	return nil
}

// verify applies the S2 rule to an object found by key or id.
func (c *config) verify(uid, cuid, mode uint32) error {
	if int(uid) != c.owner || int(cuid) != c.owner {
		return fmt.Errorf("owner uid %d, creator uid %d, want %d: %w", uid, cuid, c.owner, ipc.ErrUntrustedObject)
	}
	if mode&0o777&^c.mode != 0 {
		return fmt.Errorf("mode %#o is wider than %#o: %w", mode&0o777, c.mode, ipc.ErrUntrustedObject)
	}
	return nil
}

// procStat reads what IPC_STAT would give about object id from /proc/sysvipc/kind,
// which anyone may read: the fallback when IPC_STAT is not permitted (no read access).
func procStat(kind string, id int) (objStat, error) {
	rows, err := procRows(kind)
	if err != nil {
		return objStat{}, err
	}
	idcol := map[string]string{"msg": "msqid", "sem": "semid", "shm": "shmid"}[kind]
	for _, r := range rows {
		if r[idcol] != strconv.Itoa(id) {
			continue
		}
		num := func(col string, base int) uint64 {
			v, _ := strconv.ParseUint(r[col], base, 64)
			return v
		}
		key, _ := strconv.ParseInt(r["key"], 10, 64)
		st := objStat{
			ident: Identity{Key: Key(int32(key)), CUID: uint32(num("cuid", 10)), CGID: uint32(num("cgid", 10)),
				ChangeTime: int64(num("ctime", 10))},
			uid: uint32(num("uid", 10)), mode: uint32(num("perms", 8)), viaProc: true,
		}
		switch kind {
		case "sem":
			st.size = int(num("nsems", 10))
		case "shm":
			st.size = int(num("size", 10))
		}
		return st, nil
	}
	return objStat{}, unix.EINVAL
}

// procRows parses /proc/sysvipc/kind into one map (column name -> value) per object.
func procRows(kind string) ([]map[string]string, error) {
	data, err := os.ReadFile("/proc/sysvipc/" + kind)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	if !sc.Scan() {
		return nil, nil
	}
	head := strings.Fields(sc.Text())
	var out []map[string]string
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		r := make(map[string]string, len(head))
		for i, h := range head {
			if i < len(f) {
				r[h] = f[i]
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// object is what every handle holds: the id, what the id named when the handle was
// made (its Identity), a description for errors, and the threads blocked on it.
type object struct {
	// What every call touches comes first, in one cache line.
	id      int
	closed  atomic.Bool
	removed atomic.Bool
	recheck atomic.Bool // the identity is due to be confirmed before the next call

	key  Key
	name string
	cfg  config
	// waiters holds the calls in flight, so that Close interrupts exactly the threads
	// blocked on this object (see block).
	waiters wait.Set

	// stat re-reads the object (IPC_STAT, or /proc/sysvipc without read access).
	stat   func() (objStat, error)
	ident  Identity     // what the id named when the handle was made
	size   int          // semaphores in the set (compared too); 0 for the other kinds
	strict bool         // compare ChangeTime too (Expect on a queue)
	ctime  atomic.Int64 // ChangeTime, as adopted after this handle's own IPC_SET
	timer  *time.Timer  // sets recheck recheckEvery after the last confirmation
}

// objStat is what identifies an object and what opening checks (S2).
type objStat struct {
	ident     Identity
	uid, mode uint32
	size      int  // semaphores in a set, bytes in a segment
	viaProc   bool // read from /proc/sysvipc: IPC_STAT is not permitted
}

// Identity is what tells a System V object from another that later gets the same id
// (conformance S4). The kernel builds an id as seq*32768 + index and hands both out in
// cycles, so once an object is removed its id comes back: unprompted after 64×65536 ≈
// 4.2 million creations of that kind in the IPC namespace, and sooner for a process
// that advanced the counter beforehand (see the package doc). The new object's
// ipc_perm.__seq (Perm.Seq) is then the old one's too, since it is the recycled part of
// the id, so it is not compared.
//
// A handle compares Key, CUID and CGID, which no IPC_SET changes, and for a semaphore
// set its size. ChangeTime (msg_ctime, sem_ctime, shm_ctime, seconds) is the creation
// time until an IPC_SET (for a semaphore set also a Set or SetAll) moves it, so a
// handle compares it only when opened with Expect, and only for queues.
type Identity struct {
	Key        Key    `json:"key"`
	CUID       uint32 `json:"cuid"`
	CGID       uint32 `json:"cgid"`
	ChangeTime int64  `json:"ctime"`
}

// recheckEvery is how long a handle's identity stays confirmed: the first call after
// that re-reads it (one IPC_STAT) before it touches the object.
const recheckEvery = time.Millisecond

// recheckProc is recheckEvery for a handle that may not IPC_STAT its object (no read
// access: a write-only sender) and reads /proc/sysvipc instead: a whole table, so less
// often.
const recheckProc = 100 * time.Millisecond

// recheckInterval is how long the confirmation st gave holds.
func recheckInterval(st objStat) time.Duration {
	if st.viaProc {
		return recheckProc
	}
	return recheckEvery
}

// errReplaced is the cause when the id names another object now.
var errReplaced = fmt.Errorf("%w: the id now names another object", ipc.ErrRemoved)

// init fills in the object. syscalls are the system calls that block on it with its
// id as first argument, so that Close finds the threads blocked in them (see block).
func (o *object) init(kind string, id int, key Key, cfg config, stat func() (objStat, error), syscalls ...uintptr) {
	o.id, o.key, o.cfg, o.stat = id, key, cfg, stat
	o.name = fmt.Sprintf("%s id=%d key=%v", kind, id, key)
	if len(syscalls) > 0 {
		o.waiters.Identify(uintptr(id), syscalls...)
	}
}

// adopt records st as what the handle opened (checking it against an Expect given
// with the options) and, unless pinned (an attached segment cannot lose its id),
// starts the recheck timer.
func (o *object) adopt(op string, st objStat, pinned bool) error {
	if want := o.cfg.expect; want != nil {
		if st.ident.Key != want.Key || st.ident.CUID != want.CUID || st.ident.CGID != want.CGID ||
			want.ChangeTime != 0 && st.ident.ChangeTime != want.ChangeTime {
			return ipc.Wrap(op, o.name, errReplaced)
		}
	}
	o.ident, o.size = st.ident, st.size
	o.ctime.Store(st.ident.ChangeTime)
	if !pinned {
		o.timer = time.AfterFunc(recheckEvery, func() { o.recheck.Store(true) })
	}
	return nil
}

// Identity returns what the handle's id named when the handle was made (ChangeTime
// as this handle's own attribute changes left it).
func (o *object) Identity() Identity {
	id := o.ident
	id.ChangeTime = o.ctime.Load()
	return id
}

// same reports whether st describes the object the handle opened.
func (o *object) same(st objStat) bool {
	return o.sameCreation(st) && (!o.strict || st.ident.ChangeTime == o.ctime.Load())
}

// sameCreation compares what no change of attributes can alter.
func (o *object) sameCreation(st objStat) bool {
	return st.ident.Key == o.ident.Key && st.ident.CUID == o.ident.CUID && st.ident.CGID == o.ident.CGID &&
		st.size == o.size
}

// ready is usable plus, once recheckEvery has passed since the last confirmation, a
// check: the guard of calls that deliver to, take from or read the object.
func (o *object) ready(op string) error {
	if err := o.usable(op); err != nil {
		return err
	}
	if o.recheck.Load() {
		return o.check(op)
	}
	return nil
}

// check confirms that the id still names the object the handle opened (one IPC_STAT):
// the guard of calls that change or destroy it. A different object is ipc.ErrRemoved,
// and the handle stays removed.
func (o *object) check(op string) error {
	if err := o.usable(op); err != nil {
		return err
	}
	return o.verify(op)
}

// checkRemove is check for Remove, which a closed handle may still call (Close drops
// a handle, Remove destroys the object): the same confirmation, so that a Remove
// after Close cannot destroy a stranger's object that got the id since.
func (o *object) checkRemove(op string) error {
	if o.removed.Load() {
		return &ipc.OpError{Op: op, Object: o.name, Err: ipc.ErrRemoved}
	}
	return o.verify(op)
}

// verify reads the object (one IPC_STAT) and confirms it is the handle's.
func (o *object) verify(op string) error {
	st, err := o.stat()
	if err != nil {
		return o.fail(op, err)
	}
	return o.confirm(op, st)
}

// confirm compares st, just read, with what the handle opened.
func (o *object) confirm(op string, st objStat) error {
	if !o.same(st) {
		o.removed.Store(true)
		return ipc.Wrap(op, o.name, errReplaced)
	}
	if o.recheck.Swap(false) && o.timer != nil {
		o.timer.Reset(recheckInterval(st))
	}
	return nil
}

// created records what an object this process just created is (an Expect among the
// options plays no part: there is nothing to compare yet).
func created[T any](h *T, o *object, op string) (*T, error) {
	o.cfg.expect = nil
	st, err := o.stat()
	if err == nil {
		err = o.adopt(op, st, false)
	}
	if err != nil {
		return nil, ipc.Wrap(op, o.name, err)
	}
	return h, nil
}

// changed adopts the ChangeTime an IPC_SET by this handle gave the object.
func (o *object) changed() {
	if st, err := o.stat(); err == nil && o.sameCreation(st) {
		o.ctime.Store(st.ident.ChangeTime)
	}
}

// ID returns the kernel's identifier of the object, which a peer can open.
func (o *object) ID() int { return o.id }

// Key returns the key the object was created or opened with (Private if by id).
func (o *object) Key() Key { return o.key }

// String describes the object.
func (o *object) String() string { return o.name }

// usable returns an error if the handle is closed or the object known removed.
func (o *object) usable(op string) error {
	if o.closed.Load() {
		return &ipc.OpError{Op: op, Object: o.name, Err: os.ErrClosed}
	}
	if o.removed.Load() {
		return &ipc.OpError{Op: op, Object: o.name, Err: ipc.ErrRemoved}
	}
	return nil
}

// The causes System V states need beside the errno the kernel gave: each matches the
// ipc sentinel for the state and the errno, and its text names both.
var (
	// errStale: a call on a removed object's id answers EINVAL, not EIDRM (S4).
	errStale = fmt.Errorf("%w (%w)", ipc.ErrRemoved, unix.EINVAL)
	// errNoMsg: msgrcv with IPC_NOWAIT and no message answers ENOMSG, not EAGAIN.
	errNoMsg = fmt.Errorf("%w (%w)", ipc.ErrWouldBlock, unix.ENOMSG)
	// errNoID: an id that names no object (removed, or never given out), opened by
	// a stranger, answers EINVAL; it matches fs.ErrNotExist as an absent key does.
	errNoID = fmt.Errorf("no object has this id: %w (%w)", fs.ErrNotExist, unix.EINVAL)
)

// fail wraps err from op, mapping the System V states to ipclab's sentinels.
func (o *object) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	switch err {
	case unix.EIDRM:
		o.removed.Store(true)
	case unix.EINVAL:
		// A stale id answers EINVAL (S4): find out whether the object is gone, or the
		// id names another one now.
		if o.stat != nil {
			if st, e := o.stat(); e == unix.EINVAL || e == unix.EIDRM {
				o.removed.Store(true)
				err = errStale
			} else if e == nil && !o.same(st) {
				o.removed.Store(true)
				err = errReplaced
			}
		}
	case unix.ENOMSG:
		err = errNoMsg
	}
	return ipc.Wrap(op, o.name, err)
}

// openErr wraps an error from reading an object a stranger opens by id: EINVAL there
// means no object has the id, which matches fs.ErrNotExist (as ENOENT does for a key).
func openErr(op, name string, err error) error {
	if err == unix.EINVAL {
		err = errNoID
	}
	return ipc.Wrap(op, name, err)
}

// block makes one blocking system call (call) under ctx (DESIGN §3) through the
// object's wait.Set. With a context that can never end and an identified set (init's
// syscalls) it is a bare EINTR loop that costs an atomic counter: no thread is locked
// and nothing is registered, and Close finds the blocked thread in
// /proc/self/task/*/syscall. Otherwise the call's thread is registered. Either way
// Close (and ctx) interrupt exactly the threads blocked on this object with
// wait.Signal, never any other thread.
func (o *object) block(ctx context.Context, call func() error) error {
	return o.waiters.Do(ctx, call)
}

// enter counts a call that only Close can interrupt and that the caller brackets
// with leave, in an EINTR loop (the hot paths); it reports false, counting nothing,
// once the handle is closed or the object known removed, or if Close could not find
// the call's thread (the set is not identified: use block).
func (o *object) enter() bool {
	if !o.waiters.Identified() || !o.waiters.Acquire() {
		return false
	}
	if o.removed.Load() {
		o.waiters.Release()
		return false
	}
	return true
}

// leave ends a call counted by enter.
func (o *object) leave() { o.waiters.Release() }

// close marks the handle closed and interrupts the calls blocked on it (see block)
// until they have left. It reports false if the handle was closed already.
func (o *object) close() bool {
	if o.closed.Swap(true) {
		return false
	}
	if o.timer != nil {
		o.timer.Stop()
	}
	o.waiters.Close()
	return true
}

// Limits are the System V limits of this IPC namespace, from /proc/sys/kernel.
type Limits struct {
	MsgMax int // largest message text, bytes (msgmax)
	MsgMnb int // default queue capacity, bytes (msgmnb)
	MsgMni int // most queues (msgmni)
	SemMsl int // most semaphores per set (SEMMSL)
	SemMns int // most semaphores in all (SEMMNS)
	SemOpm int // most operations per semop call (SEMOPM)
	SemMni int // most semaphore sets (SEMMNI)
	// SemVmx is the largest semaphore value (SEMVMX, fixed at 32767).
	SemVmx int
	ShmMax uint64 // largest segment, bytes (shmmax)
	ShmAll uint64 // most shared memory in all, pages (shmall)
	ShmMni int    // most segments (shmmni)
}

// ReadLimits reads the current limits from /proc/sys/kernel.
func ReadLimits() (Limits, error) {
	var l Limits
	read := func(name string) ([]uint64, error) {
		data, err := os.ReadFile("/proc/sys/kernel/" + name)
		if err != nil {
			return nil, err
		}
		var out []uint64
		for _, f := range strings.Fields(string(data)) {
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("/proc/sys/kernel/%s: %w", name, err)
			}
			out = append(out, v)
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("/proc/sys/kernel/%s: empty", name)
		}
		return out, nil
	}
	one := func(name string, dst *int) error {
		v, err := read(name)
		if err == nil {
			*dst = int(min(v[0], 1<<31-1))
		}
		return err
	}
	if err := one("msgmax", &l.MsgMax); err != nil {
		return l, err
	}
	if err := one("msgmnb", &l.MsgMnb); err != nil {
		return l, err
	}
	if err := one("msgmni", &l.MsgMni); err != nil {
		return l, err
	}
	if err := one("shmmni", &l.ShmMni); err != nil {
		return l, err
	}
	sem, err := read("sem")
	if err != nil {
		return l, err
	}
	if len(sem) != 4 {
		return l, fmt.Errorf("/proc/sys/kernel/sem: want 4 fields, have %d", len(sem))
	}
	l.SemMsl, l.SemMns, l.SemOpm, l.SemMni = int(sem[0]), int(sem[1]), int(sem[2]), int(sem[3])
	l.SemVmx = 32767
	v, err := read("shmmax")
	if err != nil {
		return l, err
	}
	l.ShmMax = v[0]
	if v, err = read("shmall"); err != nil {
		return l, err
	}
	l.ShmAll = v[0]
	return l, nil
}

// atomicInt is an atomic int64 (a named type so that handles can embed it).
type atomicInt = atomic.Int64

// errClosed is os.ErrClosed (named here so that errors built on it read well).
var errClosed = os.ErrClosed
