package inspect

import (
	"slices"
	"sort"
)

// The wait-for graph has an edge from a process to each process that can make
// ready an object one of its threads waits on (a waker). A deadlock is a set of
// processes that wait and whose every wait can be ended only by processes of the
// set: nothing outside can break it. findDeadlocks computes that set by removing,
// until none is left to remove, every process with a wait that something outside
// the set can end (a waker that does not wait, a timeout, data already queued, a
// wait that was not confirmed), and reports one cycle of each strongly connected
// part of what remains.
//
// What a reading of /proc cannot see: a thread of a waiting process that is not in
// an IPC call (a timer, a signal handler, a goroutine in the Go runtime's poller)
// might still act. A deadlock reported here is one no IPC call of these processes
// can end.

// findDeadlocks returns the deadlocks among waits. held[i] says whether waits[i]
// can end only through one of its wakers: it held, unchanged, over the
// confirmation interval, and its object's state says the call cannot complete now
// (no data queued, no room, a semaphore too small). Timed waits, and waits without
// an object or wakers, never take part.
func findDeadlocks(waits []Wait, held []bool) []Deadlock {
	stuck := map[int]bool{}
	for i := range waits {
		stuck[waits[i].PID] = true
	}
	for changed := true; changed; {
		changed = false
		for i := range waits {
			w := &waits[i]
			if !stuck[w.PID] {
				continue
			}
			free := !held[i] || w.Timed || w.Object == "" || len(w.Wakers) == 0
			for _, q := range w.Wakers {
				free = free || !stuck[q]
			}
			if free {
				delete(stuck, w.PID)
				changed = true
			}
		}
	}
	// The edges among stuck processes, with the wait behind each.
	type edge struct {
		to   int
		wait int // index into waits
	}
	edges := map[int][]edge{}
	for i := range waits {
		w := &waits[i]
		if !stuck[w.PID] {
			continue
		}
		for _, q := range w.Wakers {
			edges[w.PID] = append(edges[w.PID], edge{q, i})
		}
	}
	pids := make([]int, 0, len(stuck))
	for p := range stuck {
		pids = append(pids, p)
	}
	sort.Ints(pids)
	for _, p := range pids {
		sort.SliceStable(edges[p], func(a, b int) bool { return edges[p][a].to < edges[p][b].to })
	}

	// One cycle per strongly connected part (every stuck process's edges stay
	// among stuck processes, so from any of them a walk ends in a cycle).
	var out []Deadlock
	seen := map[int]bool{}
	for _, start := range pids {
		if seen[start] {
			continue
		}
		// Walk first edges until a process repeats: that loop is a cycle.
		var walk []int
		at := map[int]int{}
		p := start
		for {
			if i, ok := at[p]; ok {
				cycle := walk[i:]
				if !slices.ContainsFunc(cycle, func(q int) bool { return seen[q] }) {
					out = append(out, cycleOf(cycle, func(from, to int) int {
						for _, e := range edges[from] {
							if e.to == to {
								return e.wait
							}
						}
						return -1
					}, waits))
				}
				break
			}
			if seen[p] {
				break
			}
			at[p] = len(walk)
			walk = append(walk, p)
			p = edges[p][0].to
		}
		for _, q := range walk {
			seen[q] = true
		}
	}
	return out
}

// cycleOf turns a cycle of pids into a Deadlock starting at its smallest pid.
func cycleOf(cycle []int, waitOf func(from, to int) int, waits []Wait) Deadlock {
	first := 0
	for i, p := range cycle {
		if p < cycle[first] {
			first = i
		}
	}
	var d Deadlock
	for k := range cycle {
		from := cycle[(first+k)%len(cycle)]
		to := cycle[(first+k+1)%len(cycle)]
		w := waits[waitOf(from, to)]
		d.Path = append(d.Path, Step{PID: w.PID, TID: w.TID, Comm: w.Comm, Syscall: w.Syscall, Object: w.Object})
	}
	return d
}
