package inspect

import "time"

// SchemaVersion is the version of the JSON form of a Snapshot. Fields are only ever
// added within a version; a field that changes meaning or goes away bumps it.
const SchemaVersion = 1

// A Snapshot is what Take read: the machine's IPC objects, the threads blocked on
// them, and the deadlocks among those threads.
type Snapshot struct {
	// Schema is SchemaVersion.
	Schema int `json:"schema"`
	// Time is when the reading started; Took is how long it lasted.
	Time time.Time     `json:"time"`
	Took time.Duration `json:"took_ns"`
	// Privileged reports whether the reader could see every process (uid 0 or
	// CAP_SYS_PTRACE); otherwise it saw only its own user's descriptors and threads.
	Privileged bool `json:"privileged"`
	// PIDs are the processes asked for; empty means the whole machine.
	PIDs []int `json:"pids,omitempty"`
	// Processes are the processes that hold or wait on an object listed, sorted by pid.
	Processes []Process `json:"processes"`
	// Objects are the IPC objects, sorted by ID: by kind, then numerically by the
	// number after the colon ("pipe:999" before "pipe:1000"), else by name.
	Objects []Object `json:"objects"`
	// Waits are the threads blocked in an IPC system call, sorted by pid, then tid.
	Waits []Wait `json:"waits"`
	// Deadlocks are the cycles of waits that nothing outside them can break.
	Deadlocks []Deadlock `json:"deadlocks"`
	// Unreadable says what the reader could not read, and why.
	Unreadable []Unreadable `json:"unreadable,omitempty"`
}

// A Process is a process that holds or waits on an object.
type Process struct {
	PID  int    `json:"pid"`
	Comm string `json:"comm"`
	UID  int    `json:"uid"`
	// Threads is the number of threads the process has.
	Threads int `json:"threads"`
}

// Object kinds.
const (
	KindPipe          = "pipe"           // an anonymous pipe
	KindFIFO          = "fifo"           // a named pipe
	KindUnixStream    = "unix-stream"    // a Unix stream socket
	KindUnixDgram     = "unix-dgram"     // a Unix datagram socket
	KindUnixSeqpacket = "unix-seqpacket" // a Unix seqpacket socket
	KindTCP           = "tcp"            // a TCP socket (loopback)
	KindUDP           = "udp"            // a UDP socket (loopback)
	KindSysVQueue     = "sysv-msg"       // a System V message queue
	KindSysVSegment   = "sysv-shm"       // a System V shared memory segment
	KindSysVSemSet    = "sysv-sem"       // a System V semaphore set
	KindPosixMQ       = "posix-mq"       // a POSIX message queue
	KindDoor          = "door"           // an ipclab door: a listening seqpacket socket with a path
	KindMailbox       = "mailbox"        // an ipclab mailbox namespace entry
)

// An Object is one IPC object. Which fields are set depends on Kind; a field that
// does not apply is left out of the JSON form.
//
// ID names the object within a snapshot and across snapshots of one machine:
// "pipe:INODE", "fifo:INODE", "unix:INODE", "tcp:INODE", "udp:INODE", "msg:ID",
// "shm:ID", "sem:ID", "mq:/NAME", "door:INODE" (the listening socket's inode) and
// "mailbox:NAME"; a TCP socket in TIME-WAIT, which has no inode, is
// "tcp:LOCAL->REMOTE".
type Object struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Name is what names the object: a FIFO's, socket's or door's path ("@name" for
	// an abstract socket), a POSIX queue's name, a System V key ("0x0000162e"), a
	// mailbox entry's name. Anonymous objects have none.
	Name  string `json:"name,omitempty"`
	Inode uint64 `json:"inode,omitempty"`

	// Owner and mode: System V objects, POSIX queues, pipes, FIFOs, mailbox
	// entries; for a socket the owner's uid only. -1 when unknown.
	UID  int    `json:"uid"`
	GID  int    `json:"gid"`
	Mode uint32 `json:"mode,omitempty"` // permission bits
	// CreatorUID and CreatorGID are a System V object's creator.
	CreatorUID int `json:"cuid,omitempty"`
	CreatorGID int `json:"cgid,omitempty"`

	// Queued is the bytes waiting to be read: a pipe's or FIFO's FIONREAD, a
	// socket's receive queue, a System V queue's cbytes, a POSIX queue's QSIZE.
	// Unknown is -1.
	Queued int64 `json:"queued"`
	// Capacity is the most the object holds, in bytes: a pipe's size (F_GETPIPE_SZ),
	// a System V queue's qbytes, a POSIX queue's maxmsg × msgsize, a segment's size.
	// 0 when unknown or unbounded.
	Capacity int64 `json:"capacity,omitempty"`
	// Messages is the number of messages queued (System V and POSIX queues); -1 when
	// unknown.
	Messages int64 `json:"messages,omitempty"`
	// SendQueued is a socket's send queue (bytes not yet read by the peer, or for a
	// listener the backlog limit).
	SendQueued int64 `json:"send_queued,omitempty"`
	// State is a socket's state: "listen", "established", "unconnected", "close".
	State string `json:"state,omitempty"`
	// Peer is the ID of a connected socket's peer.
	Peer string `json:"peer,omitempty"`
	// Local and Remote are an inet socket's addresses.
	Local  string `json:"local,omitempty"`
	Remote string `json:"remote,omitempty"`
	// Pending is, for a listening socket or door, the connections waiting in accept.
	Pending int `json:"pending,omitempty"`

	// System V: key and id, the processes that last used it, attachments.
	Key         *int32 `json:"key,omitempty"`
	SysVID      *int   `json:"sysv_id,omitempty"` // (a pointer: 0 is a valid id)
	CreatorPID  int    `json:"cpid,omitempty"`
	LastPID     int    `json:"lpid,omitempty"`  // segment: last shmat/shmdt
	LastSendPID int    `json:"lspid,omitempty"` // queue: last msgsnd
	LastRecvPID int    `json:"lrpid,omitempty"` // queue: last msgrcv
	Attached    int    `json:"nattch,omitempty"`
	// Semaphores are a set's semaphores, in order.
	Semaphores []Semaphore `json:"semaphores,omitempty"`

	// NotifyPID is the process registered with mq_notify on a POSIX queue.
	NotifyPID int `json:"notify_pid,omitempty"`

	// Mailbox is the namespace record of a mailbox entry.
	Mailbox *MailboxEntry `json:"mailbox,omitempty"`
	// Door is what is known of a door.
	Door *Door `json:"door,omitempty"`

	// Holders are the descriptors that hold the object, sorted by pid then fd.
	Holders []Holder `json:"holders,omitempty"`
}

// A Semaphore is one semaphore of a set.
type Semaphore struct {
	Value int `json:"value"`
	// PID is the last process to operate on it (sempid).
	PID int `json:"pid"`
	// Waiting are the threads waiting for it to grow (semncnt) and to reach zero
	// (semzcnt).
	WaitingIncrease int `json:"ncnt"`
	WaitingZero     int `json:"zcnt"`
}

// A MailboxEntry is an ipclab mailbox namespace record.
type MailboxEntry struct {
	Dir     string `json:"dir"`
	Kind    string `json:"kind"`    // mailbox, port, reply, link
	Backend string `json:"backend"` // posixmq, sysv, seqpacket
	Object  string `json:"object"`  // the kernel object's name, id or path
	// ObjectID is the ID of the kernel object in this snapshot, if it was seen.
	ObjectID   string `json:"object_id,omitempty"`
	OwnerPID   int    `json:"owner_pid"`
	Persistent bool   `json:"persistent"`
	// Live reports whether the owner process still exists; a transient entry whose
	// owner is gone is stale (mailbox.Namespace.Reap removes it).
	Live bool `json:"live"`
}

// A Door is an ipclab door: a listening seqpacket socket bound to a path.
type Door struct {
	ServerPID int `json:"server_pid"`
	// Clients are the processes connected to it.
	Clients []int `json:"clients,omitempty"`
}

// A Holder is a descriptor that holds an object.
type Holder struct {
	PID int `json:"pid"`
	FD  int `json:"fd"`
	// Access is "r", "w" or "rw" (the descriptor's open mode).
	Access string `json:"access"`
}

// A Wait is a thread blocked in an IPC system call.
type Wait struct {
	PID  int    `json:"pid"`
	TID  int    `json:"tid"`
	Comm string `json:"comm"`
	// Syscall is the call's name ("read", "msgrcv", "semtimedop", ...).
	Syscall string `json:"syscall"`
	// Wchan is where in the kernel the thread sleeps, when the kernel says.
	Wchan string `json:"wchan,omitempty"`
	// FD is the descriptor the call was made on, or -1.
	FD int `json:"fd"`
	// Object is the ID of the object waited on ("" if it could not be told).
	Object string `json:"object,omitempty"`
	// For is what the call waits for: "data" (something to read), "space" (room to
	// write), "connection" (accept), "semaphore N ≥ K" / "semaphore N = 0", "any"
	// (an epoll or poll wait on several objects).
	For string `json:"for"`
	// State is the object's state as read: "empty", "full", "value 0", ...
	State string `json:"state,omitempty"`
	// Timed reports whether the call has a timeout (and so ends by itself).
	Timed bool `json:"timed,omitempty"`
	// Wakers are the processes that can make the object ready: those that hold its
	// other end or can send to it (for System V objects, which have no holders, the
	// processes the kernel recorded as last using it, and those waiting on it).
	Wakers []int `json:"wakers"`
}

// A Deadlock is a cycle of waits: each thread waits on an object that only the next
// process in the cycle can make ready, and that process waits too.
type Deadlock struct {
	// Path alternates processes and objects: P1 waits on O1, which only P2 can make
	// ready; P2 waits on O2; ... back to P1.
	Path []Step `json:"path"`
}

// A Step of a deadlock's path: the thread TID of process PID waits in Syscall on
// Object.
type Step struct {
	PID     int    `json:"pid"`
	TID     int    `json:"tid"`
	Comm    string `json:"comm"`
	Syscall string `json:"syscall"`
	Object  string `json:"object"`
}

// Unreadable is something the reader could not read.
type Unreadable struct {
	What string `json:"what"` // "/proc/812/fd", "sock_diag", ...
	Err  string `json:"error"`
}
