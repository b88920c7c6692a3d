package sys

import "golang.org/x/sys/unix"

// SemidDS is struct semid64_ds on linux/arm64 (asm-generic layout).
type SemidDS struct {
	Perm  unix.SysvIpcPerm
	Otime int64
	Ctime int64
	Nsems uint64
	_     uint64
	_     uint64
}
