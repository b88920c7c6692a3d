//go:build linux && amd64

package ebpf

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	cebpf "github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ebpf/bpf"
	"github.com/ipclab/ipclab/ipc"
)

// Probes are the loaded and attached programs and their maps. Its methods are safe
// for concurrent use.
type Probes struct {
	mu     sync.Mutex
	coll   *cebpf.Collection
	links  []link.Link
	attach Attach
	since  time.Time
	labels map[string]uint8 // registered primitive names -> kernel code
	fds    map[bpf.IpcprobeFdKey]bool
	// pidsGen mirrors the probes' pids_gen.
	pidsGen uint32
	closed  bool
	ncpu    int
	sample  int // Options.SampleEvery, at least 1
}

// Load loads the probes and attaches them, trying AttachTPBTF, then AttachRawTP,
// then AttachTracepoint unless o.Attach names one. Without the privileges it returns a
// *PermissionError; when nothing attaches, an error that lists why each way failed
// (a verifier rejection includes the verifier's log).
func Load(o Options) (*Probes, error) {
	for _, pid := range o.PIDs {
		if pid <= 0 {
			return nil, fmt.Errorf("ebpf: load: invalid pid %d", pid)
		}
	}
	if err := checkCaps(); err != nil {
		return nil, err
	}
	spec, err := bpf.LoadIpcprobe()
	if err != nil {
		return nil, fmt.Errorf("ebpf: load: %w", err)
	}
	set := func(name string, v bool) error {
		var b uint8
		if v {
			b = 1
		}
		vs, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("ebpf: load: no variable %s in the object", name)
		}
		return vs.Set(b)
	}
	if o.SampleEvery < 0 {
		return nil, fmt.Errorf("ebpf: load: invalid SampleEvery %d", o.SampleEvery)
	}
	sample := uint32(max(o.SampleEvery, 1))
	if err := ipc.Join(
		spec.Variables[bpf.IpcprobeVarSampleEvery].Set(sample),
		set(bpf.IpcprobeVarFilterPids, len(o.PIDs) > 0 || o.FilterPIDs),
		set(bpf.IpcprobeVarFollowForks, o.FollowForks),
		set(bpf.IpcprobeVarClassify, !o.OnlyRegistered),
	); err != nil {
		return nil, err
	}

	modes := []Attach{AttachTPBTF, AttachRawTP, AttachTracepoint}
	if o.Attach != AttachAuto {
		modes = []Attach{o.Attach}
	}
	var errs []error
	for _, mode := range modes {
		p, err := loadMode(spec, mode, o.FollowForks && (len(o.PIDs) > 0 || o.FilterPIDs))
		if err == nil {
			p.sample = int(sample)
			if err := p.init(o); err != nil {
				p.Close()
				return nil, err
			}
			return p, nil
		}
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, &PermissionError{Missing: []string{"CAP_BPF", "CAP_PERFMON"}, Err: err}
		}
		errs = append(errs, fmt.Errorf("%s: %w", mode, err))
	}
	return nil, fmt.Errorf("ebpf: load: no way to attach the probes: %w", ipc.Join(errs...))
}

type progAttach struct {
	prog         string
	group, event string
}

// programsFor lists the programs of mode that the options need: the fork tracepoint
// only to follow forks, the exit tracepoint only to drop followed processes or, without
// task storage, the exited threads' state.
func programsFor(mode Attach, follow bool) []progAttach {
	all := programsOf(mode)
	out := all[:0:0]
	for _, w := range all {
		switch {
		case w.event == "sched_process_fork" && !follow:
			continue
		case w.event == "sched_process_exit" && !follow && mode == AttachTPBTF:
			continue
		}
		out = append(out, w)
	}
	return out
}

func programsOf(mode Attach) []progAttach {
	switch mode {
	case AttachTPBTF:
		return []progAttach{
			{bpf.IpcprobeProgBtfSysEnter, "", "sys_enter"},
			{bpf.IpcprobeProgBtfSysExit, "", "sys_exit"},
			{bpf.IpcprobeProgBtfSchedSwitch, "", "sched_switch"},
			{bpf.IpcprobeProgBtfSchedWaking, "", "sched_waking"},
			{bpf.IpcprobeProgBtfSchedFork, "", "sched_process_fork"},
			{bpf.IpcprobeProgBtfSchedExit, "", "sched_process_exit"},
		}
	case AttachRawTP:
		return []progAttach{
			{bpf.IpcprobeProgRawSysEnter, "", "sys_enter"},
			{bpf.IpcprobeProgRawSysExit, "", "sys_exit"},
			{bpf.IpcprobeProgRawSchedSwitch, "", "sched_switch"},
			{bpf.IpcprobeProgRawSchedWaking, "", "sched_waking"},
			{bpf.IpcprobeProgRawSchedFork, "", "sched_process_fork"},
			{bpf.IpcprobeProgRawSchedExit, "", "sched_process_exit"},
		}
	case AttachTracepoint:
		return []progAttach{
			{bpf.IpcprobeProgTpSysEnter, "raw_syscalls", "sys_enter"},
			{bpf.IpcprobeProgTpSysExit, "raw_syscalls", "sys_exit"},
			{bpf.IpcprobeProgTpSchedSwitch, "sched", "sched_switch"},
			{bpf.IpcprobeProgTpSchedWaking, "sched", "sched_waking"},
			{bpf.IpcprobeProgTpSchedFork, "sched", "sched_process_fork"},
			{bpf.IpcprobeProgTpSchedExit, "sched", "sched_process_exit"},
		}
	}
	return nil
}

// loadMode loads the maps and the programs of one attach mode and attaches them.
func loadMode(full *cebpf.CollectionSpec, mode Attach, follow bool) (*Probes, error) {
	want := programsFor(mode, follow)
	if len(want) == 0 {
		return nil, fmt.Errorf("unknown attach mode %d", int(mode))
	}
	spec := full.Copy()
	keep := map[string]bool{}
	for _, w := range want {
		keep[w.prog] = true
	}
	for name := range spec.Programs {
		if !keep[name] {
			delete(spec.Programs, name)
		}
	}
	// Per-thread state lives in task storage for tp_btf, in a hash otherwise; do
	// not create the map this mode does not use (task storage needs Linux 5.11).
	if mode == AttachTPBTF {
		delete(spec.Maps, bpf.IpcprobeMapThreads)
	} else {
		delete(spec.Maps, bpf.IpcprobeMapTstore)
	}
	coll, err := cebpf.NewCollection(spec)
	if err != nil {
		return nil, err
	}
	p := &Probes{coll: coll, attach: mode, labels: map[string]uint8{}, fds: map[bpf.IpcprobeFdKey]bool{}}
	for _, w := range want {
		prog := coll.Programs[w.prog]
		var l link.Link
		switch mode {
		case AttachTPBTF:
			l, err = link.AttachTracing(link.TracingOptions{Program: prog})
		case AttachRawTP:
			l, err = link.AttachRawTracepoint(link.RawTracepointOptions{Name: w.event, Program: prog})
		case AttachTracepoint:
			l, err = link.Tracepoint(w.group, w.event, prog, nil)
		}
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("attach %s: %w", w.event, err)
		}
		p.links = append(p.links, l)
	}
	return p, nil
}

func (p *Probes) init(o Options) error {
	ncpu, err := cebpf.PossibleCPU()
	if err != nil {
		return fmt.Errorf("ebpf: load: %w", err)
	}
	p.ncpu = ncpu
	sc := p.coll.Maps[bpf.IpcprobeMapSyscalls]
	for nr, info := range syscallTable {
		if err := sc.Put(uint32(nr), info); err != nil {
			return fmt.Errorf("ebpf: load: fill the system call table: %w", err)
		}
	}
	for _, pid := range o.PIDs {
		if err := p.AddPID(pid); err != nil {
			return err
		}
	}
	p.since = time.Now()
	return nil
}

// Attach returns how the probes are attached.
func (p *Probes) Attach() Attach { return p.attach }

// AddPID adds a process to the set traced. It has an effect only when Load was given
// a non-empty Options.PIDs or Options.FilterPIDs (otherwise every process is traced).
func (p *Probes) AddPID(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("ebpf: add pid: invalid pid %d", pid)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("ebpf: add pid: %w", os.ErrClosed)
	}
	if err := p.coll.Maps[bpf.IpcprobeMapPids].Put(uint32(pid), uint8(1)); err != nil {
		return fmt.Errorf("ebpf: add pid %d: %w", pid, err)
	}
	// Make threads that cached "not traced" look again. (They cache only "traced".)
	p.pidsGen++
	if err := p.coll.Variables[bpf.IpcprobeVarPidsGen].Set(p.pidsGen); err != nil {
		return fmt.Errorf("ebpf: add pid %d: %w", pid, err)
	}
	return nil
}

// label returns the kernel code for a primitive name, allocating one for a new name.
func (p *Probes) label(name string) (uint8, error) {
	if name == "" {
		return 0, errors.New("empty primitive name")
	}
	for code, n := range primNames {
		if n == name {
			return uint8(code), nil
		}
	}
	if code, ok := p.labels[name]; ok {
		return code, nil
	}
	code := uint8(bpf.IpcprobeIpcPrimPRIM_FIRST_LABEL) + uint8(len(p.labels))
	if code >= uint8(bpf.IpcprobeIpcPrimPRIM_MAX) {
		return 0, fmt.Errorf("too many primitive names (at most %d)", bpf.IpcprobeIpcPrimPRIM_MAX-bpf.IpcprobeIpcPrimPRIM_FIRST_LABEL)
	}
	p.labels[name] = code
	return code, nil
}

// RegisterFD attributes every traced call on descriptor fd of process pid to
// primitive, whatever the descriptor's kind: exact attribution for ipclab's own
// objects. primitive may be a classified name ("pipe") or any other label (at most
// 16 distinct new labels per Probes).
func (p *Probes) RegisterFD(pid, fd int, primitive string) error {
	if pid <= 0 || fd < 0 {
		return fmt.Errorf("ebpf: register fd: invalid pid %d or fd %d", pid, fd)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("ebpf: register fd: %w", os.ErrClosed)
	}
	code, err := p.label(primitive)
	if err != nil {
		return fmt.Errorf("ebpf: register fd: %w", err)
	}
	k := bpf.IpcprobeFdKey{Tgid: uint32(pid), Fd: uint32(fd)}
	if err := p.coll.Maps[bpf.IpcprobeMapFdLabels].Put(k, code); err != nil {
		return fmt.Errorf("ebpf: register fd %d of %d: %w", fd, pid, err)
	}
	p.fds[k] = true
	return p.setLabelsUsed()
}

// setLabelsUsed tells the probes whether to look descriptors up in fd_labels.
func (p *Probes) setLabelsUsed() error {
	if err := p.coll.Variables[bpf.IpcprobeVarFdLabelsUsed].Set(uint32(len(p.fds))); err != nil {
		return fmt.Errorf("ebpf: register fd: %w", err)
	}
	return nil
}

// UnregisterFD undoes RegisterFD (call it when the descriptor is closed: its number
// will be reused).
func (p *Probes) UnregisterFD(pid, fd int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("ebpf: unregister fd: %w", os.ErrClosed)
	}
	k := bpf.IpcprobeFdKey{Tgid: uint32(pid), Fd: uint32(fd)}
	if err := p.coll.Maps[bpf.IpcprobeMapFdLabels].Delete(k); err != nil && !errors.Is(err, cebpf.ErrKeyNotExist) {
		return fmt.Errorf("ebpf: unregister fd %d of %d: %w", fd, pid, err)
	}
	delete(p.fds, k)
	return p.setLabelsUsed()
}

// SysVKind says which System V id space an id belongs to.
type SysVKind int

// The System V id spaces that carry traced calls.
const (
	SysVMsg SysVKind = 2 // message queues: msgsnd, msgrcv
	SysVSem SysVKind = 3 // semaphore sets: semop, semtimedop
)

// RegisterSysV attributes every traced call on System V object id to primitive.
func (p *Probes) RegisterSysV(kind SysVKind, id int, primitive string) error {
	if (kind != SysVMsg && kind != SysVSem) || id < 0 {
		return fmt.Errorf("ebpf: register sysv: invalid kind %d or id %d", kind, id)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("ebpf: register sysv: %w", os.ErrClosed)
	}
	code, err := p.label(primitive)
	if err != nil {
		return fmt.Errorf("ebpf: register sysv: %w", err)
	}
	k := bpf.IpcprobeIpcKey{Kind: uint32(kind), Id: uint32(id)}
	if err := p.coll.Maps[bpf.IpcprobeMapIpcLabels].Put(k, code); err != nil {
		return fmt.Errorf("ebpf: register sysv id %d: %w", id, err)
	}
	return nil
}

func (p *Probes) primName(code uint32) string {
	if int(code) < len(primNames) && primNames[code] != "" {
		return primNames[code]
	}
	for n, c := range p.labels {
		if uint32(c) == code {
			return n
		}
	}
	return fmt.Sprintf("prim-%d", code)
}

// Snapshot reads the counters, summed over CPUs, into a Report.
func (p *Probes) Snapshot() (*Report, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("ebpf: snapshot: %w", os.ErrClosed)
	}
	r := &Report{Attach: p.attach.String(), Since: p.since, Taken: time.Now(), SampleEvery: p.sample}
	m := p.coll.Maps[bpf.IpcprobeMapStats]
	per := make([]bpf.IpcprobeIpcStats, p.ncpu)
	nops := uint32(bpf.IpcprobeIpcOpOP_MAX)
	for slot := uint32(0); slot < m.MaxEntries(); slot++ {
		if err := m.Lookup(slot, &per); err != nil {
			return nil, fmt.Errorf("ebpf: snapshot: %w", err)
		}
		var row Row
		for i := range per {
			s := &per[i]
			row.Calls += s.Calls
			row.Errors += s.Errors
			row.EAGAIN += s.Eagain
			row.Bytes += s.Bytes
			for mt := range row.Hist {
				h := &row.Hist[mt]
				h.Sum += s.Sum[mt]
				for k := range h.Buckets {
					h.Buckets[k] += s.Hist[mt][k]
				}
			}
		}
		if row.Calls == 0 {
			continue
		}
		op := slot % nops
		row.Primitive = p.primName(slot / nops)
		if int(op) < len(opNames) {
			row.Op = opNames[op]
		} else {
			row.Op = fmt.Sprintf("op-%d", op)
		}
		r.Rows = append(r.Rows, row)
	}
	sortRows(r.Rows)
	return r, nil
}

// Reset zeroes the counters. Calls in flight when it runs may be counted in either
// period.
func (p *Probes) Reset() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("ebpf: reset: %w", os.ErrClosed)
	}
	m := p.coll.Maps[bpf.IpcprobeMapStats]
	zero := make([]bpf.IpcprobeIpcStats, p.ncpu)
	for slot := uint32(0); slot < m.MaxEntries(); slot++ {
		if err := m.Put(slot, zero); err != nil {
			return fmt.Errorf("ebpf: reset: %w", err)
		}
	}
	p.since = time.Now()
	return nil
}

// Close detaches the probes and frees their maps. It is idempotent.
func (p *Probes) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	var errs []error
	for _, l := range p.links {
		errs = append(errs, l.Close())
	}
	p.links = nil
	p.coll.Close()
	return ipc.Join(errs...)
}

// MeasureCost runs workload with the kernel's BPF run-time statistics enabled and
// returns what the probes' programs cost meanwhile: their runs, their total run time,
// and the system calls they attributed (with Options.SampleEvery N > 1, the sampled
// calls times N: an estimate of all the calls, sampled or not, so that the cost per
// call includes the unsampled calls' share). The workload must make traced system calls
// (of a traced process); the counters it leaves are not reset. Statistics stay on
// only for the call (another holder may keep them on longer).
func (p *Probes) MeasureCost(workload func() error) (ProbeCost, error) {
	if workload == nil {
		return ProbeCost{}, fmt.Errorf("ebpf: measure cost: no workload")
	}
	stats, err := cebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		return ProbeCost{}, fmt.Errorf("ebpf: measure cost: enable BPF statistics: %w", err)
	}
	defer stats.Close()
	read := func() (runs uint64, t time.Duration, calls uint64, err error) {
		p.mu.Lock()
		closed := p.closed
		progs := p.coll.Programs
		p.mu.Unlock()
		if closed {
			return 0, 0, 0, os.ErrClosed
		}
		for _, prog := range progs {
			st, err := prog.Stats()
			if err != nil {
				return 0, 0, 0, err
			}
			runs += st.RunCount
			t += st.Runtime
		}
		r, err := p.Snapshot()
		if err != nil {
			return 0, 0, 0, err
		}
		for _, row := range r.Rows {
			calls += row.Calls
		}
		return runs, t, calls, nil
	}
	runs0, t0, calls0, err := read()
	if err != nil {
		return ProbeCost{}, fmt.Errorf("ebpf: measure cost: %w", err)
	}
	if err := workload(); err != nil {
		return ProbeCost{}, fmt.Errorf("ebpf: measure cost: workload: %w", err)
	}
	runs1, t1, calls1, err := read()
	if err != nil {
		return ProbeCost{}, fmt.Errorf("ebpf: measure cost: %w", err)
	}
	// With sampling the calls attributed are about 1 in p.sample of those made.
	return ProbeCost{Events: runs1 - runs0, RunTime: t1 - t0, Calls: (calls1 - calls0) * uint64(p.sample)}, nil
}
