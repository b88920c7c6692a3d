// Package ebpf measures, in the kernel, where the time of IPC system calls goes: for
// each primitive and operation, log2 histograms (in nanoseconds) of the time in the
// call, its on-CPU part (copying, locks, waking the peer), and its off-CPU part split
// into waiting for the peer and waiting for a CPU; bytes per call; errors and EAGAIN
// returns; and, for poller-driven descriptors, the readiness wait between an EAGAIN and
// the next successful call.
//
// The probes use only tracepoints (raw_syscalls sys_enter/sys_exit, sched_switch,
// sched_waking, sched_process_fork and sched_process_exit): Load tries BTF-typed raw
// tracepoints (tp_btf) first, then raw tracepoints, then classic tracepoints, and keeps
// the first set that attaches. Kprobes and fentry are not used.
//
// # Attribution
//
// A system call is attributed to a primitive in the kernel, at sys_enter:
//
//   - exactly, by the descriptors and System V ids registered with Probes.RegisterFD
//     and Probes.RegisterSysV (the label given there names the primitive);
//   - otherwise (unless Options.OnlyRegistered) by classifying the descriptor from its
//     file: an anonymous pipe (S_IFIFO on pipefs), a FIFO (S_IFIFO elsewhere), a Unix
//     stream/datagram/seqpacket socket, a TCP, UDP or other inet socket (S_IFSOCK and
//     the socket's family and type), a POSIX message queue (the mqueue file system);
//     and msgsnd/msgrcv as "sysv-msg", semop/semtimedop as "sysv-sem".
//
// Descriptors of other kinds (regular files, terminals, eventfds) are not traced.
//
// # Poller-mode I/O
//
// Go's runtime makes descriptor I/O non-blocking: a read that would block returns
// EAGAIN at once and the goroutine waits in epoll_wait, usually on another thread.
// The kernel then sees no blocking inside the read at all. The probes account for it
// honestly, without guessing: EAGAIN returns are counted per primitive and operation,
// the readiness wait from an EAGAIN on (process, fd, operation) to the next successful
// call on it is the "ready_wait" histogram, and epoll_wait calls are reported as
// primitive "epoll", operation "epoll_wait", attributed to the traced process but not
// to any descriptor (the runtime's epoll events carry its own pointers, not fds). Use
// ipc.WaitKernel to make the blocking happen inside the read, where the off-CPU split
// shows it.
//
// # Signals
//
// A call interrupted by a signal and restarted (by the kernel after an SA_RESTART
// handler, or by the caller's EINTR loop on the same descriptor or id) counts as one
// call whose time includes the handler. An interrupted call followed by a different
// traced call counts as one failed with EINTR.
//
// # Cost
//
// Every traced system call and every context switch on the machine runs a probe
// (a hash lookup for tasks that are not traced). Figures taken with probes attached are
// not the primitive's latency: measure the overhead A/B and report both.
//
// # Sampling
//
// Options.SampleEvery = N > 1 traces 1 call in N: at sys_enter, as soon as the system
// call table says the call is one the probes trace, the probe draws a random number
// and an unsampled call returns there, before the pid filter, the classification and
// any state; its exit and the context switches while it runs find no open call and do
// nothing. The draw is random rather than every N-th call so that a strictly
// alternating workload (write, read, write, ...) is not aliased onto one operation.
// Counts and histograms are then of the sampled calls and are not scaled
// (Report.SampleEvery, "sample_every" in JSON, a line in the text output say so):
// multiply counts by N to estimate all calls.
//
// The error is binomial. Of C calls, the sampled count k has mean C/N and standard
// deviation sqrt(C·(1/N)·(1-1/N)), so N·k estimates C with a relative standard error
// of about sqrt((N-1)/C) ≈ 1/sqrt(k) (k = 1 000 sampled calls: ±3 %). A bucket holding
// a fraction f of the calls holds f·k ± sqrt(k·f·(1-f)) of the sample. A quantile q is
// off by at most a bucket when the sampled rank q·k is further than a few
// sqrt(k·q·(1-q)) from the bucket's edges: the p50 of 1 000 sampled calls is the rank
// 500 ± 16, the p99 the rank 990 ± 3 (about ten values, so p99 of small samples is
// coarse); shares and means (on-CPU vs blocked) are unbiased. The readiness wait is
// not recorded with sampling: its EAGAIN and the success that ends it are sampled
// apart, and a pair would span several waits. A call interrupted by a signal whose
// restart is not sampled is still closed when the restart returns.
//
// # Privileges
//
// Loading needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN, as root has). Without them
// Load returns a *PermissionError naming the missing capabilities, which matches
// os.ErrPermission with errors.Is.
package ebpf
