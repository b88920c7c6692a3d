package sys

import "golang.org/x/sys/unix"

// SemidDS is struct semid64_ds on linux/amd64 (arch/x86 layout, with padding words
// after each time).
type SemidDS struct {
	Perm  unix.SysvIpcPerm
	Otime int64
	_     uint64
	Ctime int64
	_     uint64
	Nsems uint64
	_     uint64
	_     uint64
}
