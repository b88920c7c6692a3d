package sysv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

func tmpSemSet(t testing.TB, n int, opts ...Option) *SemSet {
	t.Helper()
	s, err := CreateSemSet(Private, n, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Remove(); s.Close() })
	return s
}

var (
	_ = ipctest.Helper("sem-nobody", func(args []string) int {
		// args: key of a mode-0 set, id of a mode-0444 set
		check := func(what string, err, want error) bool {
			if !errors.Is(err, want) {
				fmt.Printf("%s: got %v, want %v\n", what, err, want)
				return false
			}
			return true
		}
		_, err := OpenSemSet(Key(atoi(args[0])), WithOwner(0), WithMode(0))
		ok := check("open mode-0 set", err, unix.EACCES)
		ro, err := OpenSemSetID(atoi(args[1]), WithOwner(0), WithMode(0o444), AllowWorld(), ReadOnly())
		if err != nil {
			fmt.Println("open read-only set:", err)
			return 1
		}
		ok = check("op without alter permission", ro.TryOp(SemOp{Num: 0, Op: 1}), unix.EACCES) && ok
		ok = check("non-owner IPC_SET", ro.SetPerm(0, 0, 0o400), unix.EPERM) && ok
		ok = check("non-owner IPC_RMID", ro.Remove(), unix.EPERM) && ok
		if v, err := ro.Get(0); err != nil || v != 0 {
			fmt.Println("GETVAL with read permission:", v, err)
			ok = false
		}
		closed, err := OpenSemSetID(atoi(args[2]), WithOwner(0), WithMode(0))
		if err != nil {
			fmt.Println("open mode-0 set by id:", err)
			return 1
		}
		_, err = closed.Stat()
		ok = check("IPC_STAT without permission", err, unix.EACCES) && ok
		if !ok {
			return 1
		}
		return 0
	})
	_ = ipctest.Helper("sem-mutex", func(args []string) int {
		// SEM-07: sem 0 is a mutex, sem 1 counts the processes inside.
		s, err := OpenSemSetID(atoi(args[0]))
		if err != nil {
			fmt.Println(err)
			return 1
		}
		ctx := context.Background()
		for range atoi(args[1]) {
			if err := s.Op(ctx, SemOp{Num: 0, Op: -1, Flags: Undo}); err != nil {
				fmt.Println("down:", err)
				return 1
			}
			if err := s.TryOp(SemOp{Num: 1, Op: 1}); err != nil {
				fmt.Println(err)
				return 1
			}
			runtime.Gosched()
			if v, _ := s.Get(1); v != 1 {
				fmt.Println("mutual exclusion broken: inside =", v)
				return 1
			}
			if err := s.TryOp(SemOp{Num: 1, Op: -1}); err != nil {
				fmt.Println(err)
				return 1
			}
			if err := s.Op(ctx, SemOp{Num: 0, Op: 1, Flags: Undo}); err != nil {
				fmt.Println("up:", err)
				return 1
			}
		}
		return 0
	})
	_ = ipctest.Helper("sem-thread-undo", func(args []string) int {
		// SEM-08: take sem 0 with SEM_UNDO on a thread that then exits.
		s, err := OpenSemSetID(atoi(args[0]))
		if err != nil {
			fmt.Println(err)
			return 1
		}
		done := make(chan error)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
			done <- s.TryOp(SemOp{Num: 0, Op: -1, Flags: Undo})
		}()
		if err := <-done; err != nil {
			fmt.Println(err)
			return 1
		}
		// let the thread exit, then report
		time.Sleep(10 * time.Millisecond)
		ipctest.Signal()
		ipctest.Await()
		return 0
	})
	_ = ipctest.Helper("sem-hold", func(args []string) int {
		// SEM-14/18: apply args[1] (an op) with SEM_UNDO, signal, then wait or exit.
		s, err := OpenSemSetID(atoi(args[0]))
		if err != nil {
			fmt.Println(err)
			return 1
		}
		op, _ := strconv.Atoi(args[1])
		rounds := atoi(args[2])
		for range rounds {
			if err := s.Op(context.Background(), SemOp{Num: 0, Op: int16(-op), Flags: Undo}); err != nil {
				fmt.Println(err)
				return 1
			}
			if err := s.Op(context.Background(), SemOp{Num: 0, Op: int16(op), Flags: Undo}); err != nil {
				fmt.Println(err)
				return 1
			}
		}
		if err := s.Op(context.Background(), SemOp{Num: 0, Op: int16(-op), Flags: Undo}); err != nil {
			fmt.Println(err)
			return 1
		}
		if len(args) > 3 {
			ipctest.Signal()
			ipctest.Await() // killed here
		}
		return 0
	})
)

func TestSemSet(t *testing.T) {
	ctx := context.Background()
	limits, err := ReadLimits()
	must(t, err)

	t.Run("SEM-01", func(t *testing.T) {
		s := tmpSemSet(t, 3)
		st, err := s.Stat()
		must(t, err)
		if st.Len != 3 || s.Len() != 3 || st.Perm.CUID != uint32(os.Geteuid()) || st.Perm.Mode != 0o600 {
			t.Fatalf("stat: %+v", st)
		}
	})

	t.Run("SEM-02", func(t *testing.T) {
		key := newKey()
		s, err := CreateSemSet(key, 3, WithMode(0))
		must(t, err)
		defer s.Close()
		defer s.Remove()
		_, err = CreateSemSet(key, 3)
		wantErr(t, err, unix.EEXIST)
		_, err = OpenSemSet(newKey())
		wantErr(t, err, unix.ENOENT)
		_, err = CreateSemSet(Private, -1)
		wantErr(t, err, ipc.ErrInvalid, unix.EINVAL)
		_, err = CreateSemSet(Private, limits.SemMsl+1)
		wantErr(t, err, unix.EINVAL)
		_, err = sys.Semget(int32(key), 4, 0)
		wantErr(t, err, unix.EINVAL)
		runSemNobody(t, key)
	})

	t.Run("SEM-03", func(t *testing.T) {
		requireNamespace(t)
		used := len(mustRows(t, "sem"))
		setSysctl(t, "sem", fmt.Sprintf("%d %d %d %d", limits.SemMsl, limits.SemMns, limits.SemOpm, used+2))
		a := tmpSemSet(t, 1)
		b := tmpSemSet(t, 1)
		_, _ = a, b
		_, err := CreateSemSet(Private, 1)
		wantErr(t, err, unix.ENOSPC)
	})

	t.Run("SEM-04", func(t *testing.T) {
		s := tmpSemSet(t, 3)
		must(t, s.Op(ctx, SemOp{0, 2, 0}, SemOp{1, 3, 0}, SemOp{2, 1, 0}))
		// all or nothing: the third op cannot proceed, so none is applied
		wantErr(t, s.TryOp(SemOp{0, -1, 0}, SemOp{1, -1, 0}, SemOp{2, -2, 0}), ipc.ErrWouldBlock, unix.EAGAIN)
		vals := make([]uint16, 3)
		must(t, s.GetAll(vals))
		if vals[0] != 2 || vals[1] != 3 || vals[2] != 1 {
			t.Fatalf("values %v", vals)
		}
		// semtimedop (raw, with a timeout) applies a multi-op array atomically too
		ts := unix.NsecToTimespec(int64(time.Second))
		must(t, sys.Semtimedop(s.ID(), []SemOp{{0, -2, 0}, {1, -1, 0}, {2, 4, 0}}, &ts))
		must(t, s.GetAll(vals))
		if vals[0] != 0 || vals[1] != 2 || vals[2] != 5 {
			t.Fatalf("values after semtimedop %v", vals)
		}
	})

	t.Run("SEM-05", func(t *testing.T) {
		s := tmpSemSet(t, 2)
		many := make([]SemOp, limits.SemOpm+1)
		wantErr(t, s.TryOp(many...), unix.E2BIG)
		wantErr(t, s.TryOp(), ipc.ErrInvalid, unix.EINVAL)
		wantErr(t, sys.Semtimedop[SemOp](s.ID(), nil, nil), unix.EINVAL)
		wantErr(t, sys.Semtimedop(-1, []SemOp{{0, 1, 0}}, nil), unix.EINVAL)
		must(t, s.Set(0, limits.SemVmx))
		wantErr(t, s.TryOp(SemOp{0, 1, 0}), unix.ERANGE)
		wantErr(t, s.TryOp(SemOp{65535, 1, 0}), unix.EFBIG)
		wantErr(t, s.TryOp(SemOp{2, 1, 0}), unix.EFBIG)
		wantErr(t, s.TryOp(SemOp{0, 0, NoWait}), unix.EAGAIN)
		wantErr(t, s.Op(ctx, SemOp{1, -1, NoWait}), unix.EAGAIN, ipc.ErrWouldBlock)
		// semtimedop's timeout is EAGAIN, not ETIMEDOUT, at the raw layer...
		ts := unix.NsecToTimespec(int64(5 * time.Millisecond))
		wantErr(t, sys.Semtimedop(s.ID(), []SemOp{{0, 0, 0}}, &ts), unix.EAGAIN)
		wantErr(t, sys.Semtimedop(s.ID(), []SemOp{{1, -1, 0}}, &ts), unix.EAGAIN)
		// ...and a deadline in the API
		for _, op := range []SemOp{{0, 0, 0}, {1, -1, 0}} {
			dctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
			err := s.Op(dctx, op)
			cancel()
			wantErr(t, err, context.DeadlineExceeded)
			if errors.Is(err, unix.ETIMEDOUT) || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, ipc.ErrWouldBlock) {
				t.Fatalf("deadline reported as %v", err)
			}
		}
		// invalid flags are refused before the call; a bad timeout pointer cannot be
		// expressed (*unix.Timespec)
		wantErr(t, s.TryOp(SemOp{0, 1, 0x7}), ipc.ErrInvalid)
		// no alter permission (as nobody)
		if os.Geteuid() == 0 {
			key := newKey()
			s, err := CreateSemSet(key, 1, WithMode(0))
			must(t, err)
			defer s.Close()
			defer s.Remove()
			runSemNobody(t, key)
		}
	})

	t.Run("SEM-06", func(t *testing.T) {
		for _, op := range []SemOp{{0, 0, 0}, {1, -1, 0}} {
			s, err := CreateSemSet(Private, 2)
			must(t, err)
			must(t, s.Set(0, 1))
			// raw: a caught signal interrupts the blocked call with EINTR
			wantErr(t, ipctest.Interrupted(unix.SIGURG, func() error { return sys.Semtimedop(s.ID(), []SemOp{op}, nil) }), unix.EINTR)
			// removal wakes the blocked call with EIDRM
			done := make(chan error, 1)
			go func() { done <- s.Op(ctx, op) }()
			eventually(t, "waiter", func() bool { n, z, _ := s.Waiters(int(op.Num)); return n+z == 1 })
			must(t, s.Remove())
			wantErr(t, <-done, unix.EIDRM, ipc.ErrRemoved)
			s.Close()
		}
	})

	t.Run("SEM-07", func(t *testing.T) {
		s := tmpSemSet(t, 2)
		must(t, s.Set(0, 1))
		a := ipctest.Start(t, "sem-mutex", ipctest.WithArgs(strconv.Itoa(s.ID()), "200"))
		b := ipctest.Start(t, "sem-mutex", ipctest.WithArgs(strconv.Itoa(s.ID()), "200"))
		a.MustSucceed()
		b.MustSucceed()
		if v, _ := s.Get(0); v != 1 {
			t.Fatalf("mutex value %d after both finished", v)
		}
	})

	t.Run("SEM-08", func(t *testing.T) {
		s := tmpSemSet(t, 1)
		must(t, s.Set(0, 1))
		p := ipctest.Start(t, "sem-thread-undo", ipctest.WithArgs(strconv.Itoa(s.ID())))
		p.Await()
		if v, _ := s.Get(0); v != 0 {
			t.Fatalf("undo applied when the thread exited: value %d", v)
		}
		p.Signal()
		p.MustSucceed()
		if v, _ := s.Get(0); v != 1 {
			t.Fatalf("undo not applied at process exit: value %d", v)
		}
	})

	t.Run("SEM-09", func(t *testing.T) {
		s, err := CreateSemSet(Private, 3)
		must(t, err)
		defer s.Close()
		// SETALL / GETALL
		must(t, s.SetAll([]uint16{4, 5, 6}))
		vals := make([]uint16, 3)
		must(t, s.GetAll(vals))
		if vals[0] != 4 || vals[1] != 5 || vals[2] != 6 {
			t.Fatalf("GETALL %v", vals)
		}
		// SETVAL / GETVAL
		must(t, s.Set(1, 9))
		if v, _ := s.Get(1); v != 9 {
			t.Fatalf("GETVAL %d", v)
		}
		// GETPID after an op
		must(t, s.TryOp(SemOp{2, -1, 0}))
		if pid, _ := s.LastPID(2); pid != os.Getpid() {
			t.Fatalf("GETPID %d", pid)
		}
		// GETNCNT / GETZCNT with a waiter of each kind
		done := make(chan error, 2)
		go func() { done <- s.Op(ctx, SemOp{0, -10, 0}) }()
		go func() { done <- s.Op(ctx, SemOp{0, 0, 0}) }()
		eventually(t, "two waiters", func() bool { n, z, _ := s.Waiters(0); return n == 1 && z == 1 })
		// IPC_STAT / IPC_SET
		must(t, s.SetPerm(uint32(os.Geteuid()), uint32(os.Getegid()), 0o640))
		st, err := s.Stat()
		must(t, err)
		if st.Perm.Mode&0o777 != 0o640 || st.Len != 3 {
			t.Fatalf("IPC_STAT after IPC_SET: %+v", st)
		}
		// IPC_INFO / SEM_INFO / SEM_STAT
		var info sys.Seminfo
		_, err = sys.SemctlInfo(sys.IPC_INFO, &info)
		must(t, err)
		if int(info.Semmsl) != limits.SemMsl || int(info.Semopm) != limits.SemOpm || int(info.Semvmx) != limits.SemVmx {
			t.Fatalf("IPC_INFO %+v", info)
		}
		maxIdx, err := sys.SemctlInfo(sys.SEM_INFO, &info)
		must(t, err)
		if int(info.Semusz) != len(mustRows(t, "sem")) {
			t.Fatalf("SEM_INFO used sets %d, /proc has %d", info.Semusz, len(mustRows(t, "sem")))
		}
		if !semStatFinds(maxIdx, sys.SEM_STAT, s.ID()) {
			t.Fatalf("SEM_STAT did not find set %d", s.ID())
		}
		// IPC_RMID wakes the waiters; then semop on the id fails with EINVAL
		must(t, s.Remove())
		wantErr(t, <-done, ipc.ErrRemoved)
		wantErr(t, <-done, ipc.ErrRemoved)
		wantErr(t, sys.Semtimedop(s.ID(), []SemOp{{0, 1, 0}}, nil), unix.EINVAL)
	})

	t.Run("SEM-10", func(t *testing.T) {
		key := newKey()
		s, err := CreateSemSet(key, 1, WithMode(0))
		must(t, err)
		defer s.Close()
		defer s.Remove()
		runSemNobody(t, key)
	})

	t.Run("SEM-11", func(t *testing.T) {
		var ds sys.SemidDS
		_, err := sys.SemctlStat(-1, unix.IPC_STAT, &ds)
		wantErr(t, err, unix.EINVAL)
		s := tmpSemSet(t, 2)
		wantErr(t, s.GetAll(make([]uint16, 1)), ipc.ErrInvalid)
		wantErr(t, s.SetAll(make([]uint16, 3)), ipc.ErrInvalid)
		// IPC_SET's buffer belongs to SetPerm and cannot be bad
	})

	t.Run("SEM-12", func(t *testing.T) {
		key := newKey()
		s, err := CreateSemSet(key, 1, WithMode(0))
		must(t, err)
		defer s.Close()
		defer s.Remove()
		runSemNobody(t, key)
	})

	t.Run("SEM-13", func(t *testing.T) {
		s := tmpSemSet(t, 2)
		wantErr(t, s.Set(0, -1), unix.ERANGE)
		wantErr(t, s.Set(0, 65535), unix.ERANGE)
		wantErr(t, s.SetAll([]uint16{1, uint16(limits.SemVmx + 1)}), unix.ERANGE)
	})

	t.Run("SEM-14", func(t *testing.T) {
		s := tmpSemSet(t, 1)
		must(t, s.Set(0, 10))
		var ps []*ipctest.Proc
		for i := range 5 {
			ps = append(ps, ipctest.Start(t, "sem-hold", ipctest.WithArgs(strconv.Itoa(s.ID()), strconv.Itoa(i+1), "50")))
		}
		for _, p := range ps {
			p.MustSucceed()
		}
		if v, _ := s.Get(0); v != 10 {
			t.Fatalf("value %d after the undo processes exited, want 10", v)
		}
	})

	t.Run("SEM-15", func(t *testing.T) {
		before := kernelSecondBefore()
		s := tmpSemSet(t, 2)
		st, err := s.Stat()
		must(t, err)
		if !st.OpTime.IsZero() || st.ChangeTime.Before(before) || st.Perm.UID != uint32(os.Geteuid()) || st.Perm.GID != uint32(os.Getegid()) {
			t.Fatalf("IPC_STAT %+v", st)
		}
		must(t, s.Set(1, 7))
		if v, _ := s.Get(1); v != 7 {
			t.Fatalf("GETVAL %d", v)
		}
		must(t, s.TryOp(SemOp{1, -1, 0}))
		if pid, _ := s.LastPID(1); pid != os.Getpid() {
			t.Fatalf("GETPID %d", pid)
		}
		if n, z, err := s.Waiters(1); n != 0 || z != 0 || err != nil {
			t.Fatalf("GETNCNT/GETZCNT %d %d %v", n, z, err)
		}
		if st, _ := s.Stat(); st.OpTime.Before(before) {
			t.Fatalf("otime not set: %+v", st)
		}
	})

	t.Run("SEM-16", func(t *testing.T) {
		s := tmpSemSet(t, 1)
		must(t, s.TryOp(SemOp{0, 1, 0}))
		st, err := s.Stat()
		must(t, err)
		checkCompatTimes(t, "sem", s.ID(), st.OpTime, st.ChangeTime)
	})

	t.Run("SEM-17", func(t *testing.T) {
		s := tmpSemSet(t, 4)
		var info sys.Seminfo
		maxIdx, err := sys.SemctlInfo(sys.SEM_INFO, &info)
		must(t, err)
		rows := mustRows(t, "sem")
		total := 0
		for _, r := range rows {
			total += atoi(r["nsems"])
		}
		if int(info.Semusz) != len(rows) || int(info.Semaem) != total {
			t.Fatalf("SEM_INFO %+v vs /proc: %d sets, %d semaphores", info, len(rows), total)
		}
		if !semStatFinds(maxIdx, sys.SEM_STAT_ANY, s.ID()) {
			t.Fatalf("SEM_STAT_ANY did not find set %d", s.ID())
		}
	})

	t.Run("SEM-18", func(t *testing.T) {
		s := tmpSemSet(t, 1)
		must(t, s.Set(0, 3))
		p := ipctest.Start(t, "sem-hold", ipctest.WithArgs(strconv.Itoa(s.ID()), "2", "0", "hold"))
		p.Await()
		if v, _ := s.Get(0); v != 1 {
			t.Fatalf("holder did not take 2: value %d", v)
		}
		p.Kill()
		_ = p.Wait()
		if v, _ := s.Get(0); v != 3 {
			t.Fatalf("value %d after SIGKILL of the holder, want 3", v)
		}
	})
}

// runSemNobody runs the sem-nobody helper as another user against the mode-0 set with
// key and two fresh sets: EACCES for open, op, IPC_STAT; EPERM for IPC_SET, IPC_RMID.
func runSemNobody(t *testing.T, key Key) {
	t.Helper()
	ipctest.RequireRoot(t)
	ro := tmpSemSet(t, 1, WithMode(0o444), AllowWorld())
	closed := tmpSemSet(t, 1, WithMode(0))
	ipctest.Start(t, "sem-nobody", ipctest.WithArgs(strconv.Itoa(int(key)), strconv.Itoa(ro.ID()), strconv.Itoa(closed.ID())),
		ipctest.AsUser(ipctest.Nobody)).MustSucceed()
}

// semStatFinds reports whether SEM_STAT or SEM_STAT_ANY over indices 0..maxIdx finds id.
func semStatFinds(maxIdx, cmd, id int) bool {
	var ds sys.SemidDS
	for i := 0; i <= maxIdx; i++ {
		if got, err := sys.SemctlStat(i, cmd, &ds); err == nil && got == id {
			return true
		}
	}
	return false
}

func TestSemCancel(t *testing.T) {
	s := tmpSemSet(t, 1)
	const hold = 100 * time.Millisecond
	var lats []latency
	for range 7 {
		lats = append(lats, cancelLatency(t, hold, func(ctx context.Context) error {
			return s.Op(ctx, SemOp{0, -1, 0})
		}))
	}
	checkLatencies(t, hold, lats)
	// a deadline that ends while blocked; the semaphore was never touched
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	wantErr(t, s.Op(ctx, SemOp{0, -1, 0}), context.DeadlineExceeded)
	if v, _ := s.Get(0); v != 0 {
		t.Fatalf("value %d", v)
	}
	// Close interrupts a blocked Op with os.ErrClosed
	h, err := OpenSemSetID(s.ID())
	must(t, err)
	done := make(chan error, 1)
	go func() { done <- h.Op(context.Background(), SemOp{0, -1, 0}) }()
	eventually(t, "waiter", func() bool { n, _, _ := s.Waiters(0); return n == 1 })
	must(t, h.Close())
	wantErr(t, <-done, os.ErrClosed)
}

// TestSemSignalStorm: two goroutines ping-pong through two semaphores, both blocking in
// semop, under thousands of SIGURG and wait.Signal: no error, no lost wake-up.
func TestSemSignalStorm(t *testing.T) {
	for _, cancellable := range []bool{false, true} {
		t.Run(fmt.Sprintf("cancellable=%v", cancellable), func(t *testing.T) { semStorm(t, cancellable) })
	}
}

func semStorm(t *testing.T, cancellable bool) {
	s := tmpSemSet(t, 2)
	const rounds, minSignals = 3000, 2000
	ctx := context.Background()
	if cancellable {
		c, cancel := context.WithCancel(ctx)
		defer cancel()
		ctx = c
	}
	st := storm(t, minSignals)
	// The exchange goes on until both rounds and minSignals are reached (a busy machine
	// may schedule the storm late); last names the final round, set before it starts.
	var last atomic.Int64
	last.Store(-1)
	errc := make(chan error, 1)
	go func() {
		for j := int64(0); ; j++ {
			if err := s.Op(ctx, SemOp{0, -1, 0}); err != nil {
				errc <- err
				return
			}
			if err := s.Op(ctx, SemOp{1, 1, 0}); err != nil {
				errc <- err
				return
			}
			if last.Load() == j {
				errc <- nil
				return
			}
		}
	}()
	start := time.Now()
	for i := int64(0); ; i++ {
		final := (i >= rounds-1 && st.Sent() >= minSignals) || time.Since(start) > 20*time.Second
		if final {
			last.Store(i)
		}
		if err := s.Op(ctx, SemOp{0, 1, 0}); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if err := s.Op(ctx, SemOp{1, -1, 0}); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if final {
			t.Logf("%d round trips", i+1)
			break
		}
	}
	must(t, <-errc)
	sent := st.Stop()
	t.Logf("%d signals during the exchange", sent)
	vals := make([]uint16, 2)
	must(t, s.GetAll(vals))
	if vals[0] != 0 || vals[1] != 0 || sent < minSignals {
		t.Fatalf("values %v after the exchange, %d signals", vals, sent)
	}
}

var _ = strings.TrimSpace
