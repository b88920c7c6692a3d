// Package inspect reads the IPC state of a Linux machine: every live IPC object
// (pipes, FIFOs, Unix and loopback inet sockets, System V queues, segments and
// semaphore sets, POSIX queues, ipclab doors and mailbox entries), how full each is
// and which processes hold it; every thread blocked in an IPC system call and the
// object it waits on; and, from those, the wait-for graph and its deadlocks.
//
// It only reads: /proc, /proc/sysvipc, the mqueue file system, the kernel's
// sock_diag netlink interface, and (for a pipe's fill level) a duplicate of the
// holder's descriptor taken with pidfd_getfd(2), which changes nothing the
// holder can see. Unprivileged, it sees what the user may see and lists the rest
// in Snapshot.Unreadable.
package inspect
