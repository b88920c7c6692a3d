package sysv

import (
	"context"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

// SemOp is one operation of a semop(2) call (struct sembuf): add Op to semaphore Num;
// Op < 0 waits until the value is at least -Op, Op == 0 waits until it is zero.
type SemOp struct {
	Num   uint16 // semaphore index in the set
	Op    int16  // amount to add; 0 waits for zero
	Flags int16  // Undo, NoWait
}

// Flags of a SemOp.
const (
	// Undo makes the kernel reverse the operation when the process exits (SEM_UNDO),
	// so a semaphore held by a process that dies is released.
	Undo int16 = sys.SEM_UNDO
	// NoWait makes the whole call fail with ipc.ErrWouldBlock instead of waiting for
	// this operation (IPC_NOWAIT).
	NoWait int16 = unix.IPC_NOWAIT
)

// SemSet is a handle on a System V semaphore set. Its methods may be called
// concurrently.
type SemSet struct {
	object
	n int
}

// SemStat is a set's struct semid_ds.
type SemStat struct {
	Perm       Perm
	OpTime     time.Time // last semop (zero: never)
	ChangeTime time.Time // creation or last IPC_SET/SETVAL/SETALL
	Len        int       // semaphores in the set
}

// CreateSemSet creates a set of n semaphores, all 0 (semget(2) with
// IPC_CREAT|IPC_EXCL). Options: WithMode, AllowWorld, AllowGroup.
func CreateSemSet(key Key, n int, opts ...Option) (*SemSet, error) {
	c, err := buildConfig("semget", opts)
	if err != nil {
		return nil, err
	}
	if n <= 0 || n > 1<<16 {
		return nil, ipc.Wrap("semget", key.String(), ipc.ErrInvalid)
	}
	id, err := sys.Semget(int32(key), n, unix.IPC_CREAT|unix.IPC_EXCL|int(c.mode))
	if err != nil {
		return nil, ipc.Wrap("semget", key.String(), err)
	}
	s := newSemSet(id, key, c)
	s.n = n
	return created(s, &s.object, "semget")
}

// OpenSemSet opens the existing set with key and checks its owner and mode (see the
// package doc). Options: WithAccess or ReadOnly, WithOwner, WithMode.
func OpenSemSet(key Key, opts ...Option) (*SemSet, error) {
	c, err := buildConfig("semget", opts)
	if err != nil {
		return nil, err
	}
	if key == Private {
		return nil, ipc.Wrap("semget", key.String(), ipc.ErrInvalid)
	}
	id, err := sys.Semget(int32(key), 0, int(c.access))
	if err != nil {
		return nil, ipc.Wrap("semget", key.String(), err)
	}
	return openSemSet(id, key, c)
}

// OpenSemSetID opens the set with the given id and checks it as OpenSemSet does.
func OpenSemSetID(id int, opts ...Option) (*SemSet, error) {
	c, err := buildConfig("semctl", opts)
	if err != nil {
		return nil, err
	}
	if id < 0 {
		return nil, ipc.Wrap("semctl", "sem", ipc.ErrInvalid)
	}
	return openSemSet(id, Private, c)
}

func openSemSet(id int, key Key, c config) (*SemSet, error) {
	s := newSemSet(id, key, c)
	st, err := s.stat()
	if err != nil {
		return nil, openErr("semctl IPC_STAT", s.name, err)
	}
	if err := c.verify(st.uid, st.ident.CUID, st.mode); err != nil {
		return nil, ipc.Wrap("open", s.name, err)
	}
	if err := s.adopt("open", st, false); err != nil {
		return nil, err
	}
	s.n = st.size
	return s, nil
}

func newSemSet(id int, key Key, c config) *SemSet {
	s := &SemSet{}
	s.init("sem", id, key, c, func() (objStat, error) {
		var ds sys.SemidDS
		_, err := sys.SemctlStat(id, unix.IPC_STAT, &ds)
		if err == unix.EACCES {
			return procStat("sem", id)
		}
		return semIdent(&ds), err
	}, unix.SYS_SEMTIMEDOP, unix.SYS_SEMOP)
	return s
}

func semIdent(ds *sys.SemidDS) objStat {
	return objStat{ident: Identity{Key: Key(ds.Perm.Key), CUID: ds.Perm.Cuid, CGID: ds.Perm.Cgid, ChangeTime: ds.Ctime},
		uid: ds.Perm.Uid, mode: ds.Perm.Mode, size: int(ds.Nsems)}
}

// Len returns the number of semaphores in the set.
func (s *SemSet) Len() int { return s.n }

// maxLocalOps is how many operations Op handles without allocating.
const maxLocalOps = 16

// Op applies ops atomically (all or none), waiting until all can be applied or ctx
// ends (semtimedop(2)). A deadline on ctx is passed to the kernel, recomputed after
// every interruption; reaching it returns an error matching context.DeadlineExceeded,
// as ctx.Err() would.
// If an operation has NoWait and cannot proceed, Op returns ipc.ErrWouldBlock.
func (s *SemSet) Op(ctx context.Context, ops ...SemOp) error {
	if err := s.checkOps(ops); err != nil {
		return err
	}
	if ctx.Done() == nil && s.waiters.Identified() {
		// The hot path: a context that never ends, so only Close interrupts the
		// call; it is counted, not registered (see object.block).
		for s.enter() {
			errno := sys.SemtimedopErrno(s.id, ops, nil)
			s.leave()
			if errno == 0 {
				return nil
			}
			if errno != unix.EINTR {
				return s.fail("semop", errno)
			}
		}
		return s.usable("semop") // closed or removed meanwhile
	}
	if err := ctx.Err(); err != nil {
		return s.fail("semop", err)
	}
	id := s.id
	// First try without waiting, on a copy with NoWait on every operation.
	var local [maxLocalOps]SemOp
	try, allNoWait := noWait(&local, ops)
	err := sys.Semtimedop(s.id, try, nil)
	if err != unix.EAGAIN || allNoWait {
		return s.fail("semop", err)
	}
	dl, hasDL := ctx.Deadline()
	timedOut := false
	err = s.block(ctx, func() error {
		if !hasDL {
			return sys.Semtimedop(id, ops, nil)
		}
		rem := time.Until(dl)
		if rem <= 0 {
			timedOut = true
			return unix.EAGAIN
		}
		ts := unix.NsecToTimespec(int64(rem))
		e := sys.Semtimedop(id, ops, &ts)
		if e == unix.EAGAIN && !time.Now().Before(dl) {
			timedOut = true
		}
		return e
	})
	if timedOut && err == unix.EAGAIN {
		// ctx's deadline, reached in the kernel a moment before ctx's own timer
		err = context.DeadlineExceeded
	}
	return s.fail("semop", err)
}

// TryOp is Op without waiting for any operation: it returns ipc.ErrWouldBlock (and
// unix.EAGAIN) if they cannot all be applied at once.
func (s *SemSet) TryOp(ops ...SemOp) error {
	if err := s.checkOps(ops); err != nil {
		return err
	}
	var local [maxLocalOps]SemOp
	try, _ := noWait(&local, ops)
	return s.fail("semop", sys.Semtimedop(s.id, try, nil))
}

// noWait returns ops with NoWait set on each, in local when they fit, and whether
// every one of ops had it already.
func noWait(local *[maxLocalOps]SemOp, ops []SemOp) (try []SemOp, all bool) {
	if len(ops) <= maxLocalOps {
		try = local[:len(ops)]
	} else {
		try = make([]SemOp, len(ops))
	}
	all = true
	for i, op := range ops {
		all = all && op.Flags&NoWait != 0
		op.Flags |= NoWait
		try[i] = op
	}
	return try, all
}

func (s *SemSet) checkOps(ops []SemOp) error {
	if err := s.ready("semop"); err != nil {
		return err
	}
	if len(ops) == 0 {
		return ipc.Wrap("semop", s.name, ipc.ErrInvalid)
	}
	for _, op := range ops {
		if op.Flags&^(Undo|NoWait) != 0 {
			return ipc.Wrap("semop", s.name, ipc.ErrInvalid)
		}
	}
	return nil
}

// Get returns semaphore i's value (semctl GETVAL).
func (s *SemSet) Get(i int) (int, error) { return s.ctlInt("semctl GETVAL", i, sys.GETVAL, 0) }

// Set sets semaphore i's value (semctl SETVAL); values outside 0..32767 fail with
// unix.ERANGE. Waiters are woken and undo records for it are cleared. It first
// confirms that the id still names this set (S4).
func (s *SemSet) Set(i, v int) error {
	_, err := s.ctlInt("semctl SETVAL", i, sys.SETVAL, v)
	return err
}

// Waiters returns how many processes wait for semaphore i to grow (GETNCNT) and to
// become zero (GETZCNT).
func (s *SemSet) Waiters(i int) (ncnt, zcnt int, err error) {
	if ncnt, err = s.ctlInt("semctl GETNCNT", i, sys.GETNCNT, 0); err != nil {
		return 0, 0, err
	}
	zcnt, err = s.ctlInt("semctl GETZCNT", i, sys.GETZCNT, 0)
	return ncnt, zcnt, err
}

// LastPID returns the process that last operated on semaphore i (GETPID).
func (s *SemSet) LastPID(i int) (int, error) { return s.ctlInt("semctl GETPID", i, sys.GETPID, 0) }

func (s *SemSet) ctlInt(op string, i, cmd, arg int) (int, error) {
	if err := s.usable(op); err != nil {
		return 0, err
	}
	if i < 0 || i >= 1<<16 {
		return 0, ipc.Wrap(op, s.name, ipc.ErrInvalid)
	}
	if err := s.guard(op, cmd == sys.SETVAL); err != nil {
		return 0, err
	}
	v, err := sys.SemctlInt(s.id, i, cmd, arg)
	if err != nil {
		return 0, s.fail(op, err)
	}
	return v, nil
}

// GetAll fills vals (len(vals) == Len()) with every semaphore's value (GETALL).
func (s *SemSet) GetAll(vals []uint16) error { return s.ctlArray("semctl GETALL", sys.GETALL, vals) }

// SetAll sets every semaphore's value from vals (len(vals) == Len()) (SETALL), after
// confirming that the id still names this set (S4).
func (s *SemSet) SetAll(vals []uint16) error { return s.ctlArray("semctl SETALL", sys.SETALL, vals) }

func (s *SemSet) ctlArray(op string, cmd int, vals []uint16) error {
	if err := s.usable(op); err != nil {
		return err
	}
	if len(vals) != s.n {
		return ipc.Wrap(op, s.name, ipc.ErrInvalid)
	}
	if err := s.guard(op, cmd == sys.SETALL); err != nil {
		return err
	}
	return s.fail(op, sys.SemctlArray(s.id, cmd, vals))
}

// guard is check for a call that changes the set, ready for one that reads it.
func (s *SemSet) guard(op string, changes bool) error {
	if changes {
		return s.check(op)
	}
	return s.ready(op)
}

// Stat returns the set's state (semctl IPC_STAT).
func (s *SemSet) Stat() (SemStat, error) {
	if err := s.usable("semctl IPC_STAT"); err != nil {
		return SemStat{}, err
	}
	var ds sys.SemidDS
	if _, err := sys.SemctlStat(s.id, unix.IPC_STAT, &ds); err != nil {
		return SemStat{}, s.fail("semctl IPC_STAT", err)
	}
	if err := s.confirm("semctl IPC_STAT", semIdent(&ds)); err != nil {
		return SemStat{}, err
	}
	return SemStat{Perm: permOf(&ds.Perm), OpTime: unixTime(ds.Otime), ChangeTime: unixTime(ds.Ctime), Len: int(ds.Nsems)}, nil
}

// SetPerm changes the set's owner and mode (semctl IPC_SET), after confirming that the
// id still names this set (S4); the mode is checked as WithMode's. Only the owner, the
// creator or a privileged process may.
func (s *SemSet) SetPerm(uid, gid uint32, mode uint32) error {
	if err := s.usable("semctl IPC_SET"); err != nil {
		return err
	}
	if err := s.cfg.checkMode(mode); err != nil {
		return ipc.Wrap("semctl IPC_SET", s.name, err)
	}
	if err := s.check("semctl IPC_SET"); err != nil {
		return err
	}
	var ds sys.SemidDS
	ds.Perm.Uid, ds.Perm.Gid, ds.Perm.Mode = uid, gid, mode
	if _, err := sys.SemctlStat(s.id, unix.IPC_SET, &ds); err != nil {
		return s.fail("semctl IPC_SET", err)
	}
	s.changed()
	return nil
}

// Remove destroys the set (semctl IPC_RMID); every blocked Op, in any process, fails
// with ipc.ErrRemoved. The handle stays open until Close. It first confirms that the
// id still names this set: if it names another one now, Remove leaves it alone and
// returns ipc.ErrRemoved (S4). A closed handle may still Remove, after the same check
// with its ChangeTime included.
func (s *SemSet) Remove() error {
	if err := s.checkRemove("semctl IPC_RMID"); err != nil {
		return err
	}
	_, err := sys.SemctlInt(s.id, 0, unix.IPC_RMID, 0)
	if err == nil {
		s.removed.Store(true)
	}
	return s.fail("semctl IPC_RMID", err)
}

// Close drops the handle; the set stays (see Remove). Calls blocked on this handle
// return os.ErrClosed. Close is idempotent.
func (s *SemSet) Close() error {
	s.close()
	return nil
}
