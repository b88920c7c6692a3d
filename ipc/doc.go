// Package ipc is the root of ipclab: the vocabulary every primitive shares and a map of
// the primitives themselves.
//
// # The taxonomy
//
// Every interprocess-communication primitive answers three questions, and ipclab makes
// the answers visible in the same way in every package:
//
//   - Naming: how does a process find the object? By inheriting a descriptor (ipc/pipe,
//     sockets.Socketpair), by a path in the file system (ipc/fifo, Unix sockets,
//     ipc/doors), by a System V key (ipc/sysv), by a POSIX name (ipc/posixmq), or by a
//     name in a registry (ipc/mailbox).
//   - Blocking: does a call wait? Recv(ctx, buf) and Send(ctx, msg) (or Read/Write on
//     byte streams) block until done, the context ends, or a deadline passes; TryRecv
//     and TrySend return ErrWouldBlock at once. How a blocking call waits is a
//     WaitStrategy: WaitAuto (the default for every descriptor: pipes, FIFOs, POSIX
//     queues, sockets, doors, mailboxes; in the kernel while the wait is short, then
//     in the Go runtime poller), in the Go runtime poller (WaitPoller), inside the
//     kernel on the calling thread (WaitKernel, which eBPF probes can see, and the
//     only way System V objects wait), or spinning briefly before sleeping (WaitSpin,
//     for shared memory). Listening sockets wait in the poller when asked for
//     WaitAuto: accept(2) has no flag that makes one call on a blocking socket
//     return at once.
//   - Persistence: does the object outlive its processes? Pipes, sockets and doors are
//     transient: they vanish with the last descriptor. FIFOs (as names), System V objects
//     and POSIX queues are persistent: they stay until removed.
//
// # The map
//
//	ipc/pipe      anonymous pipes: packet mode, capacity, splice/tee/vmsplice
//	ipc/fifo      named pipes: safe creation, cancellable open, EOF/ENXIO semantics
//	ipc/sysv      System V message queues, shared memory, semaphore sets
//	ipc/posixmq   POSIX message queues: priorities, notifications, every wait mode
//	ipc/mailbox   links, mailboxes and ports; send disciplines
//	ipc/doors     door-style same-host calls
//	sockets       Unix stream/datagram/seqpacket, descriptor and credential passing, TCP/UDP
//	ebpf          tracepoint probes: where the time goes, per primitive
//
// # Errors
//
// Every failing call returns an *OpError naming the operation and the object, wrapping
// either an errno (so errors.Is(err, unix.EBADF) works) or one of the sentinels below,
// which themselves match the errno they stand for: errors.Is(err, unix.EAGAIN) and
// errors.Is(err, ipc.ErrWouldBlock) are both true for a full non-blocking pipe. A
// package's own states are sentinels of the same kind, made with NewSentinel (doors'
// ErrRevoked matches unix.EBADF and os.ErrClosed). Where the cause needs explaining
// (bad input, mostly) the OpError wraps a one-line text that wraps the errno or
// sentinel with %w, so errors.Is sees through it. Cancellation wraps context.Canceled
// or context.DeadlineExceeded; deadlines follow the rule below; a call on (or
// interrupted by) Close wraps os.ErrClosed. Error texts are one line: none contains a
// newline.
//
// # Deadlines
//
// A call can end at two kinds of deadline, and each kind is reported one way in
// every package:
//
//   - a context's deadline (context.WithTimeout, WithDeadline) gives an error that
//     matches context.DeadlineExceeded, whether it passed while the call waited or
//     before the call began;
//   - a handle's own deadline (SetDeadline, SetReadDeadline, SetWriteDeadline, as on
//     a net.Conn) gives an error that matches os.ErrDeadlineExceeded.
//
// Either way the *OpError's Timeout method reports true, so a caller that does not
// care which kind ended the call tests that (or both errors). When both are set, the
// earlier ends the call and names the error. Handles with a deadline of their own are
// the byte-stream and packet ends of ipc/pipe and ipc/fifo and every connection of
// sockets; ipc/posixmq, ipc/sysv, ipc/doors and ipc/mailbox take deadlines from
// contexts only. One package differs: in ipc/sysv (and so a System V mailbox) the
// error of a context's deadline also matches os.ErrDeadlineExceeded. A call that can
// complete at once (a message is queued, there is room) succeeds even if its context
// has already ended; the deadline matters only when the call would wait.
//
// # Lifetime
//
// Close drops a handle; Remove destroys a persistent object. Close is idempotent, never
// deletes anything, unblocks the handle's calls in flight with os.ErrClosed, and after
// it every method of the handle (Remove included) fails with os.ErrClosed. Remove is
// how a System V object (IPC_RMID), a POSIX queue (mq_unlink: posixmq.Remove by name,
// or Queue.Remove) and a FIFO (fifo.FIFO.Remove) go; after it, opening the object by
// name fails with an error matching fs.ErrNotExist (or, for a System V id, the
// handles' calls fail with ErrRemoved). Pipes, sockets and doors are transient: they
// go with their last descriptor and have no Remove; the path by which a listening
// socket or a door is found is a name for the listener, not a persistent object, and
// goes with it (the listener's Close, Door.Detach).
//
// # Nil handles and nil arguments
//
// A nil handle (a nil *sysv.Queue, *sockets.StreamConn, *doors.Client and so on)
// is a programming error: its methods panic, as those of most standard-library
// types do. A nil argument (a nil *os.File, connection, address or handler passed
// to a constructor or method) is bad input like any other: an *OpError matching
// ErrInvalid, returned before any system call, never a panic.
package ipc
