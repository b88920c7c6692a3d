//go:build linux && amd64

package ebpf

import (
	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ebpf/bpf"
)

func sc(op bpf.IpcprobeIpcOp, arg bpf.IpcprobeIpcArg, bytes bpf.IpcprobeIpcBytes) bpf.IpcprobeScInfo {
	return bpf.IpcprobeScInfo{Op: uint8(op), Arg: uint8(arg), Bytes: uint8(bytes)}
}

// syscallTable maps the system calls the probes trace to their operation, where their
// object is and where their byte count is.
var syscallTable = map[int]bpf.IpcprobeScInfo{
	unix.SYS_READ:            sc(bpf.IpcprobeIpcOpOP_READ, bpf.IpcprobeIpcArgARG_FD, bpf.IpcprobeIpcBytesBYTES_RET),
	unix.SYS_READV:           sc(bpf.IpcprobeIpcOpOP_READ, bpf.IpcprobeIpcArgARG_FD, bpf.IpcprobeIpcBytesBYTES_RET),
	unix.SYS_PREADV2:         sc(bpf.IpcprobeIpcOpOP_READ, bpf.IpcprobeIpcArgARG_FD, bpf.IpcprobeIpcBytesBYTES_RET),
	unix.SYS_WRITE:           sc(bpf.IpcprobeIpcOpOP_WRITE, bpf.IpcprobeIpcArgARG_FD, bpf.IpcprobeIpcBytesBYTES_RET),
	unix.SYS_WRITEV:          sc(bpf.IpcprobeIpcOpOP_WRITE, bpf.IpcprobeIpcArgARG_FD, bpf.IpcprobeIpcBytesBYTES_RET),
	unix.SYS_PWRITEV2:        sc(bpf.IpcprobeIpcOpOP_WRITE, bpf.IpcprobeIpcArgARG_FD, bpf.IpcprobeIpcBytesBYTES_RET),
	unix.SYS_SENDTO:          sc(bpf.IpcprobeIpcOpOP_SEND, bpf.IpcprobeIpcArgARG_FD, bpf.IpcprobeIpcBytesBYTES_RET),
	unix.SYS_SENDMSG:         sc(bpf.IpcprobeIpcOpOP_SEND, bpf.IpcprobeIpcArgARG_FD, bpf.IpcprobeIpcBytesBYTES_RET),
	unix.SYS_SENDMMSG:        sc(bpf.IpcprobeIpcOpOP_SEND, bpf.IpcprobeIpcArgARG_FD, bpf.IpcprobeIpcBytesBYTES_NONE),
	unix.SYS_RECVFROM:        sc(bpf.IpcprobeIpcOpOP_RECV, bpf.IpcprobeIpcArgARG_FD, bpf.IpcprobeIpcBytesBYTES_RET),
	unix.SYS_RECVMSG:         sc(bpf.IpcprobeIpcOpOP_RECV, bpf.IpcprobeIpcArgARG_FD, bpf.IpcprobeIpcBytesBYTES_RET),
	unix.SYS_RECVMMSG:        sc(bpf.IpcprobeIpcOpOP_RECV, bpf.IpcprobeIpcArgARG_FD, bpf.IpcprobeIpcBytesBYTES_NONE),
	unix.SYS_MSGSND:          sc(bpf.IpcprobeIpcOpOP_MSGSND, bpf.IpcprobeIpcArgARG_MSQ, bpf.IpcprobeIpcBytesBYTES_ARG2),
	unix.SYS_MSGRCV:          sc(bpf.IpcprobeIpcOpOP_MSGRCV, bpf.IpcprobeIpcArgARG_MSQ, bpf.IpcprobeIpcBytesBYTES_RET),
	unix.SYS_SEMOP:           sc(bpf.IpcprobeIpcOpOP_SEMOP, bpf.IpcprobeIpcArgARG_SEM, bpf.IpcprobeIpcBytesBYTES_NONE),
	unix.SYS_SEMTIMEDOP:      sc(bpf.IpcprobeIpcOpOP_SEMOP, bpf.IpcprobeIpcArgARG_SEM, bpf.IpcprobeIpcBytesBYTES_NONE),
	unix.SYS_MQ_TIMEDSEND:    sc(bpf.IpcprobeIpcOpOP_MQ_SEND, bpf.IpcprobeIpcArgARG_FD, bpf.IpcprobeIpcBytesBYTES_ARG2),
	unix.SYS_MQ_TIMEDRECEIVE: sc(bpf.IpcprobeIpcOpOP_MQ_RECV, bpf.IpcprobeIpcArgARG_FD, bpf.IpcprobeIpcBytesBYTES_RET),
	unix.SYS_EPOLL_WAIT:      sc(bpf.IpcprobeIpcOpOP_EPOLL_WAIT, bpf.IpcprobeIpcArgARG_EPOLL, bpf.IpcprobeIpcBytesBYTES_NONE),
	unix.SYS_EPOLL_PWAIT:     sc(bpf.IpcprobeIpcOpOP_EPOLL_WAIT, bpf.IpcprobeIpcArgARG_EPOLL, bpf.IpcprobeIpcBytesBYTES_NONE),
	unix.SYS_EPOLL_PWAIT2:    sc(bpf.IpcprobeIpcOpOP_EPOLL_WAIT, bpf.IpcprobeIpcArgARG_EPOLL, bpf.IpcprobeIpcBytesBYTES_NONE),
	unix.SYS_SPLICE:          sc(bpf.IpcprobeIpcOpOP_SPLICE, bpf.IpcprobeIpcArgARG_SPLICE, bpf.IpcprobeIpcBytesBYTES_RET),
	unix.SYS_VMSPLICE:        sc(bpf.IpcprobeIpcOpOP_VMSPLICE, bpf.IpcprobeIpcArgARG_FD, bpf.IpcprobeIpcBytesBYTES_RET),
}
