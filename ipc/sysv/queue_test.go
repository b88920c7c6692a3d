package sysv

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/internal/wait"
	"github.com/ipclab/ipclab/ipc"
)

func tmpQueue(t testing.TB, opts ...Option) *Queue {
	t.Helper()
	q, err := CreateQueue(Private, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Remove(); q.Close() })
	return q
}

// Helpers for the queue rows run as another process (often another user).
var (
	_ = ipctest.Helper("msg-open-access", func(args []string) int {
		// args: key, then the expected errno for access 0400, 0200, 0600
		key := Key(atoi(args[0]))
		for _, acc := range []os.FileMode{0o400, 0o200, 0o600} {
			_, err := OpenQueue(key, WithAccess(acc), WithOwner(0))
			if !errors.Is(err, unix.EACCES) {
				fmt.Printf("access %#o: got %v, want EACCES\n", acc, err)
				return 1
			}
		}
		return 0
	})
	_ = ipctest.Helper("msg-nobody-ops", func(args []string) int {
		// A read-only (mode 0444) queue: send and IPC_RMID are refused, IPC_STAT is
		// permitted. A mode-0 queue: receive and IPC_STAT are refused.
		ro, err := OpenQueueID(atoi(args[0]), WithOwner(0), WithMode(0o444), AllowWorld(), ReadOnly())
		if err != nil {
			fmt.Println("open ro:", err)
			return 1
		}
		if err := ro.TrySend(1, []byte("x")); !errors.Is(err, unix.EACCES) {
			fmt.Println("send without write permission:", err)
			return 1
		}
		if err := ro.Remove(); !errors.Is(err, unix.EPERM) {
			fmt.Println("non-owner IPC_RMID:", err)
			return 1
		}
		if err := ro.SetAttr(QueueAttr{Mode: 0o400}); !errors.Is(err, unix.EPERM) {
			fmt.Println("non-owner IPC_SET:", err)
			return 1
		}
		closed, err := OpenQueueID(atoi(args[1]), WithOwner(0), WithMode(0))
		if err != nil {
			fmt.Println("open mode-0 queue by id:", err)
			return 1
		}
		if _, _, err := closed.TryRecv(make([]byte, 8), Any()); !errors.Is(err, unix.EACCES) {
			fmt.Println("recv without read permission:", err)
			return 1
		}
		if _, err := closed.Stat(); !errors.Is(err, unix.EACCES) {
			fmt.Println("stat without read permission:", err)
			return 1
		}
		return 0
	})
	_ = ipctest.Helper("msg-sender", func(args []string) int {
		// args: id, first type, count, size
		q, err := OpenQueueID(atoi(args[0]))
		if err != nil {
			fmt.Println(err)
			return 1
		}
		first, count, size := atoi(args[1]), atoi(args[2]), atoi(args[3])
		buf := make([]byte, size)
		for i := range count {
			fill(buf, first+i)
			if err := q.Send(context.Background(), int64(i%3+1), buf); err != nil {
				fmt.Println(err)
				return 1
			}
		}
		return 0
	})
)

// fill writes a pattern identifying message i.
func fill(b []byte, i int) {
	for j := range b {
		b[j] = byte(i*31 + j)
	}
	if len(b) >= 4 {
		binary.LittleEndian.PutUint32(b, uint32(i))
	}
}

func TestQueue(t *testing.T) {
	ctx := context.Background()
	limits, err := ReadLimits()
	must(t, err)

	t.Run("MSG-01", func(t *testing.T) {
		q := tmpQueue(t)
		must(t, q.Send(ctx, 7, []byte("hello, queue")))
		buf := make([]byte, 64)
		n, typ, err := q.Recv(ctx, buf, Any())
		must(t, err)
		if string(buf[:n]) != "hello, queue" || typ != 7 {
			t.Fatalf("got %q type %d", buf[:n], typ)
		}
	})

	t.Run("MSG-02", func(t *testing.T) {
		key := newKey()
		q, err := CreateQueue(key)
		must(t, err)
		defer q.Close()
		defer q.Remove()
		_, err = CreateQueue(key)
		wantErr(t, err, unix.EEXIST)
	})

	t.Run("MSG-03", func(t *testing.T) {
		key := newKey()
		_, err := OpenQueue(key)
		wantErr(t, err, unix.ENOENT)
		_, err = sys.Msgget(int32(key), unix.IPC_EXCL)
		wantErr(t, err, unix.ENOENT)
	})

	t.Run("MSG-04", func(t *testing.T) {
		ipctest.RequireRoot(t)
		key := newKey()
		q, err := CreateQueue(key, WithMode(0))
		must(t, err)
		defer q.Close()
		defer q.Remove()
		ipctest.Start(t, "msg-open-access", ipctest.WithArgs(strconv.Itoa(int(key))), ipctest.AsUser(ipctest.Nobody)).MustSucceed()
	})

	t.Run("MSG-05", func(t *testing.T) {
		requireNamespace(t)
		used := len(mustRows(t, "msg"))
		setSysctl(t, "msgmni", strconv.Itoa(used+3))
		var qs []*Queue
		defer func() {
			for _, q := range qs {
				q.Remove()
				q.Close()
			}
		}()
		for range 3 {
			q, err := CreateQueue(Private)
			must(t, err)
			qs = append(qs, q)
		}
		_, err := CreateQueue(Private)
		wantErr(t, err, unix.ENOSPC)
	})

	t.Run("MSG-06", func(t *testing.T) {
		requireNamespace(t)
		const want = 4242
		must(t, os.WriteFile("/proc/sys/kernel/msg_next_id", []byte(strconv.Itoa(want)), 0))
		q := tmpQueue(t)
		if q.ID() != want {
			t.Fatalf("id %d, want %d", q.ID(), want)
		}
		if got, _ := os.ReadFile("/proc/sys/kernel/msg_next_id"); string(bytes.TrimSpace(got)) != "-1" {
			t.Fatalf("msg_next_id after use: %q, want -1", got)
		}
		must(t, os.WriteFile("/proc/sys/kernel/msg_next_id", []byte(strconv.Itoa(want)), 0))
		q2 := tmpQueue(t)
		if q2.ID() == want {
			t.Fatalf("second queue got the id in use")
		}
	})

	t.Run("MSG-07", func(t *testing.T) {
		q := tmpQueue(t)
		before := kernelSecondBefore()
		must(t, q.Send(ctx, 1, make([]byte, 100)))
		must(t, q.Send(ctx, 1, make([]byte, 28)))
		st, err := q.Stat()
		must(t, err)
		after := time.Now()
		if st.Messages != 2 || st.Bytes != 128 || st.LastSendPID != os.Getpid() || st.SendTime.Before(before) || st.SendTime.After(after) {
			t.Fatalf("after send: %+v", st)
		}
		_, _, err = q.Recv(ctx, make([]byte, 100), Any())
		must(t, err)
		st, err = q.Stat()
		must(t, err)
		if st.Messages != 1 || st.Bytes != 28 || st.LastRecvPID != os.Getpid() || st.RecvTime.Before(before) || st.RecvTime.After(time.Now()) {
			t.Fatalf("after recv: %+v", st)
		}
	})

	t.Run("MSG-08", func(t *testing.T) {
		q := tmpQueue(t)
		// invalid id
		var msg [16]byte
		binary.NativeEndian.PutUint64(msg[:], 1)
		wantErr(t, sys.Msgsnd(-1, msg[:], unix.IPC_NOWAIT), unix.EINVAL)
		// mtype 0 and < 0: refused before the call, and by the kernel
		wantErr(t, q.TrySend(0, []byte("x")), unix.EINVAL, ipc.ErrInvalid)
		wantErr(t, q.Send(ctx, -5, []byte("x")), unix.EINVAL, ipc.ErrInvalid)
		binary.NativeEndian.PutUint64(msg[:], 0)
		wantErr(t, sys.Msgsnd(q.ID(), msg[:], unix.IPC_NOWAIT), unix.EINVAL)
		binary.NativeEndian.PutUint64(msg[:], uint64(1<<64-3))
		wantErr(t, sys.Msgsnd(q.ID(), msg[:], unix.IPC_NOWAIT), unix.EINVAL)
		// a buffer too short for the type: refused by the wrapper; a negative size
		// cannot be expressed (len is never negative)
		wantErr(t, sys.Msgsnd(q.ID(), msg[:4], 0), unix.EINVAL)
		// no write permission: other user
		runMsgNobody(t)
	})

	t.Run("MSG-09", func(t *testing.T) {
		q := tmpQueue(t)
		big := make([]byte, limits.MsgMax+1)
		wantErr(t, q.TrySend(1, big), unix.EINVAL)
		raw := make([]byte, sys.MsgHeaderSize+limits.MsgMax+1)
		binary.NativeEndian.PutUint64(raw, 1)
		wantErr(t, sys.Msgsnd(q.ID(), raw, unix.IPC_NOWAIT), unix.EINVAL)
		must(t, q.TrySend(1, big[:limits.MsgMax]))
	})

	t.Run("MSG-10", func(t *testing.T) {
		q := tmpQueue(t)
		a, err := q.Attr()
		must(t, err)
		a.MaxBytes = 64
		must(t, q.SetAttr(a))
		must(t, q.TrySend(1, make([]byte, 64)))
		wantErr(t, q.TrySend(1, []byte("x")), unix.EAGAIN, ipc.ErrWouldBlock)
		// raw layer: a caught signal interrupts the blocked sender with EINTR
		raw := make([]byte, sys.MsgHeaderSize+1)
		binary.NativeEndian.PutUint64(raw, 1)
		wantErr(t, ipctest.Interrupted(unix.SIGURG, func() error { return sys.Msgsnd(q.ID(), raw, 0) }), unix.EINTR)
		// public API: signals are absorbed; the send completes once there is room
		done := make(chan error, 1)
		go func() { done <- q.Send(ctx, 2, []byte("y")) }()
		st := storm(t, 300)
		_, _, err = q.Recv(ctx, make([]byte, 64), OfType(1))
		must(t, err)
		must(t, <-done)
		st.Stop()
		n, typ, err := q.TryRecv(make([]byte, 8), Any())
		if err != nil || n != 1 || typ != 2 {
			t.Fatalf("after storm: n=%d type=%d err=%v", n, typ, err)
		}
	})

	t.Run("MSG-11", func(t *testing.T) {
		q := tmpQueue(t)
		a, err := q.Attr()
		must(t, err)
		a.MaxBytes = 8
		must(t, q.SetAttr(a))
		must(t, q.TrySend(1, make([]byte, 8)))
		other, err := OpenQueueID(q.ID())
		must(t, err)
		defer other.Close()
		done := make(chan error, 1)
		go func() { done <- other.Send(ctx, 1, []byte("blocked")) }()
		waitBlocked(t, done)
		must(t, q.Remove())
		wantErr(t, <-done, unix.EIDRM, ipc.ErrRemoved, os.ErrClosed)
	})

	t.Run("MSG-12", func(t *testing.T) {
		q := tmpQueue(t)
		must(t, q.Send(ctx, 1, []byte("0123456789")))
		_, _, err := q.TryRecv(make([]byte, 4), Any())
		wantErr(t, err, unix.E2BIG)
		if st, _ := q.Stat(); st.Messages != 1 {
			t.Fatalf("message not kept after E2BIG: %+v", st)
		}
		// id < 0
		_, err = sys.Msgrcv(-1, make([]byte, 16), 0, unix.IPC_NOWAIT)
		wantErr(t, err, unix.EINVAL)
		// negative size / bad buffer: a buffer with no room for the type is refused
		// before the call
		_, err = sys.Msgrcv(q.ID(), make([]byte, 3), 0, unix.IPC_NOWAIT)
		wantErr(t, err, unix.EINVAL)
		_, _, err = q.TryRecv(make([]byte, 16), OfType(3))
		wantErr(t, err, unix.ENOMSG, ipc.ErrWouldBlock)
		_, err = sys.Msgrcv(q.ID(), make([]byte, 24), -1, unix.IPC_NOWAIT)
		if err != nil { // type 1 is ≤ 1, so the kernel finds it
			t.Fatal(err)
		}
		must(t, q.Send(ctx, 2, []byte("two")))
		_, _, err = q.TryRecv(make([]byte, 16), UpTo(1))
		wantErr(t, err, unix.ENOMSG)
		_, _, err = q.TryRecv(make([]byte, 16), Except(2))
		wantErr(t, err, unix.ENOMSG)
		// no read permission, as nobody
		runMsgNobody(t)
	})

	t.Run("MSG-13", func(t *testing.T) {
		q := tmpQueue(t)
		must(t, q.Send(ctx, 1, []byte("a")))
		buf := make([]byte, 32)
		_, err := sys.Msgrcv(q.ID(), buf, 0, sys.MSG_COPY)
		wantErr(t, err, unix.EINVAL)
		_, err = sys.Msgrcv(q.ID(), buf, 0, sys.MSG_COPY|sys.MSG_EXCEPT|unix.IPC_NOWAIT)
		wantErr(t, err, unix.EINVAL)
		_, _, err = q.Peek(buf, 1)
		wantErr(t, err, unix.ENOMSG)
		_, _, err = q.Peek(buf, -1)
		wantErr(t, err, ipc.ErrInvalid)
	})

	t.Run("MSG-14", func(t *testing.T) {
		q := tmpQueue(t)
		wantErr(t, ipctest.Interrupted(unix.SIGURG, func() error {
			_, err := sys.Msgrcv(q.ID(), make([]byte, 16), 0, 0)
			return err
		}), unix.EINTR)
	})

	t.Run("MSG-15", func(t *testing.T) {
		q := tmpQueue(t)
		done := make(chan error, 1)
		go func() {
			_, _, err := q.Recv(ctx, make([]byte, 16), Any())
			done <- err
		}()
		waitBlocked(t, done)
		must(t, q.Remove())
		wantErr(t, <-done, unix.EIDRM, ipc.ErrRemoved)
	})

	t.Run("MSG-16", func(t *testing.T) {
		q := tmpQueue(t)
		for _, m := range []struct {
			typ  int64
			text string
		}{{5, "five"}, {3, "three"}, {9, "nine"}, {3, "three-b"}, {1, "one"}} {
			must(t, q.Send(ctx, m.typ, []byte(m.text)))
		}
		buf := make([]byte, 32)
		recv := func(sel Selector) (string, int64) {
			t.Helper()
			n, typ, err := q.TryRecv(buf, sel)
			must(t, err)
			return string(buf[:n]), typ
		}
		// MSG_COPY is non-destructive
		n, typ, err := q.Peek(buf, 2)
		must(t, err)
		if string(buf[:n]) != "nine" || typ != 9 {
			t.Fatalf("peek 2: %q %d", buf[:n], typ)
		}
		if st, _ := q.Stat(); st.Messages != 5 {
			t.Fatalf("peek removed a message: %+v", st)
		}
		// msgtyp < 0: lowest type ≤ |t|
		if s, typ := recv(UpTo(4)); s != "one" || typ != 1 {
			t.Fatalf("UpTo(4): %q %d", s, typ)
		}
		// MSG_EXCEPT
		if s, typ := recv(Except(5)); s != "three" || typ != 3 {
			t.Fatalf("Except(5): %q %d", s, typ)
		}
		// msgtyp > 0: first of that type
		if s, _ := recv(OfType(9)); s != "nine" {
			t.Fatalf("OfType(9): %q", s)
		}
		// msgtyp 0: FIFO
		if s, _ := recv(Any()); s != "five" {
			t.Fatalf("Any: %q", s)
		}
		// MSG_NOERROR truncates, and the API reports it
		small := make([]byte, 3)
		n, typ, err = q.TryRecv(small, Any().Truncate())
		wantErr(t, err, ipc.ErrTruncated)
		if n != 3 || string(small) != "thr" || typ != 3 {
			t.Fatalf("truncated: %d %q %d", n, small, typ)
		}
		// an exact fit is not a truncation
		must(t, q.Send(ctx, 1, []byte("abc")))
		n, _, err = q.TryRecv(small, Any().Truncate())
		if err != nil || n != 3 || string(small) != "abc" {
			t.Fatalf("exact fit: %d %q %v", n, small, err)
		}
		// invalid selectors are refused before the call
		for _, sel := range []Selector{OfType(0), UpTo(-1), Except(0)} {
			_, _, err := q.TryRecv(buf, sel)
			wantErr(t, err, ipc.ErrInvalid)
		}
	})

	t.Run("MSG-17", func(t *testing.T) {
		// A 32-bit process (compat syscall path) receives with a negative msgtyp and
		// IPC_NOWAIT|MSG_NOERROR.
		bin := build386(t, "./testdata/msgrcv32")
		q := tmpQueue(t)
		must(t, q.Send(ctx, 7, []byte("seven")))
		must(t, q.Send(ctx, 3, []byte("three")))
		out, err := exec.Command(bin, strconv.Itoa(q.ID()), "-5").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "3 three" {
			t.Fatalf("32-bit msgrcv: %v: %s", err, out)
		}
		if st, _ := q.Stat(); st.Messages != 1 {
			t.Fatalf("%d messages left, want 1", st.Messages)
		}
	})

	t.Run("MSG-18", func(t *testing.T) {
		key := newKey()
		before := kernelSecondBefore()
		q, err := CreateQueue(key, WithMode(0o640))
		must(t, err)
		defer q.Close()
		defer q.Remove()
		st, err := q.Stat()
		must(t, err)
		want := Perm{Key: key, UID: uint32(os.Geteuid()), GID: uint32(os.Getegid()), CUID: uint32(os.Geteuid()), CGID: uint32(os.Getegid()), Mode: 0o640, Seq: st.Perm.Seq}
		if st.Perm != want || !st.SendTime.IsZero() || !st.RecvTime.IsZero() || st.Messages != 0 || st.Bytes != 0 ||
			st.LastSendPID != 0 || st.LastRecvPID != 0 || st.ChangeTime.Before(before) || st.MaxBytes != uint64(limits.MsgMnb) {
			t.Fatalf("stat after create: %+v (want perm %+v)", st, want)
		}
	})

	t.Run("MSG-19", func(t *testing.T) {
		q := tmpQueue(t)
		a, err := q.Attr()
		must(t, err)
		a.MaxBytes--
		must(t, q.SetAttr(a))
		st, err := q.Stat()
		must(t, err)
		if st.MaxBytes != a.MaxBytes {
			t.Fatalf("qbytes %d, want %d", st.MaxBytes, a.MaxBytes)
		}
		// S1: IPC_SET cannot widen the mode to the world without AllowWorld
		a.Mode = 0o666
		wantErr(t, q.SetAttr(a), ipc.ErrInvalid)
	})

	t.Run("MSG-20", func(t *testing.T) {
		q, err := CreateQueue(Private)
		must(t, err)
		defer q.Close()
		other, err := OpenQueueID(q.ID())
		must(t, err)
		defer other.Close()
		must(t, q.Remove())
		var ds sys.MsqidDS
		_, err = sys.MsgctlStat(q.ID(), unix.IPC_STAT, &ds)
		wantErr(t, err, unix.EINVAL)
		_, err = other.Stat()
		wantErr(t, err, ipc.ErrRemoved, unix.EINVAL)
		wantErr(t, other.TrySend(1, []byte("stale")), ipc.ErrRemoved)
		wantErr(t, q.TrySend(1, []byte("stale")), ipc.ErrRemoved)
	})

	t.Run("MSG-21", func(t *testing.T) {
		q := tmpQueue(t)
		_, err := sys.Msgctl(q.ID(), -1)
		wantErr(t, err, unix.EINVAL)
		var ds sys.MsqidDS
		_, err = sys.MsgctlStat(-1, unix.IPC_STAT, &ds)
		wantErr(t, err, unix.EINVAL)
		_, err = sys.MsgctlStat(-1, unix.IPC_SET, &ds)
		wantErr(t, err, unix.EINVAL)
		// bad STAT/SET buffers cannot be expressed: Stat and SetAttr own their buffers.
		// STAT without read permission and non-owner IPC_RMID/IPC_SET, as nobody:
		runMsgNobody(t)
	})

	t.Run("MSG-22", func(t *testing.T) {
		q := tmpQueue(t)
		must(t, q.Send(ctx, 1, []byte("x")))
		_, _, err := q.Recv(ctx, make([]byte, 8), Any())
		must(t, err)
		st, err := q.Stat()
		must(t, err)
		checkCompatTimes(t, "msg", q.ID(), st.SendTime, st.RecvTime, st.ChangeTime)
	})

	t.Run("MSG-23", func(t *testing.T) {
		q := tmpQueue(t)
		must(t, q.Send(ctx, 1, make([]byte, 10)))
		var info sys.Msginfo
		_, err := sys.MsgctlInfo(sys.IPC_INFO, &info)
		must(t, err)
		if int(info.Msgmax) != limits.MsgMax || int(info.Msgmnb) != limits.MsgMnb || int(info.Msgmni) != limits.MsgMni {
			t.Fatalf("IPC_INFO %+v vs limits %+v", info, limits)
		}
		rows := mustRows(t, "msg")
		maxIdx, err := sys.MsgctlInfo(sys.MSG_INFO, &info)
		must(t, err)
		var msgs, byts int
		for _, r := range rows {
			msgs += atoi(r["qnum"])
			byts += atoi(r["cbytes"])
		}
		if int(info.Msgpool) != len(rows) || int(info.Msgmap) != msgs || int(info.Msgtql) != byts {
			t.Fatalf("MSG_INFO %+v vs /proc/sysvipc/msg: %d queues, %d messages, %d bytes", info, len(rows), msgs, byts)
		}
		found := map[int]bool{}
		for idx := 0; idx <= maxIdx; idx++ {
			for _, cmd := range []int{sys.MSG_STAT, sys.MSG_STAT_ANY} {
				id, err := sys.MsgctlStat(idx, cmd, &ds0)
				if err == nil {
					found[id] = true
				}
			}
		}
		for _, r := range rows {
			if os.Geteuid() == 0 && !found[atoi(r["msqid"])] {
				t.Fatalf("MSG_STAT/MSG_STAT_ANY missed queue %s", r["msqid"])
			}
		}
		if !found[q.ID()] {
			t.Fatalf("MSG_STAT did not find our queue %d", q.ID())
		}
	})

	t.Run("MSG-24", func(t *testing.T) {
		q := tmpQueue(t)
		const perSender, size = 300, 100
		var procs []*ipctest.Proc
		for s := range 3 {
			procs = append(procs, ipctest.Start(t, "msg-sender",
				ipctest.WithArgs(strconv.Itoa(q.ID()), strconv.Itoa(s*perSender), strconv.Itoa(perSender), strconv.Itoa(size))))
		}
		seen := make([]bool, 3*perSender)
		var mu sync.Mutex
		var wg sync.WaitGroup
		errs := make(chan error, 3)
		for r := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf, want := make([]byte, size), make([]byte, size)
				for range perSender {
					n, _, err := q.Recv(ctx, buf, UpTo(int64(r+1)+2)) // every receiver takes any type 1..3
					if err != nil || n != size {
						errs <- fmt.Errorf("recv: %d %v", n, err)
						return
					}
					i := int(binary.LittleEndian.Uint32(buf))
					fill(want, i)
					mu.Lock()
					dup := i >= len(seen) || seen[i]
					if !dup {
						seen[i] = true
					}
					mu.Unlock()
					if dup || !bytes.Equal(buf, want) {
						errs <- fmt.Errorf("message %d corrupt or duplicated", i)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for _, p := range procs {
			p.MustSucceed()
		}
		if i := slices.Index(seen, false); i >= 0 {
			t.Fatalf("message %d lost", i)
		}
	})
}

var ds0 sys.MsqidDS

// checkCompatTimes reads object id's times through a 32-bit IPC_STAT (the compat
// *id64_ds structures, where each time is a low and a high word) and requires every
// high word to be 0 and every low word to equal the 64-bit time (y2038 rows).
func checkCompatTimes(t *testing.T, kind string, id int, want ...time.Time) {
	t.Helper()
	bin := build386(t, "./testdata/msgrcv32")
	out, err := exec.Command(bin, "stat", kind, strconv.Itoa(id)).CombinedOutput()
	if err != nil {
		t.Fatalf("32-bit IPC_STAT: %v: %s", err, out)
	}
	fields := strings.Fields(string(out))
	if len(fields) != len(want) {
		t.Fatalf("32-bit IPC_STAT printed %q", out)
	}
	for i, f := range fields {
		var low, high uint32
		if _, err := fmt.Sscanf(f, "%d/%d", &low, &high); err != nil {
			t.Fatal(err)
		}
		var w int64
		if !want[i].IsZero() {
			w = want[i].Unix()
		}
		if high != 0 || int64(low) != w {
			t.Fatalf("time %d: low %d high %d, want %d and 0", i, low, high, w)
		}
	}
}

// build386 builds the command in dir for GOARCH=386 and returns its path, skipping the
// test where that is impossible (no go command, no 32-bit support on amd64).
func build386(t *testing.T, dir string) string {
	t.Helper()
	if runtime.GOARCH != "amd64" {
		t.Skip("32-bit compat rows run on amd64 (386 binaries under IA32 emulation)")
	}
	goCmd, err := exec.LookPath("go") // go test puts its own go first in PATH
	if err != nil {
		t.Skip("needs the go command to build a 386 test binary")
	}
	bin := filepath.Join(t.TempDir(), "fixture386")
	cmd := exec.Command(goCmd, "build", "-o", bin, dir)
	cmd.Env = append(os.Environ(), "GOARCH=386", "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("cannot build a 386 binary: %v: %s", err, out)
	}
	if out, err := exec.Command(bin, "-1", "0").CombinedOutput(); err != nil && !strings.Contains(string(out), "errno") {
		t.Skipf("cannot run a 386 binary (no IA32 emulation?): %v: %s", err, out)
	}
	return bin
}

// runMsgNobody runs msg-nobody-ops as another user: EACCES for send on a 0444 queue,
// receive and IPC_STAT on a mode-0 queue; EPERM for IPC_RMID and IPC_SET.
func runMsgNobody(t *testing.T) {
	t.Helper()
	ipctest.RequireRoot(t)
	ro := tmpQueue(t, WithMode(0o444), AllowWorld())
	closed := tmpQueue(t, WithMode(0))
	must(t, closed.TrySend(1, []byte("secret")))
	ipctest.Start(t, "msg-nobody-ops", ipctest.WithArgs(strconv.Itoa(ro.ID()), strconv.Itoa(closed.ID())),
		ipctest.AsUser(ipctest.Nobody)).MustSucceed()
}

func mustRows(t *testing.T, kind string) []map[string]string {
	t.Helper()
	rows, err := procRows(kind)
	must(t, err)
	return rows
}

// waitBlocked gives a goroutine that is about to block time to do so, failing if it
// returns instead. The kernel has no waiter count for queues; a blocked thread shows
// as sleeping in /proc, which is what is checked here.
func waitBlocked(t *testing.T, done chan error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("call returned early: %v", err)
		default:
		}
		if sleepingInIPC() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("call did not block")
}

// sleepingInIPC reports whether some thread of this process sleeps in a System V call
// (its wchan names do_msgrcv, do_msgsnd, do_semtimedop or a futex wait).
func sleepingInIPC() bool {
	for _, tid := range threadIDs() {
		w, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/wchan", tid))
		if err != nil {
			continue
		}
		s := string(w)
		if s == "do_msgrcv" || s == "do_msgsnd" || s == "do_semtimedop" || s == "futex_wait_queue" || s == "futex_do_wait" {
			return true
		}
	}
	return false
}

// stormer sends SIGURG and wait.Signal to every thread of this process in the
// background: n rounds as fast as it can, then a round every 200 µs, until stopped.
type stormer struct {
	count atomic.Int64
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

func storm(t *testing.T, n int) *stormer {
	s := &stormer{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for i := 0; ; i++ {
			select {
			case <-s.stop:
				return
			default:
			}
			for _, tid := range threadIDs() {
				sig := unix.SIGURG
				if i%2 == 1 {
					sig = wait.Signal
				}
				if unix.Tgkill(os.Getpid(), tid, sig) == nil {
					s.count.Add(1)
				}
			}
			if i >= n {
				time.Sleep(200 * time.Microsecond)
			}
		}
	}()
	t.Cleanup(func() { s.Stop() })
	return s
}

// Sent returns how many signals have been sent so far.
func (s *stormer) Sent() int { return int(s.count.Load()) }

// Stop ends the storm and returns how many signals it sent.
func (s *stormer) Stop() int {
	s.once.Do(func() { close(s.stop); <-s.done })
	return s.Sent()
}
