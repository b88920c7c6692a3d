//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0)
//
// ipcprobe: where the time of IPC system calls goes, measured at tracepoints.
//
// For every traced system call that moves data through an IPC primitive, the probe
// records per (primitive, operation), in per-CPU maps:
//   - the time in the call (sys_enter -> sys_exit),
//   - its on-CPU part (copying, locks, waking the peer),
//   - its off-CPU part, split at sched_waking into waiting for the peer (switched out
//     while blocked, until someone wakes the thread) and waiting for a CPU (from the
//     wake-up, or from a preemption, to sched_switch back in),
//   - bytes moved, errors, EAGAIN (would-block) returns,
//   - for descriptor I/O, the readiness wait of a poller: the time from an EAGAIN on
//     (process, fd, op) to the next call on it that succeeds.
// All durations are nanoseconds, histograms are log2: bucket 0 holds 0 and 1, bucket
// k >= 1 holds [2^k, 2^(k+1)).
//
// The same handlers are compiled three times: as tp_btf programs (BTF-typed arguments),
// as raw tracepoints, and as classic tracepoints; the loader uses the first set that
// attaches. Only tracepoints are used: kprobes and fentry are not available everywhere.

#include "ipcprobe.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char __license[] SEC("license") = "Dual MIT/GPL";

#define NBUCKETS 40
#define MAX_PRIMS 32
#define MAX_OPS 16
#define MAX_SYSCALLS 512

#define EINTR 4
#define EAGAIN 11
#define ENOMSG 42
#define MAX_ERRNO 4095
// Kernel-internal codes of a call interrupted by a signal (ERESTARTSYS,
// ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK): user space never sees them;
// the call is restarted after the handler, or returns EINTR.
#define IS_RESTART(ret) ((ret) <= -512 && (ret) >= -516)

#define S_IFMT 0170000
#define S_IFSOCK 0140000
#define S_IFIFO 0010000
#define PIPEFS_MAGIC 0x50495045
#define MQUEUE_MAGIC 0x19800202

#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define SOCK_SEQPACKET 5

// Primitives the kernel side can tell apart. Values from PRIM_FIRST_LABEL up are
// names that user space registered for its own descriptors and ids.
enum ipc_prim {
	PRIM_NONE = 0,
	PRIM_PIPE = 1,
	PRIM_FIFO = 2,
	PRIM_UNIX_STREAM = 3,
	PRIM_UNIX_DGRAM = 4,
	PRIM_UNIX_SEQPACKET = 5,
	PRIM_TCP = 6,
	PRIM_UDP = 7,
	PRIM_INET_OTHER = 8,
	PRIM_POSIXMQ = 9,
	PRIM_SYSV_MSG = 10,
	PRIM_SYSV_SEM = 11,
	PRIM_EPOLL = 12,
	PRIM_FIRST_LABEL = 16,
	PRIM_MAX = MAX_PRIMS,
};

enum ipc_op {
	OP_NONE = 0,
	OP_READ = 1,
	OP_WRITE = 2,
	OP_SEND = 3,
	OP_RECV = 4,
	OP_MSGSND = 5,
	OP_MSGRCV = 6,
	OP_SEMOP = 7,
	OP_MQ_SEND = 8,
	OP_MQ_RECV = 9,
	OP_EPOLL_WAIT = 10,
	OP_SPLICE = 11,
	OP_VMSPLICE = 12,
	OP_MAX = MAX_OPS,
};

enum ipc_metric {
	METRIC_CALL = 0,     // time in the system call, ns
	METRIC_ONCPU = 1,    // on-CPU part of it, ns
	METRIC_OFF_PEER = 2, // off-CPU waiting for the peer, ns (calls that blocked)
	METRIC_OFF_CPU = 3,  // off-CPU waiting for a CPU, ns (calls that were switched out)
	METRIC_BYTES = 4,    // bytes per successful call
	METRIC_READY = 5,    // EAGAIN -> next success on the same (process, fd, op), ns
	METRIC_MAX = 6,
};

// How to find the object a system call works on.
enum ipc_arg {
	ARG_NONE = 0,
	ARG_FD = 1,     // a descriptor in argument 0
	ARG_MSQ = 2,    // a System V message queue id in argument 0
	ARG_SEM = 3,    // a System V semaphore set id in argument 0
	ARG_EPOLL = 4,  // an epoll wait: attributed to the process, not to a descriptor
	ARG_SPLICE = 5, // descriptors in arguments 0 and 2
};

// Where the byte count of a successful call comes from.
enum ipc_bytes {
	BYTES_NONE = 0,
	BYTES_RET = 1,  // the return value
	BYTES_ARG2 = 2, // argument 2 (msgsnd's msgsz, mq_timedsend's msg_len)
};

// One entry per system call number, filled by user space for its architecture.
struct sc_info {
	u8 op;
	u8 arg;
	u8 bytes;
	u8 pad;
};

struct ipc_stats {
	u64 calls;
	u64 errors;
	u64 eagain;
	u64 bytes;
	u64 sum[METRIC_MAX];
	u64 hist[METRIC_MAX][NBUCKETS];
};

struct fd_key {
	u32 tgid;
	u32 fd;
};

struct ipc_key {
	u32 kind; // ARG_MSQ or ARG_SEM
	u32 id;
};

struct ready_key {
	u32 tgid;
	u32 fd;
	u32 op;
	u32 pad;
};

enum {
	RUNNING = 0,
	BLOCKED = 1,   // switched out asleep: waiting for the peer until woken
	PREEMPTED = 2, // switched out runnable: waiting for a CPU
};

struct tstate {
	u64 enter;   // sys_enter time, 0 when not in a traced call
	u64 last_in; // when the thread last started running in this call
	u64 out;     // when it was switched out
	u64 wake;    // when it was woken (BLOCKED only; 0 until then)
	u64 oncpu;
	u64 peer;
	u64 runq;
	u64 arg2;
	u32 fd;
	u8 prim;
	u8 op;
	u8 bytes;
	u8 state;
	u8 has_fd;
	u8 restart; // left by a signal; restarted or EINTR next
	u8 pad[2];
	u32 traced_gen; // pids_gen + 1 when this thread's process was found in pids
	u32 nr;         // the system call's number
	u32 pad2;
};

// Set by the loader before the programs are loaded.
volatile const u8 filter_pids = 0;  // trace only the processes in pids
volatile const u8 follow_forks = 0; // add the children of traced processes to pids
volatile const u8 classify = 1;     // classify unregistered descriptors and ids
// Trace 1 call in sample_every (0 or 1: every call), chosen at random at sys_enter
// right after the system call table says the call is one the probes trace: an
// unsampled call does no other work and leaves no state, so its exit, and the
// scheduler events while it runs, find nothing to do. Random, not every N-th, so that
// a strictly alternating workload (write, read, write, ...) is not aliased onto one
// operation.
volatile const u32 sample_every = 0;

// Set by user space while the probes run: how many descriptors have labels and how
// many EAGAIN entries may be pending in ready. Zero lets the probes skip a lookup.
volatile u32 fd_labels_used = 0;
volatile u32 ready_used = 0;
// Bumped by user space whenever it adds to pids: a thread caches "traced" in its state
// together with the generation it checked, and looks pids up again only when it moved.
volatile u32 pids_gen = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_SYSCALLS);
	__type(key, u32);
	__type(value, struct sc_info);
} syscalls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, u32);
	__type(value, u8);
} pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct fd_key);
	__type(value, u8);
} fd_labels SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct ipc_key);
	__type(value, u8);
} ipc_labels SEC(".maps");

// Per-thread state: task-local storage for tp_btf programs (fast, freed with the
// task), a hash keyed by thread id for the others.
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct tstate);
} tstore SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, u32);
	__type(value, struct tstate);
} threads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ready_key);
	__type(value, u64);
} ready SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_PRIMS * MAX_OPS);
	__type(key, u32);
	__type(value, struct ipc_stats);
} stats SEC(".maps");

// Keep the enums in the BTF so that bpf2go emits them as Go constants.
const enum ipc_prim *unused_prim __attribute__((unused));
const enum ipc_op *unused_op __attribute__((unused));
const enum ipc_metric *unused_metric __attribute__((unused));
const enum ipc_arg *unused_arg __attribute__((unused));
const enum ipc_bytes *unused_bytes __attribute__((unused));

static __always_inline u32 log2l(u64 v)
{
	u32 r = 0, shift;
	if (v < 2)
		return 0;
	shift = (v > 0xFFFFFFFFULL) << 5; v >>= shift; r = shift;
	shift = (v > 0xFFFF) << 4; v >>= shift; r |= shift;
	shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
	shift = (v > 0xF) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline void hist_add(struct ipc_stats *st, u32 m, u64 v)
{
	u32 b = log2l(v);
	if (b >= NBUCKETS)
		b = NBUCKETS - 1;
	if (m >= METRIC_MAX)
		return;
	st->hist[m][b] += 1;
	st->sum[m] += v;
}

// state returns the thread's state (tid, or task for tp_btf), creating it if asked.
static __always_inline struct tstate *state(u32 tid, struct task_struct *task, bool create, const bool btf)
{
	if (btf)
		return bpf_task_storage_get(&tstore, task, 0, create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
	struct tstate *ts = bpf_map_lookup_elem(&threads, &tid);
	if (ts || !create)
		return ts;
	struct tstate zero = {};
	bpf_map_update_elem(&threads, &tid, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&threads, &tid);
}

static __always_inline struct task_struct *current_btf(const bool btf)
{
	if (btf)
		return bpf_get_current_task_btf();
	return NULL;
}

static __always_inline struct sc_info *sc_lookup(long nr)
{
	if (nr < 0 || nr >= MAX_SYSCALLS)
		return NULL;
	u32 k = nr;
	struct sc_info *sc = bpf_map_lookup_elem(&syscalls, &k);
	if (!sc || sc->op == OP_NONE)
		return NULL;
	return sc;
}

// bpf_rdonly_cast turns a kernel address into a read-only BTF pointer of the given type,
// so that tp_btf programs read through it with plain loads instead of helper calls.
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

// fd_file returns the struct file behind descriptor fd of the current task, or NULL.
// btf selects direct BTF pointer loads (tp_btf programs) over bpf_probe_read_kernel.
static __always_inline struct file *fd_file(u32 fd, const bool btf)
{
	struct file **fds;
	unsigned int max_fds;
	if (btf) {
		struct task_struct *task = bpf_get_current_task_btf();
		struct fdtable *fdt = task->files->fdt;
		if (!fdt)
			return NULL;
		max_fds = fdt->max_fds;
		fds = fdt->fd;
	} else {
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();
		struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
		if (!fdt)
			return NULL;
		max_fds = BPF_CORE_READ(fdt, max_fds);
		fds = BPF_CORE_READ(fdt, fd);
	}
	if (fd >= max_fds)
		return NULL;
	struct file *f = NULL;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]))
		return NULL;
	return f;
}

static __always_inline u8 classify_socket(short type, unsigned short family)
{
	if (family == AF_UNIX) {
		if (type == SOCK_STREAM)
			return PRIM_UNIX_STREAM;
		if (type == SOCK_DGRAM)
			return PRIM_UNIX_DGRAM;
		if (type == SOCK_SEQPACKET)
			return PRIM_UNIX_SEQPACKET;
		return PRIM_NONE;
	}
	if (family == AF_INET || family == AF_INET6) {
		if (type == SOCK_STREAM)
			return PRIM_TCP;
		if (type == SOCK_DGRAM)
			return PRIM_UDP;
		return PRIM_INET_OTHER;
	}
	return PRIM_NONE;
}

// classify_fd names the primitive behind descriptor fd of the current process: a label
// user space registered for it, or what the file's inode says.
static __always_inline u8 classify_fd(u32 tgid, u32 fd, const bool btf)
{
	if (fd_labels_used) {
		struct fd_key k = {.tgid = tgid, .fd = fd};
		u8 *label = bpf_map_lookup_elem(&fd_labels, &k);
		if (label)
			return *label;
	}
	if (!classify)
		return PRIM_NONE;

	struct file *f = fd_file(fd, btf);
	if (!f)
		return PRIM_NONE;
	umode_t mode;
	unsigned long magic;
	if (btf) {
		struct file *bf = bpf_rdonly_cast(f, bpf_core_type_id_kernel(struct file));
		struct inode *ino = bf->f_inode;
		mode = ino->i_mode;
		magic = ino->i_sb->s_magic;
		if ((mode & S_IFMT) == S_IFSOCK) {
			struct socket *sock = bpf_rdonly_cast(bf->private_data, bpf_core_type_id_kernel(struct socket));
			return classify_socket(sock->type, sock->sk->__sk_common.skc_family);
		}
	} else {
		struct inode *ino = BPF_CORE_READ(f, f_inode);
		mode = BPF_CORE_READ(ino, i_mode);
		magic = BPF_CORE_READ(ino, i_sb, s_magic);
		if ((mode & S_IFMT) == S_IFSOCK) {
			struct socket *sock = BPF_CORE_READ(f, private_data);
			return classify_socket(BPF_CORE_READ(sock, type), BPF_CORE_READ(sock, sk, __sk_common.skc_family));
		}
	}
	if ((mode & S_IFMT) == S_IFIFO)
		return magic == PIPEFS_MAGIC ? PRIM_PIPE : PRIM_FIFO;
	if (magic == MQUEUE_MAGIC)
		return PRIM_POSIXMQ;
	return PRIM_NONE;
}

static __always_inline u8 classify_ipc(u32 kind, u32 id, u8 prim)
{
	struct ipc_key k = {.kind = kind, .id = id};
	u8 *label = bpf_map_lookup_elem(&ipc_labels, &k);
	if (label)
		return *label;
	return classify ? prim : PRIM_NONE;
}

// finish closes the call in ts with result ret and records it.
static __always_inline void finish(struct tstate *ts, long ret)
{
	// The thread can be preempted while this program runs (it runs with migration,
	// not preemption, disabled). Close the call first, so that sched_switch stops
	// accounting it, and only then read the clock and the accumulators: a preemption
	// before the close is in them and before now; one after it is in now - last_in.
	u64 enter = ts->enter;
	ts->enter = 0;
	ts->restart = 0;
	asm volatile("" ::: "memory");
	u64 now = bpf_ktime_get_ns();
	asm volatile("" ::: "memory");
	u64 since = ts->state == RUNNING ? ts->last_in : ts->out;
	u64 call = now > enter ? now - enter : 0; // (clocks of different CPUs)
	u64 oncpu = ts->oncpu + (now > since ? now - since : 0);
	u64 peer = ts->peer, runq = ts->runq;
	u32 slot = (u32)ts->prim * MAX_OPS + ts->op;

	struct ipc_stats *st = bpf_map_lookup_elem(&stats, &slot);
	if (!st)
		return;
	st->calls += 1;
	hist_add(st, METRIC_CALL, call);
	hist_add(st, METRIC_ONCPU, oncpu);
	if (peer)
		hist_add(st, METRIC_OFF_PEER, peer);
	if (runq)
		hist_add(st, METRIC_OFF_CPU, runq);

	bool would_block = ret == -EAGAIN || (ret == -ENOMSG && ts->op == OP_MSGRCV);
	if (ret < 0 && ret >= -MAX_ERRNO) {
		st->errors += 1;
		if (would_block)
			st->eagain += 1;
	} else {
		u64 n = 0;
		if (ts->bytes == BYTES_RET)
			n = ret;
		else if (ts->bytes == BYTES_ARG2)
			n = ts->arg2;
		if (ts->bytes != BYTES_NONE) {
			st->bytes += n;
			hist_add(st, METRIC_BYTES, n);
		}
	}

	// With sampling the EAGAIN and the success that ends its wait are sampled apart:
	// a pair would span several waits. The readiness wait is not recorded then.
	if (!ts->has_fd || sample_every > 1)
		return;
	if (!would_block && !ready_used)
		return;
	struct ready_key rk = {.tgid = bpf_get_current_pid_tgid() >> 32, .fd = ts->fd, .op = ts->op};
	if (would_block) {
		if (bpf_map_update_elem(&ready, &rk, &now, BPF_NOEXIST) == 0)
			__sync_fetch_and_add(&ready_used, 1);
	} else if (ret >= 0) {
		u64 *since = bpf_map_lookup_elem(&ready, &rk);
		if (since) {
			if (now > *since)
				hist_add(st, METRIC_READY, now - *since);
			if (bpf_map_delete_elem(&ready, &rk) == 0)
				__sync_fetch_and_add(&ready_used, -1);
		}
	}
}

// gate returns whether the current thread is traced; *tsp is its state if it has one.
static __always_inline bool gate(u32 tgid, u32 tid, struct tstate **tsp, const bool btf)
{
	struct tstate *ts = state(tid, current_btf(btf), false, btf);
	*tsp = ts;
	if (!filter_pids)
		return true;
	if (ts && ts->traced_gen == pids_gen + 1)
		return true;
	return bpf_map_lookup_elem(&pids, &tgid) != NULL;
}

static __always_inline void on_enter(struct sc_info *sc, long nr, u64 a0, u64 a2, u32 tgid, u32 tid,
				     struct tstate *ts, const bool btf)
{
	u8 prim = PRIM_NONE;
	u32 fd = 0;
	u8 has_fd = 0;

	switch (sc->arg) {
	case ARG_FD:
		fd = a0;
		prim = classify_fd(tgid, fd, btf);
		has_fd = 1;
		break;
	case ARG_SPLICE:
		fd = a0;
		prim = classify_fd(tgid, fd, btf);
		if (prim == PRIM_NONE) {
			fd = a2;
			prim = classify_fd(tgid, fd, btf);
		}
		has_fd = 1;
		break;
	case ARG_MSQ:
		prim = classify_ipc(ARG_MSQ, (u32)a0, PRIM_SYSV_MSG);
		break;
	case ARG_SEM:
		prim = classify_ipc(ARG_SEM, (u32)a0, PRIM_SYSV_SEM);
		break;
	case ARG_EPOLL:
		prim = PRIM_EPOLL;
		break;
	}
	if (prim == PRIM_NONE || prim >= PRIM_MAX)
		return;

	if (ts && ts->enter && ts->restart) {
		if (ts->nr == (u32)nr && ts->fd == fd && ts->prim == prim) {
			ts->restart = 0; // the interrupted call, restarted: one call
			return;
		}
		finish(ts, -EINTR);
	}
	// Update the thread's entry in place: cheaper than replacing it.
	if (!ts) {
		ts = state(tid, current_btf(btf), true, btf);
		if (!ts)
			return;
	}
	ts->traced_gen = pids_gen + 1;
	u64 now = bpf_ktime_get_ns();
	ts->last_in = now;
	ts->out = 0;
	ts->wake = 0;
	ts->oncpu = 0;
	ts->peer = 0;
	ts->runq = 0;
	ts->arg2 = a2;
	ts->fd = fd;
	ts->prim = prim;
	ts->op = sc->op;
	ts->bytes = sc->bytes;
	ts->state = RUNNING;
	ts->has_fd = has_fd;
	ts->nr = nr;
	// Open the call last: sched_switch must not see it half initialised.
	asm volatile("" ::: "memory");
	ts->enter = now;
}

// on_exit runs at every system call's exit: nr tells whether it is the traced one (a
// signal handler's rt_sigreturn, for one, exits while an interrupted call is open).
static __always_inline void on_exit(long nr, long ret, const bool btf)
{
	u32 tid = btf ? 0 : (u32)bpf_get_current_pid_tgid();
	struct tstate *ts = state(tid, current_btf(btf), false, btf);
	if (!ts || !ts->enter || ts->nr != (u32)nr)
		return;
	if (IS_RESTART(ret)) {
		// Keep the call open: if the same call comes back (the restart), it goes
		// on; anything else first closes it as EINTR.
		ts->restart = 1;
		return;
	}
	finish(ts, ret);
}

static __always_inline void on_switch(u32 prev, struct task_struct *prev_task, bool prev_blocked,
				     u32 next, struct task_struct *next_task, const bool btf)
{
	u64 now = 0;
	struct tstate *ts = state(prev, prev_task, false, btf);
	if (ts && ts->enter) {
		now = bpf_ktime_get_ns();
		// If the switch in was missed (a probe does not run while another one is
		// running on the CPU), the time since the switch out counts as on-CPU.
		u64 since = ts->state == RUNNING ? ts->last_in : ts->out;
		if (now > since)
			ts->oncpu += now - since;
		ts->out = now;
		ts->wake = 0;
		ts->state = prev_blocked ? BLOCKED : PREEMPTED;
	}
	ts = state(next, next_task, false, btf);
	if (ts && ts->enter && ts->state != RUNNING) {
		if (!now)
			now = bpf_ktime_get_ns();
		// Clocks of different CPUs may disagree by a little: keep the switch out
		// and the wake-up between themselves and now.
		u64 out = ts->out < now ? ts->out : now;
		if (ts->state == BLOCKED) {
			u64 woke = ts->wake ? ts->wake : now;
			if (woke < out)
				woke = out;
			if (woke > now)
				woke = now;
			ts->peer += woke - out;
			ts->runq += now - woke;
		} else {
			ts->runq += now - out;
		}
		ts->state = RUNNING;
		ts->last_in = now;
	}
}

static __always_inline void on_waking(u32 tid, struct task_struct *task, const bool btf)
{
	struct tstate *ts = state(tid, task, false, btf);
	if (ts && ts->enter && ts->state == BLOCKED && !ts->wake)
		ts->wake = bpf_ktime_get_ns();
}

static __always_inline void on_fork(u32 parent_tgid, u32 child_tgid)
{
	if (!filter_pids || !follow_forks)
		return;
	if (!bpf_map_lookup_elem(&pids, &parent_tgid))
		return;
	u8 one = 1;
	bpf_map_update_elem(&pids, &child_tgid, &one, BPF_ANY);
}

static __always_inline void on_task_exit(const bool btf)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	if (!btf) // task storage goes with the task
		bpf_map_delete_elem(&threads, &tid);
	// A followed process leaves the set when its leader exits; a thread's id that the
	// classic fork tracepoint added leaves with the thread.
	if (follow_forks)
		bpf_map_delete_elem(&pids, &tid);
}

// sampled decides whether this call is traced: always without sampling, else with
// probability 1/sample_every.
static __always_inline bool sampled(void)
{
	u32 n = sample_every;
	if (n <= 1)
		return true;
	return bpf_get_prandom_u32() % n == 0;
}

// x86-64 system call arguments are in di, si, dx, r10, r8, r9.
static __always_inline void enter_regs(struct pt_regs *regs, long nr, const bool btf)
{
	struct sc_info *sc = sc_lookup(nr);
	if (!sc || !sampled())
		return;
	u64 id = bpf_get_current_pid_tgid();
	u32 tgid = id >> 32, tid = (u32)id;
	struct tstate *ts;
	if (!gate(tgid, tid, &ts, btf))
		return;
	if (btf)
		on_enter(sc, nr, regs->di, regs->dx, tgid, tid, ts, true);
	else
		on_enter(sc, nr, BPF_CORE_READ(regs, di), BPF_CORE_READ(regs, dx), tgid, tid, ts, false);
}

// A switched-out task is asleep unless it was preempted or is still TASK_RUNNING.
#define SLEEPING(preempt, state) (!(preempt) && (state) != 0)

/* tp_btf: BTF-typed raw tracepoints. */

SEC("tp_btf/sys_enter")
int BPF_PROG(btf_sys_enter, struct pt_regs *regs, long nr)
{
	enter_regs(regs, nr, true);
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(btf_sys_exit, struct pt_regs *regs, long ret)
{
	on_exit(regs->orig_ax, ret, true);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(btf_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	on_switch(prev->pid, prev, SLEEPING(preempt, prev_state), next->pid, next, true);
	return 0;
}

SEC("tp_btf/sched_waking")
int BPF_PROG(btf_sched_waking, struct task_struct *p)
{
	on_waking(p->pid, p, true);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(btf_sched_fork, struct task_struct *parent, struct task_struct *child)
{
	on_fork(parent->tgid, child->tgid);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(btf_sched_exit, struct task_struct *p)
{
	on_task_exit(true);
	return 0;
}

/* raw_tp: the same, with untyped arguments. */

SEC("raw_tp/sys_enter")
int BPF_PROG(raw_sys_enter, struct pt_regs *regs, long nr)
{
	enter_regs(regs, nr, false);
	return 0;
}

SEC("raw_tp/sys_exit")
int BPF_PROG(raw_sys_exit, struct pt_regs *regs, long ret)
{
	on_exit(BPF_CORE_READ(regs, orig_ax), ret, false);
	return 0;
}

SEC("raw_tp/sched_switch")
int BPF_PROG(raw_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	on_switch(BPF_CORE_READ(prev, pid), NULL, SLEEPING(preempt, prev_state), BPF_CORE_READ(next, pid), NULL, false);
	return 0;
}

SEC("raw_tp/sched_waking")
int BPF_PROG(raw_sched_waking, struct task_struct *p)
{
	on_waking(BPF_CORE_READ(p, pid), NULL, false);
	return 0;
}

SEC("raw_tp/sched_process_fork")
int BPF_PROG(raw_sched_fork, struct task_struct *parent, struct task_struct *child)
{
	on_fork(BPF_CORE_READ(parent, tgid), BPF_CORE_READ(child, tgid));
	return 0;
}

SEC("raw_tp/sched_process_exit")
int BPF_PROG(raw_sched_exit, struct task_struct *p)
{
	on_task_exit(false);
	return 0;
}

/* Classic tracepoints (need tracefs for their ids). */

SEC("tracepoint/raw_syscalls/sys_enter")
int tp_sys_enter(struct trace_event_raw_sys_enter *ctx)
{
	struct sc_info *sc = sc_lookup(ctx->id);
	if (!sc || !sampled())
		return 0;
	u64 id = bpf_get_current_pid_tgid();
	u32 tgid = id >> 32, tid = (u32)id;
	struct tstate *ts;
	if (!gate(tgid, tid, &ts, false))
		return 0;
	on_enter(sc, ctx->id, ctx->args[0], ctx->args[2], tgid, tid, ts, false);
	return 0;
}

SEC("tracepoint/raw_syscalls/sys_exit")
int tp_sys_exit(struct trace_event_raw_sys_exit *ctx)
{
	on_exit(ctx->id, ctx->ret, false);
	return 0;
}

// The classic sched_switch reports prev_state as a TASK_REPORT bit, or
// TASK_REPORT_MAX (0x100) for a preemption.
SEC("tracepoint/sched/sched_switch")
int tp_sched_switch(struct trace_event_raw_sched_switch *ctx)
{
	long state = ctx->prev_state;
	on_switch(ctx->prev_pid, NULL, state != 0 && !(state & 0x100), ctx->next_pid, NULL, false);
	return 0;
}

SEC("tracepoint/sched/sched_waking")
int tp_sched_waking(struct trace_event_raw_sched_wakeup_template *ctx)
{
	on_waking(ctx->pid, NULL, false);
	return 0;
}

// The classic fork record has only task ids: the child's id is its process id for a
// new process, and an extra id in the parent's set for a new thread, which is harmless
// (it is removed when the thread exits).
SEC("tracepoint/sched/sched_process_fork")
int tp_sched_fork(struct trace_event_raw_sched_process_fork *ctx)
{
	on_fork(bpf_get_current_pid_tgid() >> 32, ctx->child_pid);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int tp_sched_exit(void *ctx)
{
	on_task_exit(false);
	return 0;
}
