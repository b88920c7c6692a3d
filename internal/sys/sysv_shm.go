package sys

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Shared-memory constants from <linux/shm.h>.
const (
	SHM_REMAP     = 0o40000 // shmat: replace an existing mapping at the address
	SHM_LOCK      = 11      // shmctl: lock the segment in memory
	SHM_UNLOCK    = 12      // shmctl: unlock it
	SHM_STAT      = 13      // shmctl: IPC_STAT by index
	SHM_INFO      = 14      // shmctl: usage figures
	SHM_STAT_ANY  = 15      // shmctl: SHM_STAT without a read-permission check
	SHM_HUGETLB   = 0o4000  // shmget: back the segment with huge pages
	SHM_NORESERVE = 0o10000 // shmget: do not reserve swap
	SHM_DEST      = 0o1000  // shm_perm.mode: marked for destruction
	SHM_LOCKED    = 0o2000  // shm_perm.mode: locked in memory
)

// Shminfo is struct shminfo64, filled by shmctl IPC_INFO.
type Shminfo struct {
	Shmmax uint64
	Shmmin uint64
	Shmmni uint64
	Shmseg uint64
	Shmall uint64
	_      [4]uint64
}

// ShmInfo is struct shm_info, filled by shmctl SHM_INFO.
type ShmInfo struct {
	UsedIDs       int32
	_             int32
	ShmTot        uint64
	ShmRss        uint64
	ShmSwp        uint64
	SwapAttempts  uint64
	SwapSuccesses uint64
}

// ShmctlInfo wraps shmctl(2) IPC_INFO (info must be a *Shminfo) or SHM_INFO (a
// *ShmInfo); it returns the highest used index.
func ShmctlInfo(cmd int, info unsafe.Pointer) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_SHMCTL, 0, uintptr(cmd), uintptr(info))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// ShmctlIPCInfo is ShmctlInfo(IPC_INFO).
func ShmctlIPCInfo(info *Shminfo) (int, error) {
	return ShmctlInfo(IPC_INFO, unsafe.Pointer(info))
}

// ShmctlSHMInfo is ShmctlInfo(SHM_INFO).
func ShmctlSHMInfo(info *ShmInfo) (int, error) {
	return ShmctlInfo(SHM_INFO, unsafe.Pointer(info))
}

// ShmdtAddr wraps shmdt(2) for an arbitrary address (which may not be attached, or
// not aligned: the kernel answers EINVAL).
func ShmdtAddr(addr uintptr) error {
	_, _, e := unix.Syscall(unix.SYS_SHMDT, addr, 0, 0)
	return errnoErr(e)
}

// MemAddr returns the address of b's first byte (0 for an empty slice), for alignment
// checks and address arithmetic on mappings.
func MemAddr(b []byte) uintptr {
	if len(b) == 0 {
		return 0
	}
	return uintptr(unsafe.Pointer(&b[0]))
}

// Uint32At returns the 32-bit word at b[off:off+4] as an atomic. The caller has checked
// bounds and 4-byte alignment and keeps b mapped while the word is used.
func Uint32At(b []byte, off int) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&b[off]))
}

// Uint64At is Uint32At for an 8-byte aligned 64-bit word.
func Uint64At(b []byte, off int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&b[off]))
}

// PointerAt returns b[off:] viewed as a *T. The caller has checked that T is free of
// pointers and padding, that it fits and that off is aligned for T.
func PointerAt[T any](b []byte, off int) *T {
	return (*T)(unsafe.Pointer(&b[off]))
}

// FutexWait wraps futex(2) FUTEX_WAIT (shared, not FUTEX_PRIVATE_FLAG, so it works on
// memory shared between processes): it sleeps while *w == val, until woken, timeout
// (relative; nil: none) or a signal (EINTR). It returns EAGAIN at once if *w != val,
// ETIMEDOUT on timeout.
func FutexWait(w *atomic.Uint32, val uint32, timeout *unix.Timespec) error {
	_, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWait, uintptr(val),
		uintptr(unsafe.Pointer(timeout)), 0, 0)
	return errnoErr(e)
}

// FutexWake wraps futex(2) FUTEX_WAKE (shared): it wakes up to n waiters on w and
// returns how many it woke.
func FutexWake(w *atomic.Uint32, n int) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWake, uintptr(n), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// futex(2) operations (<linux/futex.h>), without FUTEX_PRIVATE_FLAG.
const (
	futexWait = 0
	futexWake = 1
)

// RemapFilePages wraps the deprecated remap_file_pages(2) for the size bytes at b[off:],
// mapping them to page pgoff of the backing file (LTP shmctl05 races it with IPC_RMID).
func RemapFilePages(b []byte, off, size, pgoff int) error {
	if off < 0 || size <= 0 || off+size > len(b) {
		return unix.EINVAL
	}
	_, _, e := unix.Syscall6(unix.SYS_REMAP_FILE_PAGES, uintptr(unsafe.Pointer(&b[off])), uintptr(size), 0, uintptr(pgoff), 0, 0)
	return errnoErr(e)
}
