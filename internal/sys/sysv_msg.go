package sys

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// System V IPC constants that golang.org/x/sys/unix does not define (from
// <linux/ipc.h>, <linux/msg.h>, <linux/sem.h>, <linux/shm.h>).
const (
	IPC_INFO = 3 // msgctl/semctl/shmctl: system-wide limits

	MSG_NOERROR  = 0o10000 // msgrcv: truncate a long message instead of E2BIG
	MSG_EXCEPT   = 0o20000 // msgrcv: first message whose type is not msgtyp
	MSG_COPY     = 0o40000 // msgrcv: copy message number msgtyp without removing it
	MSG_STAT     = 11      // msgctl: IPC_STAT by index
	MSG_INFO     = 12      // msgctl: usage figures
	MSG_STAT_ANY = 13      // msgctl: MSG_STAT without a read-permission check
)

// MsgHeaderSize is the size of the mtype field that precedes the text of a message in
// the buffer msgsnd and msgrcv take (a C long).
const MsgHeaderSize = 8

// MsqidDS is struct msqid64_ds on linux/amd64 and linux/arm64 (asm-generic layout).
type MsqidDS struct {
	Perm   unix.SysvIpcPerm
	Stime  int64
	Rtime  int64
	Ctime  int64
	Cbytes uint64
	Qnum   uint64
	Qbytes uint64
	Lspid  int32
	Lrpid  int32
	_      uint64
	_      uint64
}

// Msginfo is struct msginfo, filled by msgctl IPC_INFO and MSG_INFO.
type Msginfo struct {
	Msgpool int32
	Msgmap  int32
	Msgmax  int32
	Msgmnb  int32
	Msgmni  int32
	Msgssz  int32
	Msgtql  int32
	Msgseg  uint16
	_       uint16
}

// Msgget wraps msgget(2).
func Msgget(key int32, flags int) (int, error) {
	id, _, e := unix.Syscall(unix.SYS_MSGGET, uintptr(key), uintptr(flags), 0)
	if e != 0 {
		return -1, e
	}
	return int(id), nil
}

// Msgsnd wraps msgsnd(2). buf holds the message type in its first MsgHeaderSize bytes
// (native byte order) followed by the text; the text's length is len(buf)-MsgHeaderSize.
func Msgsnd(id int, buf []byte, flags int) error {
	if len(buf) < MsgHeaderSize {
		return unix.EINVAL
	}
	return errnoErr(MsgsndErrno(id, buf, flags))
}

// Msgrcv wraps msgrcv(2). buf receives the type in its first MsgHeaderSize bytes and
// up to len(buf)-MsgHeaderSize bytes of text; it returns the length of the text.
func Msgrcv(id int, buf []byte, msgtyp int64, flags int) (int, error) {
	if len(buf) < MsgHeaderSize {
		return 0, unix.EINVAL
	}
	n, e := MsgrcvErrno(id, buf, msgtyp, flags)
	if e != 0 {
		return 0, e
	}
	return n, nil
}

// MsgsndErrno is Msgsnd returning the raw errno (0 for success), small enough to be
// inlined into a caller's hot path. len(buf) must be at least MsgHeaderSize.
func MsgsndErrno(id int, buf []byte, flags int) unix.Errno {
	_, _, e := unix.Syscall6(unix.SYS_MSGSND, uintptr(id), uintptr(unsafe.Pointer(unsafe.SliceData(buf))),
		uintptr(len(buf)-MsgHeaderSize), uintptr(flags), 0, 0)
	return e
}

// MsgrcvErrno is Msgrcv returning the raw errno (0 for success). len(buf) must be at
// least MsgHeaderSize.
func MsgrcvErrno(id int, buf []byte, msgtyp int64, flags int) (int, unix.Errno) {
	n, _, e := unix.Syscall6(unix.SYS_MSGRCV, uintptr(id), uintptr(unsafe.Pointer(unsafe.SliceData(buf))),
		uintptr(len(buf)-MsgHeaderSize), uintptr(msgtyp), uintptr(flags), 0)
	return int(n), e
}

// MsgctlStat wraps msgctl(2) with a command that fills a MsqidDS (IPC_STAT, MSG_STAT,
// MSG_STAT_ANY) or reads one (IPC_SET). It returns the call's result (an id for the
// *_STAT-by-index commands).
func MsgctlStat(id, cmd int, ds *MsqidDS) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_MSGCTL, uintptr(id), uintptr(cmd), uintptr(unsafe.Pointer(ds)))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// MsgctlInfo wraps msgctl(2) IPC_INFO or MSG_INFO; it returns the highest used index.
func MsgctlInfo(cmd int, info *Msginfo) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_MSGCTL, 0, uintptr(cmd), uintptr(unsafe.Pointer(info)))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// Msgctl wraps msgctl(2) for commands without a buffer (IPC_RMID) or with an arbitrary
// (possibly invalid) command number.
func Msgctl(id, cmd int) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_MSGCTL, uintptr(id), uintptr(cmd), 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}
