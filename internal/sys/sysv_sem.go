package sys

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Semaphore constants from <linux/sem.h>.
const (
	SEM_UNDO     = 0x1000
	GETPID       = 11
	GETVAL       = 12
	GETALL       = 13
	GETNCNT      = 14
	GETZCNT      = 15
	SETVAL       = 16
	SETALL       = 17
	SEM_STAT     = 18
	SEM_INFO     = 19
	SEM_STAT_ANY = 20
)

// Sembuf is the shape of struct sembuf. Semop and Semtimedop take a slice of any struct
// type with exactly this layout, so that callers can keep their own named type.
type Sembuf interface {
	~struct {
		Num   uint16
		Op    int16
		Flags int16
	}
}

// Seminfo is struct seminfo, filled by semctl IPC_INFO and SEM_INFO.
type Seminfo struct {
	Semmap int32
	Semmni int32
	Semmns int32
	Semmnu int32
	Semmsl int32
	Semopm int32
	Semume int32
	Semusz int32
	Semvmx int32
	Semaem int32
}

// Semget wraps semget(2).
func Semget(key int32, nsems, flags int) (int, error) {
	id, _, e := unix.Syscall(unix.SYS_SEMGET, uintptr(key), uintptr(nsems), uintptr(flags))
	if e != 0 {
		return -1, e
	}
	return int(id), nil
}

// Semtimedop wraps semtimedop(2); a nil timeout waits indefinitely (semop(2)). An empty
// ops is passed to the kernel as nsops 0 (EINVAL). A timeout expiring returns EAGAIN.
func Semtimedop[T Sembuf](id int, ops []T, timeout *unix.Timespec) error {
	return errnoErr(SemtimedopErrno(id, ops, timeout))
}

// SemtimedopErrno is Semtimedop returning the raw errno (0 for success).
func SemtimedopErrno[T Sembuf](id int, ops []T, timeout *unix.Timespec) unix.Errno {
	_, _, e := unix.Syscall6(unix.SYS_SEMTIMEDOP, uintptr(id), uintptr(unsafe.Pointer(unsafe.SliceData(ops))),
		uintptr(len(ops)), uintptr(unsafe.Pointer(timeout)), 0, 0)
	return e
}

// SemctlInt wraps semctl(2) for commands whose argument is an int (SETVAL) or unused
// (GETVAL, GETPID, GETNCNT, GETZCNT, IPC_RMID). It returns the call's result.
func SemctlInt(id, num, cmd, arg int) (int, error) {
	// union semun passes val in the low 32 bits of the register on little-endian
	// 64-bit systems.
	r, _, e := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), uintptr(num), uintptr(cmd), uintptr(uint32(int32(arg))), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// SemctlArray wraps semctl(2) GETALL and SETALL. vals must hold one value per
// semaphore in the set.
func SemctlArray(id, cmd int, vals []uint16) error {
	var p unsafe.Pointer
	if len(vals) > 0 {
		p = unsafe.Pointer(&vals[0])
	}
	_, _, e := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), 0, uintptr(cmd), uintptr(p), 0, 0)
	return errnoErr(e)
}

// SemctlStat wraps semctl(2) IPC_STAT, IPC_SET, SEM_STAT and SEM_STAT_ANY.
func SemctlStat(id, cmd int, ds *SemidDS) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), 0, uintptr(cmd), uintptr(unsafe.Pointer(ds)), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// SemctlInfo wraps semctl(2) IPC_INFO and SEM_INFO; it returns the highest used index.
func SemctlInfo(cmd int, info *Seminfo) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_SEMCTL, 0, 0, uintptr(cmd), uintptr(unsafe.Pointer(info)), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}
