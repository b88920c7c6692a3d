package inspect

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// A blocked thread's call, before its object's state and wakers are known.
type blocked struct {
	proc   *procInfo
	thread procThread
	call   callInfo
	wait   Wait
	sops   []sembuf // semop: the operations it waits to make
}

// attribute finds the object a blocked call waits on: by descriptor, through the
// holder table, or by System V id.
func attribute(b *blocked, fdObject map[pidFD]string, objs map[string]*Object) {
	switch {
	case b.call.FD >= 0:
		b.wait.Object = fdObject[pidFD{b.proc.PID, b.call.FD}]
	case b.call.SysVID >= 0:
		id := "msg:" + strconv.Itoa(b.call.SysVID)
		if b.call.For == "semaphore" {
			id = "sem:" + strconv.Itoa(b.call.SysVID)
		}
		if objs[id] != nil {
			b.wait.Object = id
		}
	}
}

// judge fills in a wait's state and wakers from its object, and reports whether
// the object's state means the call cannot complete now. others are every blocked
// call (System V objects have no holders: the processes waiting on one are among
// those that can make it ready).
func judge(b *blocked, o *Object, objs map[string]*Object, others []*blocked) (cannotComplete bool) {
	w := &b.wait
	if o == nil {
		return false
	}
	var wakers []int
	switch o.Kind {
	case KindPipe, KindFIFO, KindPosixMQ:
		want := "w" // a reader waits for a writer
		if w.For == "space" {
			want = "r"
		}
		for _, h := range o.Holders {
			if strings.Contains(h.Access, want) {
				wakers = append(wakers, h.PID)
			}
		}
		cannotComplete = levelBlocks(o, w)
	case KindUnixStream, KindUnixDgram, KindUnixSeqpacket, KindDoor, KindTCP, KindUDP:
		if w.For == "connection" {
			w.State = fmt.Sprintf("%d pending", o.Pending)
			return false // anyone may connect
		}
		if p := objs[o.Peer]; p != nil {
			for _, h := range p.Holders {
				wakers = append(wakers, h.PID)
			}
		}
		cannotComplete = levelBlocks(o, w)
	case KindSysVQueue:
		if w.For == "data" {
			wakers = append(wakers, o.LastSendPID)
		} else {
			wakers = append(wakers, o.LastRecvPID)
		}
		for _, x := range others {
			if x != b && x.wait.Object == o.ID && x.wait.For != w.For {
				wakers = append(wakers, x.proc.PID)
			}
		}
		cannotComplete = levelBlocks(o, w)
	case KindSysVSemSet:
		cannotComplete = len(b.sops) > 0 && o.Semaphores != nil
		var need []string
		for _, op := range b.sops {
			if int(op.Num) >= len(o.Semaphores) {
				cannotComplete = false
				continue
			}
			s := o.Semaphores[op.Num]
			wakers = append(wakers, s.PID)
			switch {
			case op.Op < 0:
				need = append(need, fmt.Sprintf("sem %d ≥ %d (is %d)", op.Num, -op.Op, s.Value))
				cannotComplete = cannotComplete && s.Value < int(-op.Op)
			case op.Op == 0:
				need = append(need, fmt.Sprintf("sem %d = 0 (is %d)", op.Num, s.Value))
				cannotComplete = cannotComplete && s.Value != 0
			}
		}
		// semop applies all or none: it blocks while any one cannot be made.
		if len(need) > 0 {
			w.For = "semaphore " + strings.Join(need, ", ")
		}
		for _, x := range others {
			if x != b && x.wait.Object == o.ID {
				wakers = append(wakers, x.proc.PID)
			}
		}
		w.State = semState(o)
	}
	slices.Sort(wakers)
	wakers = slices.Compact(wakers)
	wakers = slices.DeleteFunc(wakers, func(p int) bool { return p <= 0 })
	w.Wakers = wakers
	if w.Wakers == nil {
		w.Wakers = []int{}
	}
	return cannotComplete
}

// levelBlocks sets the wait's state from its object's fill level and reports
// whether that level blocks the call: nothing queued for a reader; for a writer,
// anything queued at all (a reading cannot tell how much room the call needs, so a
// writer of an empty object is taken to be on its way).
func levelBlocks(o *Object, w *Wait) bool {
	queued := o.Queued
	if o.Kind == KindSysVQueue || o.Kind == KindPosixMQ {
		queued = o.Messages
	}
	if w.For == "space" && (o.Kind == KindUnixStream || o.Kind == KindUnixSeqpacket || o.Kind == KindUnixDgram || o.Kind == KindTCP) {
		queued = o.SendQueued
	}
	switch {
	case queued < 0:
		w.State = "unknown"
		return false
	case queued == 0:
		w.State = "empty"
		return w.For == "data"
	case o.Kind != KindPosixMQ && o.Capacity > 0 && o.Queued >= o.Capacity:
		w.State = "full" // (a POSIX queue's capacity counts bytes, not messages)
	default:
		w.State = fmt.Sprintf("%d queued", queued)
	}
	return w.For == "space"
}

func semState(o *Object) string {
	if o.Semaphores == nil {
		return "values unreadable"
	}
	vals := make([]string, len(o.Semaphores))
	for i, s := range o.Semaphores {
		vals[i] = strconv.Itoa(s.Value)
	}
	return "values [" + strings.Join(vals, " ") + "]"
}
