package inspect

import (
	"cmp"
	"context"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
)

// DefaultConfirmFor is how long a wait must hold, unchanged, before Take counts it
// towards a deadlock.
const DefaultConfirmFor = 100 * time.Millisecond

type pidFD struct{ pid, fd int }

// Take reads the machine's IPC state: objects, their holders, the threads blocked
// on them, and the deadlocks among those threads. It reads every process's
// descriptors (a holder outside opts.PIDs can still be the only one who can end a
// wait), then keeps, when opts.PIDs is set, what those processes hold or wait on
// and the deadlocks they are part of.
//
// A wait counts towards a deadlock only if it held over opts.ConfirmFor: the
// thread was in the same call with the same arguments and had not run (its
// context-switch count had not moved) at both readings. Take returns early with
// ctx's error if ctx ends during that interval.
func Take(ctx context.Context, opts Options) (*Snapshot, error) {
	start := time.Now()
	confirm := opts.ConfirmFor
	if confirm <= 0 {
		confirm = DefaultConfirmFor
	}
	for _, p := range opts.PIDs {
		if p <= 0 {
			return nil, ipc.Wrap("inspect", "pid "+strconv.Itoa(p), ipc.ErrInvalid)
		}
	}
	s := &Snapshot{Schema: SchemaVersion, Time: start, Privileged: os.Geteuid() == 0, PIDs: opts.PIDs}
	bad := func(u []Unreadable) { s.Unreadable = append(s.Unreadable, u...) }

	procs, u := readProcs(nil)
	bad(u)
	objs := map[string]*Object{}
	add := func(list []Object) {
		for i := range list {
			objs[list[i].ID] = &list[i]
		}
	}
	if l, err := readUnixSockets(); err != nil {
		bad([]Unreadable{{What: "sock_diag unix", Err: err.Error()}})
	} else {
		add(l)
	}
	if l, err := readInetSockets(); err != nil {
		bad([]Unreadable{{What: "sock_diag inet", Err: err.Error()}})
	} else {
		add(l)
	}
	sysvObjs, u := readSysV()
	bad(u)
	add(sysvObjs)
	mqs, mqDev, u := readPosixQueues("/dev/mqueue")
	bad(u)
	add(mqs)
	mboxes, u := readMailboxes(opts.MailboxDirs)
	bad(u)
	add(mboxes)

	fdObject := holders(procs, objs, mqDev, bad)
	doors(objs)
	linkMailboxes(objs)

	// Blocked calls.
	var calls []*blocked
	for i := range procs {
		p := &procs[i]
		for _, t := range p.Threads {
			if t.Syscall < 0 {
				continue
			}
			c, ok := ipcCall(t.Syscall, t.Args)
			if !ok || c.For == "any" {
				continue
			}
			b := &blocked{proc: p, thread: t, call: c, wait: Wait{
				PID: p.PID, TID: t.TID, Comm: t.Comm, Syscall: c.Name, Wchan: t.Wchan,
				FD: c.FD, For: c.For, Timed: c.Timed,
			}}
			attribute(b, fdObject, objs)
			if c.Nsops > 0 && b.wait.Object != "" {
				if sops, err := readSembufs(p.PID, c.SopsAddr, c.Nsops); err == nil {
					b.sops = sops
				} else {
					bad([]Unreadable{{What: "semop operations of " + strconv.Itoa(t.TID), Err: err.Error()}})
				}
			}
			calls = append(calls, b)
		}
	}

	// Confirm: the same call, unmoved, after the interval.
	if len(calls) > 0 {
		t := time.NewTimer(confirm)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	again := map[int]map[int]procThread{}
	held := make([]bool, len(calls))
	for i, b := range calls {
		ts, ok := again[b.proc.PID]
		if !ok {
			list, _ := readThreads(b.proc.PID)
			ts = map[int]procThread{}
			for _, t := range list {
				ts[t.TID] = t
			}
			again[b.proc.PID] = ts
		}
		t, ok := ts[b.thread.TID]
		held[i] = ok && t.Syscall == b.thread.Syscall && t.Args == b.thread.Args && t.Switches == b.thread.Switches
	}
	for i, b := range calls {
		held[i] = judge(b, objs[b.wait.Object], objs, calls) && held[i]
		s.Waits = append(s.Waits, b.wait)
	}
	s.Deadlocks = findDeadlocks(s.Waits, held)

	keep := selected(opts.PIDs, s.Waits, objs)
	for id, o := range objs {
		if keep(o) {
			s.Objects = append(s.Objects, *o)
		} else {
			delete(objs, id)
		}
	}
	slices.SortFunc(s.Objects, func(a, b Object) int { return compareIDs(a.ID, b.ID) })
	if len(opts.PIDs) > 0 {
		s.Waits = slices.DeleteFunc(s.Waits, func(w Wait) bool { return !slices.Contains(opts.PIDs, w.PID) })
		s.Deadlocks = slices.DeleteFunc(s.Deadlocks, func(d Deadlock) bool {
			return !slices.ContainsFunc(d.Path, func(st Step) bool { return slices.Contains(opts.PIDs, st.PID) })
		})
	}
	sort.SliceStable(s.Waits, func(i, j int) bool {
		a, b := s.Waits[i], s.Waits[j]
		return a.PID < b.PID || a.PID == b.PID && a.TID < b.TID
	})
	s.Processes = processesOf(procs, s)
	s.Took = time.Since(start)
	return s, nil
}

// holders records, on each object, the descriptors that hold it, making objects
// for pipes and FIFOs (which only descriptors reveal), and returns the object each
// descriptor holds.
func holders(procs []procInfo, objs map[string]*Object, mqDev uint64, bad func([]Unreadable)) map[pidFD]string {
	fdObject := map[pidFD]string{}
	mqByIno := map[uint64]*Object{}
	for _, o := range objs {
		if o.Kind == KindPosixMQ {
			mqByIno[o.Inode] = o
		}
	}
	levelErrs := 0
	for i := range procs {
		p := &procs[i]
		for _, f := range p.FDs {
			var o *Object
			access := accessOf(f.Flags)
			switch {
			case f.Mode&unix.S_IFMT == unix.S_IFIFO:
				kind, name := KindFIFO, strings.TrimSuffix(f.Link, " (deleted)")
				if strings.HasPrefix(f.Link, "pipe:[") {
					kind, name = KindPipe, ""
				}
				id := kind + ":" + strconv.FormatUint(f.Ino, 10)
				if o = objs[id]; o == nil {
					o = &Object{ID: id, Kind: kind, Name: name, Inode: f.Ino, Mode: f.Mode & 0o7777, UID: -1, GID: -1}
					var st unix.Stat_t
					if unix.Stat("/proc/"+strconv.Itoa(p.PID)+"/fd/"+strconv.Itoa(f.FD), &st) == nil {
						o.UID, o.GID = int(st.Uid), int(st.Gid)
					}
					q, c, err := pipeLevel(p.PID, f.FD, f.Ino)
					if err != nil {
						q = -1
						if levelErrs++; levelErrs <= 3 {
							bad([]Unreadable{{What: "fill level of " + id, Err: err.Error()}})
						}
					}
					o.Queued, o.Capacity = q, c
					objs[id] = o
				} else if o.Queued < 0 { // try another holder
					if q, c, err := pipeLevel(p.PID, f.FD, f.Ino); err == nil {
						o.Queued, o.Capacity = q, c
					}
				}
			case f.Mode&unix.S_IFMT == unix.S_IFSOCK:
				ino := strconv.FormatUint(f.Ino, 10)
				for _, k := range []string{"unix:", "tcp:", "udp:"} {
					if o = objs[k+ino]; o != nil {
						break
					}
				}
				access = "rw"
			case mqDev != 0 && f.Dev == mqDev:
				o = mqByIno[f.Ino]
			}
			if o == nil {
				continue
			}
			o.Holders = append(o.Holders, Holder{PID: p.PID, FD: f.FD, Access: access})
			fdObject[pidFD{p.PID, f.FD}] = o.ID
		}
	}
	if levelErrs > 3 {
		bad([]Unreadable{{What: "fill levels", Err: strconv.Itoa(levelErrs-3) + " more pipes unreadable"}})
	}
	return fdObject
}

func accessOf(flags int) string {
	switch flags & unix.O_ACCMODE {
	case unix.O_WRONLY:
		return "w"
	case unix.O_RDWR:
		return "rw"
	}
	return "r"
}

// doors marks listening seqpacket sockets bound to a path as doors (ipclab's doors
// are exactly that): the server is the process holding the listener, the clients
// those holding the peers of the connections accepted on its path.
func doors(objs map[string]*Object) {
	for _, o := range objs {
		if o.Kind != KindUnixSeqpacket || o.State != "listen" || o.Name == "" || strings.HasPrefix(o.Name, "@") {
			continue
		}
		d := &Door{}
		if len(o.Holders) > 0 {
			d.ServerPID = o.Holders[0].PID
		}
		for _, c := range objs {
			if c.Kind != KindUnixSeqpacket || c == o || c.Name != o.Name || c.State == "listen" {
				continue
			}
			if peer := objs[c.Peer]; peer != nil {
				for _, h := range peer.Holders {
					d.Clients = append(d.Clients, h.PID)
				}
			}
		}
		slices.Sort(d.Clients)
		d.Clients = slices.Compact(d.Clients)
		o.Kind, o.Door = KindDoor, d
	}
}

// linkMailboxes points mailbox entries at the kernel objects seen.
func linkMailboxes(objs map[string]*Object) {
	for _, o := range objs {
		if o.Mailbox != nil && o.Mailbox.ObjectID != "" && objs[o.Mailbox.ObjectID] == nil {
			o.Mailbox.ObjectID = ""
		}
	}
}

// selected returns which objects a snapshot of pids keeps: all when pids is empty;
// otherwise those the processes hold, wait on, or (System V objects, mailbox
// entries) last used or own.
func selected(pids []int, waits []Wait, objs map[string]*Object) func(*Object) bool {
	if len(pids) == 0 {
		return func(*Object) bool { return true }
	}
	waited := map[string]bool{}
	for _, w := range waits {
		if slices.Contains(pids, w.PID) {
			waited[w.Object] = true
		}
	}
	return func(o *Object) bool {
		if waited[o.ID] {
			return true
		}
		for _, h := range o.Holders {
			if slices.Contains(pids, h.PID) {
				return true
			}
		}
		used := []int{o.CreatorPID, o.LastPID, o.LastSendPID, o.LastRecvPID}
		for _, s := range o.Semaphores {
			used = append(used, s.PID)
		}
		if o.Mailbox != nil {
			used = append(used, o.Mailbox.OwnerPID)
		}
		return slices.ContainsFunc(used, func(p int) bool { return p > 0 && slices.Contains(pids, p) })
	}
}

// processesOf lists the processes a snapshot mentions.
func processesOf(procs []procInfo, s *Snapshot) []Process {
	want := map[int]bool{}
	for _, o := range s.Objects {
		for _, h := range o.Holders {
			want[h.PID] = true
		}
	}
	for _, w := range s.Waits {
		want[w.PID] = true
		for _, p := range w.Wakers {
			want[p] = true
		}
	}
	var out []Process
	for _, p := range procs {
		if want[p.PID] {
			out = append(out, Process{PID: p.PID, Comm: p.Comm, UID: p.UID, Threads: len(p.Threads)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out
}

// compareIDs orders object IDs by kind, then by the number or name after the
// colon, numbers in numeric order: "pipe:999" before "pipe:1000".
func compareIDs(a, b string) int {
	ka, ra, _ := strings.Cut(a, ":")
	kb, rb, _ := strings.Cut(b, ":")
	if c := strings.Compare(ka, kb); c != 0 {
		return c
	}
	na, ea := strconv.ParseUint(ra, 10, 64)
	nb, eb := strconv.ParseUint(rb, 10, 64)
	switch {
	case ea == nil && eb == nil:
		return cmp.Compare(na, nb)
	case ea == nil:
		return -1
	case eb == nil:
		return 1
	}
	return strings.Compare(ra, rb)
}
