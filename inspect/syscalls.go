package inspect

import "golang.org/x/sys/unix"

// What a blocked call waits for (Wait.For, before a semaphore wait is refined to
// "semaphore N ≥ K").
const (
	forData       = "data"       // something to read
	forSpace      = "space"      // room to write
	forConnection = "connection" // a connection to accept
	forSemaphore  = "semaphore"  // semaphore values
	forAny        = "any"        // any of several descriptors (poll, select, epoll)
	forOpen       = "open"       // a FIFO open waiting for its other end
)

// A callInfo describes an IPC system call a thread is blocked in.
type callInfo struct {
	Name string
	// FD is the descriptor the call was made on (an epoll wait's epoll descriptor),
	// or -1.
	FD int
	// SysVID is the System V queue or semaphore set id, or -1.
	SysVID int
	// For is what the call waits for: forData, forSpace, ...
	For string
	// Timed reports whether the call's arguments give it a timeout, so that it ends
	// by itself. A timeout set on the descriptor (SO_RCVTIMEO) is not seen here.
	Timed bool
	// SopsAddr and Nsops are a semop or semtimedop call's operations, in the
	// caller's memory (see readSembufs).
	SopsAddr uint64
	Nsops    int
}

// A callShape says how to read a call's arguments.
type callShape struct {
	name string
	for_ string
	// fd and sysv are the indexes of the descriptor and the System V id arguments,
	// or -1.
	fd, sysv int
	// timed reports whether the arguments set a timeout; nil means never.
	timed func(args [6]uint64) bool
}

// notNull(i) is a timeout given as a pointer in argument i.
func notNull(i int) func([6]uint64) bool {
	return func(a [6]uint64) bool { return a[i] != 0 }
}

// notNegative(i) is a timeout in milliseconds in argument i, an int: negative is
// none.
func notNegative(i int) func([6]uint64) bool {
	return func(a [6]uint64) bool { return int32(a[i]) >= 0 }
}

// ipcCalls are the calls a thread can block in on an IPC object, common to amd64
// and arm64; archCalls (syscalls_$GOARCH.go) adds the older calls only amd64 has.
//
// splice and tee are taken to wait for data on their input; they may instead wait
// for room in their output. recvmmsg's timeout is only checked after a datagram
// arrives (recvmmsg(2), BUGS), so it does not bound the wait for the first.
var ipcCalls = map[int]callShape{
	unix.SYS_READ:     {name: "read", for_: forData, fd: 0, sysv: -1},
	unix.SYS_READV:    {name: "readv", for_: forData, fd: 0, sysv: -1},
	unix.SYS_PREADV2:  {name: "preadv2", for_: forData, fd: 0, sysv: -1},
	unix.SYS_RECVFROM: {name: "recvfrom", for_: forData, fd: 0, sysv: -1},
	unix.SYS_RECVMSG:  {name: "recvmsg", for_: forData, fd: 0, sysv: -1},
	unix.SYS_RECVMMSG: {name: "recvmmsg", for_: forData, fd: 0, sysv: -1},
	unix.SYS_SPLICE:   {name: "splice", for_: forData, fd: 0, sysv: -1},
	unix.SYS_TEE:      {name: "tee", for_: forData, fd: 0, sysv: -1},
	unix.SYS_MQ_TIMEDRECEIVE: {name: "mq_timedreceive", for_: forData, fd: 0, sysv: -1,
		timed: notNull(4)},
	unix.SYS_MSGRCV: {name: "msgrcv", for_: forData, fd: -1, sysv: 0},

	unix.SYS_WRITE:    {name: "write", for_: forSpace, fd: 0, sysv: -1},
	unix.SYS_WRITEV:   {name: "writev", for_: forSpace, fd: 0, sysv: -1},
	unix.SYS_PWRITEV2: {name: "pwritev2", for_: forSpace, fd: 0, sysv: -1},
	unix.SYS_SENDTO:   {name: "sendto", for_: forSpace, fd: 0, sysv: -1},
	unix.SYS_SENDMSG:  {name: "sendmsg", for_: forSpace, fd: 0, sysv: -1},
	unix.SYS_SENDMMSG: {name: "sendmmsg", for_: forSpace, fd: 0, sysv: -1},
	unix.SYS_VMSPLICE: {name: "vmsplice", for_: forSpace, fd: 0, sysv: -1},
	unix.SYS_MQ_TIMEDSEND: {name: "mq_timedsend", for_: forSpace, fd: 0, sysv: -1,
		timed: notNull(4)},
	unix.SYS_MSGSND: {name: "msgsnd", for_: forSpace, fd: -1, sysv: 0},

	unix.SYS_ACCEPT:  {name: "accept", for_: forConnection, fd: 0, sysv: -1},
	unix.SYS_ACCEPT4: {name: "accept4", for_: forConnection, fd: 0, sysv: -1},

	unix.SYS_SEMOP:      {name: "semop", for_: forSemaphore, fd: -1, sysv: 0},
	unix.SYS_SEMTIMEDOP: {name: "semtimedop", for_: forSemaphore, fd: -1, sysv: 0, timed: notNull(3)},

	unix.SYS_PPOLL:        {name: "ppoll", for_: forAny, fd: -1, sysv: -1, timed: notNull(2)},
	unix.SYS_PSELECT6:     {name: "pselect6", for_: forAny, fd: -1, sysv: -1, timed: notNull(4)},
	unix.SYS_EPOLL_PWAIT:  {name: "epoll_pwait", for_: forAny, fd: 0, sysv: -1, timed: notNegative(3)},
	unix.SYS_EPOLL_PWAIT2: {name: "epoll_pwait2", for_: forAny, fd: 0, sysv: -1, timed: notNull(3)},

	unix.SYS_OPENAT:  {name: "openat", for_: forOpen, fd: -1, sysv: -1},
	unix.SYS_OPENAT2: {name: "openat2", for_: forOpen, fd: -1, sysv: -1},
}

func init() {
	for nr, c := range archCalls {
		ipcCalls[nr] = c
	}
}

// ipcCall describes the call nr with arguments args that a thread is blocked in (as
// /proc/PID/task/TID/syscall shows them): its name, the descriptor it was made on
// (-1 if none), the System V id (-1 if none), what it waits for, whether it has a
// timeout, and for a semaphore operation where its operations are. ok is false for
// calls that are not IPC waits (futex, nanosleep, wait4, ...).
func ipcCall(nr int, args [6]uint64) (c callInfo, ok bool) {
	s, ok := ipcCalls[nr]
	if !ok {
		return callInfo{}, false
	}
	c = callInfo{Name: s.name, FD: -1, SysVID: -1, For: s.for_}
	if s.fd >= 0 {
		c.FD = int(int32(args[s.fd]))
	}
	if s.sysv >= 0 {
		c.SysVID = int(int32(args[s.sysv]))
	}
	if s.timed != nil {
		c.Timed = s.timed(args)
	}
	if s.for_ == forSemaphore {
		c.SopsAddr = args[1]
		c.Nsops = int(uint32(args[2]))
	}
	return c, true
}
