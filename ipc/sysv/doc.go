// Package sysv wraps System V IPC: message queues (Queue), shared memory segments
// (Segment), semaphore sets (SemSet), and a single-producer single-consumer message
// ring over shared memory (Ring).
//
// # Naming and trust
//
// An object is named by a Key (Private, or one made with Ftok) or by the id the kernel
// gave it, passed on to the peer. Create* always uses IPC_CREAT|IPC_EXCL with mode 0600
// unless WithMode says otherwise, and refuses a mode that lets other users read or
// write (or the group write) unless AllowWorld (AllowGroup) is given. Open* by key or
// id checks that the object's owner and creator are the expected user (WithOwner,
// default: the effective uid) and that its mode is no wider than the one asked for;
// otherwise it fails with ipc.ErrUntrustedObject (key squatting). Prefer Private and
// pass the id over an authenticated channel.
//
// # Stale ids (conformance S4)
//
// Once an object is removed, the kernel gives its id to a later object: the id is
// seq*32768 + index, indexes are handed out in a cycle of at least 64 and seq moves on
// at each turn, so the id comes back after 64×65536 ≈ 4.2 million creations of that
// kind in the IPC namespace (4.4 µs a create/remove cycle, so 18 s, measured on the
// busy 2-CPU test machine). Those creations may all happen before the removal: a
// process that ran the counter round beforehand needs only the removal and one
// creation. A handle therefore remembers what its id named when it was made
// (Identity: key, creator uid and gid, and a semaphore set's size, which no IPC_SET
// changes) and confirms it with one IPC_STAT (a handle without read access to its
// object, which IPC_STAT refuses, reads /proc/sysvipc instead, and for the calls below
// that deliver or take at most every 100 ms):
//
//   - every time before a call that changes or destroys the object: Remove, SetAttr,
//     SetPerm, Set, SetAll;
//   - before a call that delivers to, takes from or reads it (Send, TrySend, Recv,
//     TryRecv, Peek, Op, TryOp, Get, GetAll, Waiters, LastPID) once the last
//     confirmation is more than a millisecond old: a timer marks it due, so the hot
//     paths pay one atomic load per call, and a handle busy for a second pays about
//     a thousand IPC_STATs;
//   - in Stat, on what it reads anyway.
//
// An id that names another object now fails the call with ipc.ErrRemoved before the
// call touches it, and the handle stays removed. A call already blocked in the kernel
// is tied to its object and fails with ipc.ErrRemoved when it goes. A segment needs
// none of this: its attachment pins the id (a removed segment stays in the kernel's
// table until the last detach), and it is checked once more just after shmat.
//
// What remains is the window between a confirmation and the call: about a
// microsecond for the calls that change or destroy, up to a millisecond (100 ms for a
// handle without read access; more when the machine is so loaded that the timer runs
// late) for the others. For the id to
// be recycled inside it, the counter must have come round since the object was
// created (the 4.2 million creations, at any time before) and then the object be
// removed and one more created, all within the window; only a process allowed to
// remove the object (its owner or creator, CAP_SYS_ADMIN, or systemd-logind's
// RemoveIPC) can start that. Nor can a handle tell its object from one the same user
// created under the same key (Private, typically), with the same group (and for a
// set, the same size): the kernel keeps no creation stamp an IPC_SET cannot move.
// Queues whose attributes nobody changes can be opened with Expect, which compares
// the change time (seconds) too and so tells apart such a queue created in another
// second.
//
// # Blocking
//
// msgsnd, msgrcv and semop have no descriptor, so their blocking calls wait in the
// kernel: under a context that can end, each call is first tried with IPC_NOWAIT, and
// only if it would block does it occupy an OS thread (one thread per blocked call).
// Close and ctx interrupt such a call through internal/wait, with wait.Signal aimed
// only at the threads blocked on this handle's object; EINTR never surfaces. Every
// error is an *ipc.OpError. A context's deadline returns an error matching
// context.DeadlineExceeded, as in every ipclab package (System V handles have no
// deadline of their own, so none returns os.ErrDeadlineExceeded); cancellation,
// context.Canceled; removal of the object while blocked (IPC_RMID), ipc.ErrRemoved
// (which also matches unix.EIDRM and os.ErrClosed; a call on the id after removal
// matches it and unix.EINVAL); Close of the handle while blocked, os.ErrClosed. Every
// call that can wait has a Try form (TrySend, TryRecv, TryOp) that returns an error
// matching ipc.ErrWouldBlock at once instead (for an empty queue also unix.ENOMSG).
// Opening a removed object, by key or by id, fails with an error matching
// fs.ErrNotExist.
//
// # Persistence
//
// System V objects outlive their processes until removed (Remove) or reboot. For shared
// memory, the attach-then-remove idiom (Remove once every party has attached) leaves
// nothing behind after a crash. Note that systemd-logind's RemoveIPC= deletes the
// objects of non-system users at logout, even while in use.
//
// Limits (msgmax, SEMMSL, shmmax...) are read from /proc/sys/kernel at run time; see
// ReadLimits.
package sysv
