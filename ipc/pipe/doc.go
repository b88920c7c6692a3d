// Package pipe wraps Linux anonymous pipes: pipe2(2) with O_CLOEXEC always, packet mode
// (O_DIRECT), capacity (F_SETPIPE_SZ), and the zero-copy calls splice, tee and vmsplice.
//
// A pipe has a read end (*Reader) and a write end (*Writer). Both are safe for
// concurrent use. Blocking calls take a context or honour deadlines, and wait according
// to the end's ipc.WaitStrategy:
//
//   - ipc.WaitAuto (default): the descriptor is blocking; a read or write with nothing
//     but Close to honour sleeps in the kernel, as with ipc.WaitKernel, while at most
//     32 calls of the process do, and moves to the runtime poller if it sleeps past a
//     few milliseconds; calls with a context that can end or a deadline wait in the
//     poller from the start (see internal/fdio). A round trip costs what WaitKernel's
//     does, and idle ends hold no thread.
//   - ipc.WaitPoller: the descriptor is non-blocking and registered with the
//     Go runtime poller; a waiting goroutine holds no thread.
//   - ipc.WaitKernel: the descriptor is blocking and the calling thread sleeps inside
//     read(2) or write(2), where the kernel and eBPF probes see it; cancellation and
//     Close interrupt it with a signal (see internal/wait).
//
// TryRead and TryWrite never wait and return ipc.ErrWouldBlock (which matches
// unix.EAGAIN) instead.
//
// # Semantics worth knowing
//
//   - Read returns io.EOF once every write end (in every process) is closed and the pipe
//     is drained; every blocked reader wakes.
//   - Write to a pipe whose read ends are all closed returns ipc.ErrPeerGone (EPIPE); the
//     process is not killed by SIGPIPE (Go ignores it for descriptors other than 1 and 2).
//   - A write of at most PIPE_BUF (4096) bytes is atomic: concurrent writers, even in
//     different processes, never interleave within it. Larger writes may interleave.
//   - In packet mode every write of up to a page (4096 bytes on most machines, PIPE_BUF)
//     is one packet, larger writes are split into page-sized packets, and a read returns
//     at most one packet. The kernel discards the rest of a packet read into a shorter
//     buffer and calls that a success; ipclab does not: such a read returns the first
//     len(buf) bytes and an error matching ipc.ErrTruncated. It sees the loss by reading
//     with readv(2) into the caller's buffer and a shared spill area that together hold
//     a page, so a buffer shorter than a page costs one extra iovec, and a buffer of a
//     page or more is read as in stream mode. Every writer of a packet pipe should be in
//     packet mode: stream bytes read through the spill area count as truncated too.
//   - An end's wait strategy is a property of its open file description, which every
//     process holding the same descriptor shares. File hands a child a new description
//     of its own.
package pipe

// PipeBuf is PIPE_BUF on Linux: the largest write that is atomic.
const PipeBuf = 4096
