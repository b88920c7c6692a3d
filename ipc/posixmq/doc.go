// Package posixmq wraps Linux POSIX message queues (mq_overview(7)) with raw system
// calls: no cgo, no C library, and no dependence on /dev/mqueue being mounted.
//
// On Linux a queue descriptor (mqd_t) is a file descriptor that poll and epoll can
// watch: readable while the queue holds a message, writable while it has room. The
// package builds on that, through ipclab's descriptor engine (internal/fdio), which
// gives a queue the wait modes, Close and contexts that pipes and sockets have:
//
//   - ipc.WaitAuto (default): the descriptor is blocking. A Send or Recv whose context
//     cannot end sleeps inside mq_timedsend/mq_timedreceive, as in C, while few such
//     calls sleep in the process; one that stays blocked for a few milliseconds is
//     interrupted and moved to the engine's hub (one epoll instance per process, in
//     the Go runtime poller), so idle queues hold no thread.
//     A call with a context that can end tries once without waiting (an absolute
//     timeout already past, which the kernel answers with ETIMEDOUT at once) and then
//     waits in the poller.
//   - ipc.WaitPoller: the descriptor is non-blocking and registered with the Go
//     runtime poller. Send and Recv try mq_timedsend/mq_timedreceive once and, if the
//     queue is full or empty, park the goroutine in the poller. A waiting call holds
//     no OS thread.
//   - ipc.WaitKernel: the calling thread sleeps inside mq_timedsend/mq_timedreceive
//     (what eBPF probes see), one OS thread per blocked call; cancellation and a
//     context's deadline interrupt the thread with a signal (internal/wait). A call
//     whose context cannot end costs nothing beyond the system call: Close finds the
//     threads blocked on the queue through /proc/self/task and interrupts them with
//     the same signal.
//
// In every mode contexts (cancellation and deadlines) work, and Close unblocks every
// call with an error matching os.ErrClosed. A queue has no deadline of its own:
// contexts carry them (see the Deadlines section of package ipc).
//
// Notifications need neither signals nor a thread:
//
//   - Queue.Notify and Queue.NotifyFunc: each Notifier is one goroutine parked in the
//     poller on a second descriptor of the queue, woken by the kernel when a message
//     arrives. Any number of them, in any processes; they do not use mq_notify(2), so
//     they never take the queue's single registration slot from another process.
//   - Queue.NotifyKernel: the kernel's own mq_notify(2), with its exact semantics (one
//     registered process per queue, fires once, a blocked receiver takes precedence),
//     delivered through the SIGEV_THREAD netlink cookie that glibc's helper thread
//     reads, here read by the poller instead.
//
// # Semantics worth knowing
//
//   - Names are "/name": a leading slash, 1 to 255 further bytes, no other slash. Bad
//     names fail before any system call (ipc.ErrInvalid, unix.ENAMETOOLONG).
//   - Create uses O_CREAT|O_EXCL and mode 0600 by default; every descriptor is
//     O_CLOEXEC. A queue is persistent: Close drops a handle, and the queue lives until
//     Remove (Queue.Remove, or the package function Remove by name: mq_unlink), and
//     after Remove until the last descriptor (in any process) is closed, working
//     normally meanwhile.
//   - Messages come out highest priority first, FIFO within a priority. Recv needs a
//     buffer of at least Attr.MsgSize bytes (else unix.EMSGSIZE and the message stays).
//   - Only O_NONBLOCK can change after creation (SetAttr); capacity is fixed.
//   - As with mq_timedsend(3), a call that can complete at once succeeds even if its
//     context has already ended; the context matters only when the call would wait.
//   - Unprivileged creators are limited by /proc/sys/fs/mqueue (msg_max, msgsize_max,
//     queues_max) and RLIMIT_MSGQUEUE.
//   - The kernel removes a process's mq_notify registration when the process closes any
//     descriptor of the queue. The package's own descriptors never do that while a
//     NotifyKernel registration is live (they are closed once it ends), and File
//     refuses meanwhile (ErrRegistered); the caller's own closes still do.
package posixmq
