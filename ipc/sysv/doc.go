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
// # Blocking
//
// msgsnd, msgrcv and semop have no descriptor, so their blocking calls wait in the
// kernel: each call is first tried with IPC_NOWAIT, and only if it would block does it
// occupy an OS thread, interruptible by ctx through internal/wait (one thread per
// blocked call). EINTR never surfaces. A deadline returns an error matching both
// os.ErrDeadlineExceeded and context.DeadlineExceeded; cancellation, context.Canceled;
// removal of the object while blocked (IPC_RMID), ipc.ErrRemoved (which also matches
// unix.EIDRM and os.ErrClosed); Close of the handle while blocked, os.ErrClosed.
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
