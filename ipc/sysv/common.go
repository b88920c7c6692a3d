package sysv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

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

func buildConfig(op string, opts []Option) (config, error) {
	c := config{mode: 0o600, access: 0o600, owner: os.Geteuid()}
	for _, o := range opts {
		o(&c)
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

// procPerm reads the owner, creator and mode of object id from /proc/sysvipc/kind,
// which anyone may read: the fallback when IPC_STAT is not permitted.
func procPerm(kind string, id int) (uid, cuid, mode uint32, err error) {
	rows, err := procRows(kind)
	if err != nil {
		return 0, 0, 0, err
	}
	idcol := map[string]string{"msg": "msqid", "sem": "semid", "shm": "shmid"}[kind]
	for _, r := range rows {
		if r[idcol] != strconv.Itoa(id) {
			continue
		}
		u, _ := strconv.ParseUint(r["uid"], 10, 32)
		cu, _ := strconv.ParseUint(r["cuid"], 10, 32)
		m, _ := strconv.ParseUint(r["perms"], 8, 32)
		return uint32(u), uint32(cu), uint32(m), nil
	}
	return 0, 0, 0, unix.EINVAL
}

// procNsems returns the size of semaphore set id from /proc/sysvipc/sem (0 if absent).
func procNsems(id int) int {
	rows, _ := procRows("sem")
	for _, r := range rows {
		if r["semid"] == strconv.Itoa(id) {
			n, _ := strconv.Atoi(r["nsems"])
			return n
		}
	}
	return 0
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

// object is what every handle holds: the id, a description for errors, and the
// threads blocked on it.
type object struct {
	// What every call touches comes first, in one cache line.
	id      int
	closed  atomic.Bool
	removed atomic.Bool
	blocked atomic.Int32 // calls in flight under a context that never ends

	key     Key
	name    string
	cfg     config
	waiters wait.Set
	kick    func() // interrupts blocked calls on close (nil: SIGURG to every thread)
	// stat re-reads the object's state; used to tell a stale id from a bad argument.
	alive func() error
}

func (o *object) init(kind string, id int, key Key, cfg config, alive func() error) {
	o.id, o.key, o.cfg, o.alive = id, key, cfg, alive
	o.name = fmt.Sprintf("%s id=%d key=%v", kind, id, key)
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

// fail wraps err from op, mapping the System V states to ipclab's sentinels.
func (o *object) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	switch err {
	case unix.EIDRM:
		o.removed.Store(true)
		err = ipc.ErrRemoved
	case unix.EINVAL:
		// A stale id answers EINVAL (S4): find out whether the object is gone.
		if o.alive != nil {
			if e := o.alive(); e == unix.EINVAL || e == unix.EIDRM {
				o.removed.Store(true)
				err = &errnoSentinel{ipc.ErrRemoved, unix.EINVAL}
			}
		}
	case unix.ENOMSG:
		err = &errnoSentinel{ipc.ErrWouldBlock, unix.ENOMSG}
	case context.DeadlineExceeded, unix.ETIMEDOUT:
		err = errDeadline
	}
	return ipc.Wrap(op, o.name, err)
}

// block makes one blocking system call (call) under ctx (DESIGN §3). With a context
// that can never end it is a bare EINTR loop: no thread is locked and nothing is
// registered but a counter, so the call costs what the raw system call costs; Close
// then interrupts it with SIGURG (which System V calls never restart; every Go
// program already receives it for preemption). With a context that can end, the call
// goes through internal/wait, which interrupts exactly the blocked thread.
func (o *object) block(ctx context.Context, call func() error) error {
	if ctx.Done() != nil {
		return o.waiters.Do(ctx, call)
	}
	o.blocked.Add(1)
	for {
		if o.closed.Load() {
			o.blocked.Add(-1)
			return os.ErrClosed
		}
		if err := call(); err != unix.EINTR {
			o.blocked.Add(-1)
			return err
		}
	}
}

// enter counts a call that only Close can interrupt (see block); it reports false,
// counting nothing, once the handle is closed or the object known removed.
func (o *object) enter() bool {
	o.blocked.Add(1)
	if o.closed.Load() || o.removed.Load() {
		o.blocked.Add(-1)
		return false
	}
	return true
}

// leave ends a call counted by enter.
func (o *object) leave() { o.blocked.Add(-1) }

// close marks the handle closed and interrupts calls blocked on it: those under a
// cancellable context through internal/wait, the others with kick (or, by default,
// SIGURG to every thread) until they have left.
func (o *object) close() bool {
	if o.closed.Swap(true) {
		return false
	}
	o.waiters.Close()
	delay := 10 * time.Microsecond
	for o.blocked.Load() > 0 {
		if o.kick != nil {
			o.kick()
		} else {
			pid := unix.Getpid()
			for _, tid := range taskIDs() {
				_ = unix.Tgkill(pid, tid, unix.SIGURG)
			}
		}
		time.Sleep(delay)
		delay = min(2*delay, time.Millisecond)
	}
	return true
}

// taskIDs lists the threads of this process.
func taskIDs() []int {
	ents, _ := os.ReadDir("/proc/self/task")
	out := make([]int, 0, len(ents))
	for _, e := range ents {
		if v, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, v)
		}
	}
	return out
}

// errnoSentinel is a sentinel that also keeps the exact errno.
type errnoSentinel struct {
	s     *ipc.Sentinel
	errno unix.Errno
}

func (e *errnoSentinel) Error() string { return e.s.Error() + " (" + e.errno.Error() + ")" }
func (e *errnoSentinel) Is(target error) bool {
	return target == e.s || target == e.errno || e.s.Is(target)
}
func (e *errnoSentinel) Unwrap() error { return e.errno }

// deadlineError is returned when a deadline passes: it matches os.ErrDeadlineExceeded
// and context.DeadlineExceeded, and is a net.Error style timeout.
type deadlineError struct{}

func (deadlineError) Error() string   { return "deadline exceeded" }
func (deadlineError) Timeout() bool   { return true }
func (deadlineError) Temporary() bool { return true }
func (deadlineError) Is(target error) bool {
	return target == os.ErrDeadlineExceeded || target == context.DeadlineExceeded
}

var errDeadline error = deadlineError{}

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
