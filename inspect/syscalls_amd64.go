package inspect

import "golang.org/x/sys/unix"

// archCalls are the IPC calls amd64 has besides those of ipcCalls: the older forms
// that arm64 replaces with ppoll, pselect6, epoll_pwait and openat.
var archCalls = map[int]callShape{
	unix.SYS_POLL:       {name: "poll", for_: forAny, fd: -1, sysv: -1, timed: notNegative(2)},
	unix.SYS_SELECT:     {name: "select", for_: forAny, fd: -1, sysv: -1, timed: notNull(4)},
	unix.SYS_EPOLL_WAIT: {name: "epoll_wait", for_: forAny, fd: 0, sysv: -1, timed: notNegative(3)},
	unix.SYS_OPEN:       {name: "open", for_: forOpen, fd: -1, sysv: -1},
	unix.SYS_CREAT:      {name: "creat", for_: forOpen, fd: -1, sysv: -1},
}
