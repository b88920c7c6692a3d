package sysv

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

// The recycler creates an object of a kind ("msg", "sem" with one semaphore, "shm" of
// one page) with key Private, mode 0600, prints its id, and waits to be told to
// leave; it removes nothing (the test does, as root). Run as another user, it is the
// stranger who gets a removed object's id.
var _ = ipctest.Helper("sysv-recycler", func(args []string) int {
	var id int
	var err error
	switch args[0] {
	case "msg":
		id, err = sys.Msgget(0, unix.IPC_CREAT|unix.IPC_EXCL|0o600)
	case "sem":
		id, err = sys.Semget(0, 1, unix.IPC_CREAT|unix.IPC_EXCL|0o600)
	case "shm":
		id, err = unix.SysvShmGet(0, 4096, unix.IPC_CREAT|unix.IPC_EXCL|0o600)
	}
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println(id)
	ipctest.Signal()
	ipctest.Await()
	return 0
})

// recycle removes the object with id of kind behind every handle's back (raw
// IPC_RMID), asks the kernel to give id to the next object of that kind
// (kind_next_id, in the tests' private IPC namespace), and has another process
// create one, as uid. It returns the new object's id; the test removes the object.
func recycle(t *testing.T, kind string, id int, uid uint32) int {
	t.Helper()
	var err error
	switch kind {
	case "msg":
		_, err = sys.Msgctl(id, unix.IPC_RMID)
	case "sem":
		_, err = sys.SemctlInt(id, 0, unix.IPC_RMID, 0)
	case "shm":
		_, err = unix.SysvShmCtl(id, unix.IPC_RMID, nil)
	}
	must(t, err)
	setSysctl(t, kind+"_next_id", strconv.Itoa(id))
	var out outBuf
	p := ipctest.Start(t, "sysv-recycler", ipctest.WithArgs(kind), ipctest.AsUser(uid), ipctest.WithStdout(out.w(t)))
	p.Await()
	got := atoi(out.line(t))
	t.Cleanup(func() {
		p.Signal()
		_ = p.Wait()
		switch kind {
		case "msg":
			_, _ = sys.Msgctl(got, unix.IPC_RMID)
		case "sem":
			_, _ = sys.SemctlInt(got, 0, unix.IPC_RMID, 0)
		case "shm":
			_, _ = unix.SysvShmCtl(got, unix.IPC_RMID, nil)
		}
	})
	return got
}

// outBuf collects a helper's standard output through a pipe.
type outBuf struct{ r *os.File }

func (o *outBuf) w(t *testing.T) *os.File {
	r, w, err := os.Pipe()
	must(t, err)
	o.r = r
	t.Cleanup(func() { r.Close(); w.Close() })
	return w
}

// line reads the first line the helper printed (it has signalled, so it is there).
func (o *outBuf) line(t *testing.T) string {
	t.Helper()
	var b []byte
	var c [1]byte
	for {
		n, err := o.r.Read(c[:])
		if n == 1 && c[0] != '\n' {
			b = append(b, c[0])
		}
		if n == 1 && c[0] == '\n' || err != nil {
			return string(b)
		}
	}
}

// due waits until h's identity is due to be confirmed (a millisecond after the last
// confirmation), so that the next call of any kind makes the check.
func due(t *testing.T, hs ...*object) {
	t.Helper()
	for _, h := range hs {
		eventually(t, "the identity check to be due", h.recheck.Load)
	}
}

// queueMessages returns how many messages the queue with id holds (raw IPC_STAT).
func queueMessages(t *testing.T, id int) uint64 {
	t.Helper()
	var ds sys.MsqidDS
	_, err := sys.MsgctlStat(id, unix.IPC_STAT, &ds)
	must(t, err)
	return ds.Qnum
}

// TestStaleQueue: a queue's id given to another user's queue after removal. No call
// through a stale handle delivers into, takes from or removes the new queue; each
// fails with ipc.ErrRemoved (conformance S4).
func TestStaleQueue(t *testing.T) {
	requireNamespace(t)
	ctx := context.Background()
	q, err := CreateQueue(Private)
	must(t, err)
	defer q.Close()
	// one handle per call, so that each call meets the recycled id first
	open := func() *Queue {
		h, err := OpenQueueID(q.ID())
		must(t, err)
		t.Cleanup(func() { h.Close() })
		return h
	}
	hTry, hSend, hCtxSend, hRecv, hStat, hSet, hRm := open(), open(), open(), open(), open(), open(), open()
	id := q.ID()
	if got := recycle(t, "msg", id, ipctest.Nobody); got != id {
		t.Fatalf("the stranger's queue got id %d, not %d", got, id)
	}
	// Calls that change or destroy the queue check every time, due or not.
	wantErr(t, hRm.Remove(), ipc.ErrRemoved, os.ErrClosed)
	a := QueueAttr{UID: 0, GID: 0, Mode: 0o600, MaxBytes: 16}
	wantErr(t, hSet.SetAttr(a), ipc.ErrRemoved)
	due(t, &hTry.object, &hSend.object, &hCtxSend.object, &hRecv.object)
	wantErr(t, hTry.TrySend(1, []byte("stale")), ipc.ErrRemoved)
	wantErr(t, hSend.Send(ctx, 1, []byte("stale")), ipc.ErrRemoved) // the hot path
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	wantErr(t, hCtxSend.Send(cctx, 1, []byte("stale")), ipc.ErrRemoved)
	_, err = hStat.Stat()
	wantErr(t, err, ipc.ErrRemoved)
	if n := queueMessages(t, id); n != 0 {
		t.Fatalf("the stranger's queue received %d messages through stale handles", n)
	}
	// The stranger's message is not taken either.
	must(t, sys.Msgsnd(id, append(make([]byte, sys.MsgHeaderSize-1), 1, 'x'), unix.IPC_NOWAIT))
	_, _, err = hRecv.Recv(ctx, make([]byte, 8), Any())
	wantErr(t, err, ipc.ErrRemoved)
	if n := queueMessages(t, id); n != 1 {
		t.Fatalf("the stranger's queue holds %d messages, want 1", n)
	}
	// a removed handle stays removed, even for calls that are not due
	wantErr(t, hTry.TrySend(1, []byte("stale")), ipc.ErrRemoved)
	wantErr(t, q.Remove(), ipc.ErrRemoved) // the creator's own handle
}

// TestStaleQueueSameUser: the id given to a queue of the same user. With another key
// the handle tells them apart (S4); a private queue of the same user differs only in
// its change time, which a handle opened with Expect compares.
func TestStaleQueueSameUser(t *testing.T) {
	requireNamespace(t)
	t.Run("other-key", func(t *testing.T) {
		q, err := CreateQueue(Private)
		must(t, err)
		defer q.Close()
		id := q.ID()
		_, err = sys.Msgctl(id, unix.IPC_RMID)
		must(t, err)
		setSysctl(t, "msg_next_id", strconv.Itoa(id))
		other, err := CreateQueue(newKey())
		must(t, err)
		defer func() { other.Remove(); other.Close() }()
		if other.ID() != id {
			t.Fatalf("new queue id %d, want %d", other.ID(), id)
		}
		wantErr(t, q.Remove(), ipc.ErrRemoved)
		if n := queueMessages(t, id); n != 0 {
			t.Fatalf("%d messages", n)
		}
		must(t, other.TrySend(1, []byte("still here")))
	})
	t.Run("expect", func(t *testing.T) {
		q, err := CreateQueue(Private)
		must(t, err)
		defer q.Close()
		h, err := OpenQueueID(q.ID(), Expect(q.Identity()))
		must(t, err)
		defer h.Close()
		id, created := q.ID(), q.Identity().ChangeTime
		must(t, q.Remove())
		// a change time in another second: wait for the clock to get there
		nextSecond(t, created)
		setSysctl(t, "msg_next_id", strconv.Itoa(id))
		other, err := CreateQueue(Private)
		must(t, err)
		defer func() { other.Remove(); other.Close() }()
		if other.ID() != id {
			t.Fatalf("new queue id %d, want %d", other.ID(), id)
		}
		wantErr(t, h.Remove(), ipc.ErrRemoved)
		_, err = OpenQueueID(id, Expect(q.Identity()))
		wantErr(t, err, ipc.ErrRemoved)
		due(t, &h.object)
		wantErr(t, h.TrySend(1, []byte("stale")), ipc.ErrRemoved)
		if n := queueMessages(t, id); n != 0 {
			t.Fatalf("%d messages", n)
		}
		// the same queue, with its own SetAttr, still passes
		oh, err := OpenQueueID(id, Expect(other.Identity()))
		must(t, err)
		defer oh.Close()
		a, err := oh.Attr()
		must(t, err)
		nextSecond(t, other.Identity().ChangeTime)
		a.MaxBytes--
		must(t, oh.SetAttr(a))
		due(t, &oh.object)
		must(t, oh.TrySend(1, []byte("ok")))
	})
}

// nextSecond waits until the kernel's clock, which System V times come from, has
// passed second sec (it reads a tick-granular clock, so give it 50 ms more).
func nextSecond(t *testing.T, sec int64) {
	t.Helper()
	eventually(t, "the next second", func() bool { return time.Now().Add(-50*time.Millisecond).Unix() > sec })
}

// TestStaleSemSet: a set's id given to another user's set of the same size. Its value
// is neither changed nor waited on through a stale handle, and Remove leaves it (S4).
func TestStaleSemSet(t *testing.T) {
	requireNamespace(t)
	ctx := context.Background()
	s, err := CreateSemSet(Private, 1)
	must(t, err)
	defer s.Close()
	open := func() *SemSet {
		h, err := OpenSemSetID(s.ID())
		must(t, err)
		t.Cleanup(func() { h.Close() })
		return h
	}
	hOp, hTry, hSet, hAll, hPerm, hGet, hRm := open(), open(), open(), open(), open(), open(), open()
	id := s.ID()
	if got := recycle(t, "sem", id, ipctest.Nobody); got != id {
		t.Fatalf("the stranger's set got id %d, not %d", got, id)
	}
	_, err = sys.SemctlInt(id, 0, sys.SETVAL, 5)
	must(t, err)
	wantErr(t, hSet.Set(0, 1), ipc.ErrRemoved)
	wantErr(t, hAll.SetAll([]uint16{2}), ipc.ErrRemoved)
	wantErr(t, hPerm.SetPerm(0, 0, 0o600), ipc.ErrRemoved)
	wantErr(t, hRm.Remove(), ipc.ErrRemoved)
	due(t, &hOp.object, &hTry.object, &hGet.object)
	wantErr(t, hOp.Op(ctx, SemOp{Num: 0, Op: -1}), ipc.ErrRemoved) // the hot path
	wantErr(t, hTry.TryOp(SemOp{Num: 0, Op: 1}), ipc.ErrRemoved)
	_, err = hGet.Get(0)
	wantErr(t, err, ipc.ErrRemoved)
	if v, err := sys.SemctlInt(id, 0, sys.GETVAL, 0); err != nil || v != 5 {
		t.Fatalf("the stranger's semaphore is %d (%v), want 5", v, err)
	}
	wantErr(t, s.Remove(), ipc.ErrRemoved)
}

// TestStaleSegment: an attached segment's id cannot be recycled. Removed behind the
// handle's back, the segment stays in the kernel's table while attached, so the next
// segment gets another id even when asked for this one, and the handle's calls keep
// acting on its own segment (S4, SHM-18).
func TestStaleSegment(t *testing.T) {
	requireNamespace(t)
	g, err := CreateSegment(Private, 4096)
	must(t, err)
	defer g.Detach()
	id := g.ID()
	got := recycle(t, "shm", id, ipctest.Nobody)
	if got == id {
		t.Fatalf("an attached segment's id %d was given to another segment", id)
	}
	must(t, g.SetPerm(0, 0, 0o600))
	must(t, g.Remove())
	st, err := g.Stat()
	must(t, err)
	if !st.Removed() || st.Perm.CUID != 0 {
		t.Fatalf("own segment: %+v", st)
	}
	var ds unix.SysvShmDesc
	_, err = unix.SysvShmCtl(got, unix.IPC_STAT, &ds)
	must(t, err)
	if ds.Perm.Mode&sys.SHM_DEST != 0 || ds.Perm.Cuid != ipctest.Nobody {
		t.Fatalf("the stranger's segment was touched: mode %#o cuid %d", ds.Perm.Mode, ds.Perm.Cuid)
	}
}
