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
//     WaitStrategy: in the Go runtime poller (the default for descriptors), inside the
//     kernel on the calling thread (WaitKernel, which eBPF probes can see), or spinning
//     briefly before sleeping (WaitSpin, for shared memory).
//   - Persistence: does the object outlive its processes? Pipes, sockets and doors are
//     transient: they vanish with the last descriptor. FIFOs (as names), System V objects
//     and POSIX queues are persistent: they stay until removed.
//
// # The map
//
//	ipc/pipe      anonymous pipes: packet mode, capacity, splice/tee/vmsplice
//	ipc/fifo      named pipes: safe creation, cancellable open, EOF/ENXIO semantics
//	ipc/sysv      System V message queues, shared memory, semaphore sets
//	ipc/posixmq   POSIX message queues on the Go runtime poller
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
// errors.Is(err, ipc.ErrWouldBlock) are both true for a full non-blocking pipe.
// Cancellation wraps context.Canceled or context.DeadlineExceeded; a deadline set with
// SetDeadline wraps os.ErrDeadlineExceeded; a call on (or interrupted by) Close wraps
// os.ErrClosed. Error texts are one line: none contains a newline.
//
// # Nil handles and nil arguments
//
// A nil handle (a nil *sysv.Queue, *sockets.StreamConn, *doors.Client and so on)
// is a programming error: its methods panic, as those of most standard-library
// types do. A nil argument (a nil *os.File, connection, address or handler passed
// to a constructor or method) is bad input like any other: an *OpError matching
// ErrInvalid, returned before any system call, never a panic.
package ipc
