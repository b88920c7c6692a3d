package sysv

import (
	"fmt"
	"io/fs"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

// Segment is a System V shared memory segment attached to this process. It owns the
// attachment: ReadAt, WriteAt and the word accessors check bounds and fail with
// os.ErrClosed after Detach instead of touching unmapped memory.
type Segment struct {
	object
	mu   sync.RWMutex // held for reading while the mapping is used; for writing by Detach
	mem  []byte       // nil once detached
	size int
	ro   bool
}

// SegmentStat is a segment's struct shmid_ds.
type SegmentStat struct {
	Perm       Perm
	Size       int
	AttachTime time.Time // last shmat (zero: never)
	DetachTime time.Time // last shmdt (zero: never)
	ChangeTime time.Time
	CreatorPID int
	LastPID    int // last shmat/shmdt
	Attached   int // current attachments (nattch)
}

// Removed reports whether the segment is marked for destruction (SHM_DEST): it will go
// when the last process detaches.
func (s SegmentStat) Removed() bool { return s.Perm.Mode&sys.SHM_DEST != 0 }

// Locked reports whether the segment is locked in memory (SHM_LOCKED).
func (s SegmentStat) Locked() bool { return s.Perm.Mode&sys.SHM_LOCKED != 0 }

// CreateSegment creates a segment of size bytes (shmget(2) with IPC_CREAT|IPC_EXCL),
// zero-filled, and attaches it. Options: WithMode, AllowWorld, AllowGroup, Locked,
// HugePages.
func CreateSegment(key Key, size int, opts ...Option) (*Segment, error) {
	c, err := buildConfig("shmget", opts)
	if err != nil {
		return nil, err
	}
	if size <= 0 {
		return nil, ipc.Wrap("shmget", key.String(), ipc.ErrInvalid)
	}
	flags := unix.IPC_CREAT | unix.IPC_EXCL | int(c.mode)
	if c.hugePages {
		flags |= sys.SHM_HUGETLB
	}
	id, err := unix.SysvShmGet(int(key), size, flags)
	if err != nil {
		return nil, ipc.Wrap("shmget", key.String(), err)
	}
	s, err := newSegment(id, key, c).attach(nil)
	if err != nil {
		_, _ = unix.SysvShmCtl(id, unix.IPC_RMID, nil)
		return nil, err
	}
	if c.locked {
		if err := s.Lock(); err != nil {
			s.Remove()
			s.Detach()
			return nil, err
		}
	}
	return s, nil
}

// OpenSegment opens and attaches the existing segment with key, after checking its
// owner and mode (see the package doc). Options: ReadOnly (a read-only attachment),
// WithAccess, WithOwner, WithMode.
func OpenSegment(key Key, opts ...Option) (*Segment, error) {
	c, err := buildConfig("shmget", opts)
	if err != nil {
		return nil, err
	}
	if key == Private {
		return nil, ipc.Wrap("shmget", key.String(), ipc.ErrInvalid)
	}
	id, err := unix.SysvShmGet(int(key), 0, int(c.access))
	if err != nil {
		return nil, ipc.Wrap("shmget", key.String(), err)
	}
	return openSegment(id, key, c)
}

// OpenSegmentID opens and attaches the segment with the given id, checking it as
// OpenSegment does.
func OpenSegmentID(id int, opts ...Option) (*Segment, error) {
	c, err := buildConfig("shmat", opts)
	if err != nil {
		return nil, err
	}
	if id < 0 {
		return nil, ipc.Wrap("shmat", "shm", ipc.ErrInvalid)
	}
	return openSegment(id, Private, c)
}

func openSegment(id int, key Key, c config) (*Segment, error) {
	s := newSegment(id, key, c)
	st, err := s.stat()
	if err != nil {
		return nil, openErr("shmctl IPC_STAT", s.name, err)
	}
	if st.mode&sys.SHM_DEST != 0 {
		// Linux would attach it, but Remove promises that nobody can any more.
		return nil, ipc.Wrap("shmat", s.name, errMarked)
	}
	if err := c.verify(st.uid, st.ident.CUID, st.mode); err != nil {
		return nil, ipc.Wrap("open", s.name, err)
	}
	return s.attach(&st)
}

func newSegment(id int, key Key, c config) *Segment {
	s := &Segment{ro: c.readOnly}
	s.init("shm", id, key, c, func() (objStat, error) {
		var ds unix.SysvShmDesc
		_, err := unix.SysvShmCtl(id, unix.IPC_STAT, &ds)
		if err == unix.EACCES {
			return procStat("shm", id)
		}
		return objStat{ident: Identity{Key: Key(ds.Perm.Key), CUID: ds.Perm.Cuid, CGID: ds.Perm.Cgid, ChangeTime: ds.Ctime},
			uid: ds.Perm.Uid, mode: ds.Perm.Mode, size: int(ds.Segsz)}, err
	})
	return s
}

// attach attaches the segment. An attachment pins the id: a segment removed while
// attached stays in the kernel's table (SHM_DEST) until the last detach, so its id
// cannot be given to another segment while this handle lasts, and no later call needs
// to check it. The id was checked before (want: what the caller verified; nil for a
// segment just created) but could have been recycled before shmat, so it is checked
// once more now that it cannot change (S4).
func (s *Segment) attach(want *objStat) (*Segment, error) {
	flags := 0
	if s.cfg.readOnly {
		flags |= unix.SHM_RDONLY
	}
	mem, err := unix.SysvShmAttach(s.id, 0, flags)
	if err != nil {
		return nil, s.fail("shmat", err)
	}
	st, err := s.stat()
	if err == nil && want != nil && (st.ident.Key != want.ident.Key || st.ident.CUID != want.ident.CUID ||
		st.ident.CGID != want.ident.CGID || st.size != want.size) {
		err = errReplaced
	}
	if err == nil {
		if want == nil {
			s.cfg.expect = nil
		}
		err = s.adopt("shmat", st, true)
	}
	if err != nil {
		_ = unix.SysvShmDetach(mem)
		return nil, ipc.Wrap("shmat", s.name, err)
	}
	s.mem, s.size = mem, len(mem)
	return s, nil
}

// Size returns the segment's size in bytes.
func (s *Segment) Size() int { return s.size }

// ReadOnly reports whether the attachment is read-only.
func (s *Segment) ReadOnly() bool { return s.ro }

// Bytes returns the attached memory itself, for the fast path: no copy, no check.
// Other processes may change it at any time, so treat what it holds as untrusted and
// copy before validating. It is valid only until Detach (using it afterwards faults);
// prefer ReadAt/WriteAt where that is a risk. It returns nil for a read-only
// attachment (writing through it would fault; use ReadAt) and after Detach.
func (s *Segment) Bytes() []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.ro {
		return nil
	}
	return s.mem
}

// ReadAt copies len(p) bytes from offset off into p (io.ReaderAt). It fails with
// os.ErrClosed after Detach and with ipc.ErrInvalid when the range leaves the segment.
func (s *Segment) ReadAt(p []byte, off int64) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.mem == nil {
		return 0, s.detachedErr("read")
	}
	if off < 0 || off > int64(s.size) || int64(len(p)) > int64(s.size)-off {
		return 0, ipc.Wrap("read", s.name, ipc.ErrInvalid)
	}
	return copy(p, s.mem[off:]), nil
}

// WriteAt copies p into the segment at offset off (io.WriterAt). It fails with
// os.ErrClosed after Detach, unix.EACCES on a read-only attachment, and
// ipc.ErrInvalid when the range leaves the segment.
func (s *Segment) WriteAt(p []byte, off int64) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.mem == nil {
		return 0, s.detachedErr("write")
	}
	if s.ro {
		return 0, ipc.Wrap("write", s.name, unix.EACCES)
	}
	if off < 0 || off > int64(s.size) || int64(len(p)) > int64(s.size)-off {
		return 0, ipc.Wrap("write", s.name, ipc.ErrInvalid)
	}
	return copy(s.mem[off:], p), nil
}

func (s *Segment) detachedErr(op string) error {
	return &ipc.OpError{Op: op, Object: s.name, Err: errDetached}
}

// errMarked is the cause when a segment marked for removal is opened: it matches
// fs.ErrNotExist, as a removed queue or set does.
var errMarked = fmt.Errorf("segment marked for removal: %w (%w)", fs.ErrNotExist, unix.EIDRM)

// errDetached matches os.ErrClosed.
var errDetached = fmt.Errorf("segment detached: %w", errClosed)

// Uint32 returns the 4-byte aligned word at off as an atomic, for synchronisation with
// other processes. Like Bytes, it is valid only until Detach; it is refused on a
// read-only attachment (see Load32).
func (s *Segment) Uint32(off int) (*atomic.Uint32, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.word(off, 4, true); err != nil {
		return nil, err
	}
	return sys.Uint32At(s.mem, off), nil
}

// Uint64 is Uint32 for an 8-byte aligned 64-bit word.
func (s *Segment) Uint64(off int) (*atomic.Uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.word(off, 8, true); err != nil {
		return nil, err
	}
	return sys.Uint64At(s.mem, off), nil
}

// Load32 atomically loads the 4-byte aligned word at off; it works on read-only
// attachments and fails with os.ErrClosed after Detach.
func (s *Segment) Load32(off int) (uint32, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.word(off, 4, false); err != nil {
		return 0, err
	}
	return sys.Uint32At(s.mem, off).Load(), nil
}

// Load64 is Load32 for an 8-byte aligned 64-bit word.
func (s *Segment) Load64(off int) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.word(off, 8, false); err != nil {
		return 0, err
	}
	return sys.Uint64At(s.mem, off).Load(), nil
}

func (s *Segment) word(off, size int, write bool) error {
	if s.mem == nil {
		return s.detachedErr("word")
	}
	if write && s.ro {
		return ipc.Wrap("word", s.name, unix.EACCES)
	}
	if off < 0 || off > s.size-size || (sys.MemAddr(s.mem)+uintptr(off))%uintptr(size) != 0 {
		return ipc.Wrap("word", s.name, ipc.ErrInvalid)
	}
	return nil
}

// View returns the segment's memory at off as a *T, for structured shared data. T
// must hold no pointers (they would be meaningless in another process) and no padding
// (whose bytes another process could use as a covert channel or read as garbage): only
// fixed-size integers, floats, booleans, and arrays and structs of them, laid out
// without gaps. off must be aligned for T and T must fit. The view is valid only until
// Detach, and refused on a read-only attachment.
func View[T any](s *Segment, off int) (*T, error) {
	t := reflect.TypeFor[T]()
	if !plainType(t) {
		return nil, ipc.Wrap("view", s.name, fmt.Errorf("type %v has pointers or padding: %w", t, ipc.ErrInvalid))
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.mem == nil {
		return nil, s.detachedErr("view")
	}
	if s.ro {
		return nil, ipc.Wrap("view", s.name, unix.EACCES)
	}
	size := int(t.Size())
	if size == 0 || off < 0 || off > s.size-size || (sys.MemAddr(s.mem)+uintptr(off))%uintptr(t.Align()) != 0 {
		return nil, ipc.Wrap("view", s.name, ipc.ErrInvalid)
	}
	return sys.PointerAt[T](s.mem, off), nil
}

// plainType reports whether t is pointer-free and padding-free.
func plainType(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return true
	case reflect.Array:
		return plainType(t.Elem())
	case reflect.Struct:
		var sum uintptr
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Offset != sum || !plainType(f.Type) {
				return false
			}
			sum += f.Type.Size()
		}
		return sum == t.Size()
	}
	return false // int, uint, uintptr (size differs between peers), pointers, slices...
}

// Stat returns the segment's state (shmctl IPC_STAT).
func (s *Segment) Stat() (SegmentStat, error) {
	if s.closed.Load() {
		return SegmentStat{}, s.detachedErr("shmctl IPC_STAT")
	}
	var ds unix.SysvShmDesc
	if _, err := unix.SysvShmCtl(s.id, unix.IPC_STAT, &ds); err != nil {
		return SegmentStat{}, s.fail("shmctl IPC_STAT", err)
	}
	return segStat(&ds), nil
}

func segStat(ds *unix.SysvShmDesc) SegmentStat {
	return SegmentStat{
		Perm: permOf(&ds.Perm), Size: int(ds.Segsz),
		AttachTime: unixTime(ds.Atime), DetachTime: unixTime(ds.Dtime), ChangeTime: unixTime(ds.Ctime),
		CreatorPID: int(ds.Cpid), LastPID: int(ds.Lpid), Attached: int(ds.Nattch),
	}
}

// SetPerm changes the segment's owner and mode (shmctl IPC_SET); the mode is checked as
// WithMode's.
func (s *Segment) SetPerm(uid, gid, mode uint32) error {
	if s.closed.Load() {
		return s.detachedErr("shmctl IPC_SET")
	}
	if err := s.cfg.checkMode(mode); err != nil {
		return ipc.Wrap("shmctl IPC_SET", s.name, err)
	}
	var ds unix.SysvShmDesc
	ds.Perm.Uid, ds.Perm.Gid, ds.Perm.Mode = uid, gid, mode
	_, err := unix.SysvShmCtl(s.id, unix.IPC_SET, &ds)
	return s.fail("shmctl IPC_SET", err)
}

// Lock locks the segment in memory (shmctl SHM_LOCK); Unlock undoes it.
func (s *Segment) Lock() error { return s.ctl("shmctl SHM_LOCK", sys.SHM_LOCK) }

// Unlock lets the segment be swapped again (shmctl SHM_UNLOCK).
func (s *Segment) Unlock() error { return s.ctl("shmctl SHM_UNLOCK", sys.SHM_UNLOCK) }

// Remove marks the segment for destruction (shmctl IPC_RMID). It stays attached and
// usable, here and in every process already attached, and is destroyed at the last
// detach: calling Remove as soon as every party has attached means a crash leaks
// nothing (the attach-then-remove idiom). No process can attach it afterwards.
func (s *Segment) Remove() error {
	const op = "shmctl IPC_RMID"
	detached := s.closed.Load()
	if detached {
		// The id no longer holds the segment for this process: confirm it first.
		if err := s.checkRemove(op); err != nil {
			return err
		}
	}
	_, err := unix.SysvShmCtl(s.id, unix.IPC_RMID, nil)
	if err == nil && detached {
		s.removed.Store(true)
	}
	return s.fail(op, err)
}

func (s *Segment) ctl(op string, cmd int) error {
	if s.closed.Load() {
		return s.detachedErr(op)
	}
	_, err := unix.SysvShmCtl(s.id, cmd, nil)
	return s.fail(op, err)
}

// Detach detaches the segment from this process (shmdt(2)); afterwards ReadAt,
// WriteAt, Load32/64, View and the word accessors fail with os.ErrClosed, and Bytes
// returns nil. Slices and words obtained earlier must no longer be used. Detach is
// idempotent.
func (s *Segment) Detach() error {
	if !s.close() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	mem := s.mem
	s.mem = nil
	if mem == nil {
		return nil
	}
	return s.fail("shmdt", unix.SysvShmDetach(mem))
}

// Close is Detach.
func (s *Segment) Close() error { return s.Detach() }
