package inspect

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestIPCCall(t *testing.T) {
	const none = ^uint64(0) // -1 in a register
	for _, c := range []struct {
		nr   int
		args [6]uint64
		want callInfo
	}{
		{unix.SYS_READ, [6]uint64{3}, callInfo{Name: "read", FD: 3, SysVID: -1, For: forData}},
		{unix.SYS_RECVMSG, [6]uint64{7}, callInfo{Name: "recvmsg", FD: 7, SysVID: -1, For: forData}},
		{unix.SYS_RECVMMSG, [6]uint64{7, 1, 1, 0, 0x1000}, callInfo{Name: "recvmmsg", FD: 7, SysVID: -1, For: forData}},
		{unix.SYS_SPLICE, [6]uint64{4, 0, 5}, callInfo{Name: "splice", FD: 4, SysVID: -1, For: forData}},
		{unix.SYS_MQ_TIMEDRECEIVE, [6]uint64{3, 1, 2, 0, 0}, callInfo{Name: "mq_timedreceive", FD: 3, SysVID: -1, For: forData}},
		{unix.SYS_MQ_TIMEDRECEIVE, [6]uint64{3, 1, 2, 0, 0x1000}, callInfo{Name: "mq_timedreceive", FD: 3, SysVID: -1, For: forData, Timed: true}},
		{unix.SYS_MSGRCV, [6]uint64{65536, 1, 2, 0, 0}, callInfo{Name: "msgrcv", FD: -1, SysVID: 65536, For: forData}},
		{unix.SYS_WRITEV, [6]uint64{9}, callInfo{Name: "writev", FD: 9, SysVID: -1, For: forSpace}},
		{unix.SYS_VMSPLICE, [6]uint64{9}, callInfo{Name: "vmsplice", FD: 9, SysVID: -1, For: forSpace}},
		{unix.SYS_MQ_TIMEDSEND, [6]uint64{3, 1, 2, 0, 0x1000}, callInfo{Name: "mq_timedsend", FD: 3, SysVID: -1, For: forSpace, Timed: true}},
		{unix.SYS_MSGSND, [6]uint64{12, 1, 2, 0}, callInfo{Name: "msgsnd", FD: -1, SysVID: 12, For: forSpace}},
		{unix.SYS_ACCEPT4, [6]uint64{6}, callInfo{Name: "accept4", FD: 6, SysVID: -1, For: forConnection}},
		{unix.SYS_SEMOP, [6]uint64{5, 0xc000, 2}, callInfo{Name: "semop", FD: -1, SysVID: 5, For: forSemaphore, SopsAddr: 0xc000, Nsops: 2}},
		{unix.SYS_SEMTIMEDOP, [6]uint64{5, 0xc000, 1, 0xd000}, callInfo{Name: "semtimedop", FD: -1, SysVID: 5, For: forSemaphore, Timed: true, SopsAddr: 0xc000, Nsops: 1}},
		{unix.SYS_PPOLL, [6]uint64{0xc000, 2, 0}, callInfo{Name: "ppoll", FD: -1, SysVID: -1, For: forAny}},
		{unix.SYS_PSELECT6, [6]uint64{4, 1, 0, 0, 0x10}, callInfo{Name: "pselect6", FD: -1, SysVID: -1, For: forAny, Timed: true}},
		{unix.SYS_EPOLL_PWAIT, [6]uint64{4, 1, 8, none}, callInfo{Name: "epoll_pwait", FD: 4, SysVID: -1, For: forAny}},
		{unix.SYS_EPOLL_PWAIT, [6]uint64{4, 1, 8, 0xffffffff}, callInfo{Name: "epoll_pwait", FD: 4, SysVID: -1, For: forAny}},
		{unix.SYS_EPOLL_PWAIT, [6]uint64{4, 1, 8, 0}, callInfo{Name: "epoll_pwait", FD: 4, SysVID: -1, For: forAny, Timed: true}},
		{unix.SYS_EPOLL_PWAIT2, [6]uint64{4, 1, 8, 0}, callInfo{Name: "epoll_pwait2", FD: 4, SysVID: -1, For: forAny}},
		{unix.SYS_OPENAT, [6]uint64{none, 0xc000, 0}, callInfo{Name: "openat", FD: -1, SysVID: -1, For: forOpen}},
	} {
		got, ok := ipcCall(c.nr, c.args)
		if !ok || got != c.want {
			t.Errorf("ipcCall(%d, %x) = %+v, %v; want %+v", c.nr, c.args, got, ok, c.want)
		}
	}
	for _, nr := range []int{unix.SYS_FUTEX, unix.SYS_NANOSLEEP, unix.SYS_WAIT4, unix.SYS_CLOCK_NANOSLEEP, -1} {
		if c, ok := ipcCall(nr, [6]uint64{}); ok {
			t.Errorf("ipcCall(%d) = %+v, want not an IPC wait", nr, c)
		}
	}
}
