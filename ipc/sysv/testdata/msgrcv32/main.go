// Command msgrcv32 is a 32-bit (GOARCH=386) test fixture for the compat rows of the
// conformance catalogue, run under IA32 emulation:
//
//	msgrcv32 ID TYPE     MSG-17: msgrcv with msgtyp TYPE and IPC_NOWAIT|MSG_NOERROR;
//	                     prints "type text"
//	msgrcv32 stat KIND ID  MSG-22, SEM-16, SHM-13: IPC_STAT of a msg, sem or shm object
//	                     (the direct compat calls always use the *id64_ds layouts);
//	                     prints each time as "low/high"
//
// On failure it prints "errno N ..." and exits 1.
package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// i386 direct System V system calls (Linux ≥ 5.1).
const (
	sysSemctl = 394
	sysShmctl = 396
	sysMsgrcv = 401
	sysMsgctl = 402

	ipcNowait  = 0o4000
	msgNoerror = 0o10000
	ipcStat    = 2
)

func fail(e syscall.Errno) {
	fmt.Println("errno", int(e), e)
	os.Exit(1)
}

func main() {
	if os.Args[1] == "stat" {
		stat(os.Args[2], os.Args[3])
		return
	}
	id, _ := strconv.Atoi(os.Args[1])
	typ, _ := strconv.Atoi(os.Args[2])
	var buf [4 + 64]byte // 32-bit long mtype, then the text
	n, _, e := syscall.Syscall6(sysMsgrcv, uintptr(id), uintptr(unsafe.Pointer(&buf[0])), 64,
		uintptr(typ), ipcNowait|msgNoerror, 0)
	if e != 0 {
		fail(e)
	}
	fmt.Printf("%d %s\n", binary.LittleEndian.Uint32(buf[:4]), buf[4:4+n])
}

// stat prints the time fields of the compat *id64_ds structures, which follow a
// 36-byte struct compat_ipc64_perm: msg stime/rtime/ctime at 36, sem otime/ctime at
// 36, shm atime/dtime/ctime at 40 (after shm_segsz); each a low and a high word.
func stat(kind, ids string) {
	id, _ := strconv.Atoi(ids)
	var ds [128]byte
	p := uintptr(unsafe.Pointer(&ds[0]))
	var e syscall.Errno
	var off, count int
	switch kind {
	case "msg":
		_, _, e = syscall.Syscall(sysMsgctl, uintptr(id), ipcStat, p)
		off, count = 36, 3
	case "sem":
		_, _, e = syscall.Syscall6(sysSemctl, uintptr(id), 0, ipcStat, p, 0, 0)
		off, count = 36, 2
	case "shm":
		_, _, e = syscall.Syscall(sysShmctl, uintptr(id), ipcStat, p)
		off, count = 40, 3
	}
	if e != 0 {
		fail(e)
	}
	for i := range count {
		o := off + 8*i
		fmt.Printf("%d/%d ", binary.LittleEndian.Uint32(ds[o:]), binary.LittleEndian.Uint32(ds[o+4:]))
	}
	fmt.Println()
}
