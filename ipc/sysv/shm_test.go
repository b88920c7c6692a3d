package sysv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
)

func tmpSegment(t testing.TB, size int, opts ...Option) *Segment {
	t.Helper()
	s, err := CreateSegment(Private, size, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Remove(); s.Detach() })
	return s
}

var (
	_ = ipctest.Helper("shm-nobody", func(args []string) int {
		// args: key of a mode-0 segment, id of a root 0600 segment
		ok := true
		check := func(what string, err, want error) {
			if !errors.Is(err, want) {
				fmt.Printf("%s: got %v, want %v\n", what, err, want)
				ok = false
			}
		}
		key := Key(atoi(args[0]))
		for _, acc := range []os.FileMode{0o400, 0o200, 0o600} {
			_, err := OpenSegment(key, WithAccess(acc), WithOwner(0), WithMode(0))
			check(fmt.Sprintf("open mode-0 segment with access %#o", acc), err, unix.EACCES)
		}
		id := atoi(args[1])
		var ds unix.SysvShmDesc
		_, err := unix.SysvShmCtl(id, unix.IPC_STAT, &ds)
		check("IPC_STAT of a root 0600 segment", err, unix.EACCES)
		_, err = unix.SysvShmAttach(id, 0, 0)
		check("shmat of a root 0600 segment", err, unix.EACCES)
		for _, c := range []struct {
			name string
			cmd  int
		}{{"IPC_RMID", unix.IPC_RMID}, {"IPC_SET", unix.IPC_SET}, {"SHM_LOCK", sys.SHM_LOCK}, {"SHM_UNLOCK", sys.SHM_UNLOCK}} {
			_, err := unix.SysvShmCtl(id, c.cmd, &ds)
			check(c.name+" of a root segment", err, unix.EPERM)
		}
		_, err = CreateSegment(Private, 2<<20, HugePages())
		check("SHM_HUGETLB unprivileged", err, unix.EPERM)
		if !ok {
			return 1
		}
		return 0
	})
	_ = ipctest.Helper("shm-fault", func(args []string) int {
		// args: id, mode ("rdonly": write to a read-only attachment; "detached":
		// write after shmdt). Either must die of SIGSEGV.
		id := atoi(args[0])
		flags := 0
		if args[1] == "rdonly" {
			flags = unix.SHM_RDONLY
		}
		b, err := unix.SysvShmAttach(id, 0, flags)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		if args[1] == "detached" {
			if err := unix.SysvShmDetach(b); err != nil {
				fmt.Println(err)
				return 1
			}
		}
		b[0] = 1 // faults
		fmt.Println("write did not fault")
		return 1
	})
	_ = ipctest.Helper("shm-remap", func([]string) int {
		page := os.Getpagesize()
		var wg sync.WaitGroup
		for range 200 {
			id, err := unix.SysvShmGet(int(Private), 4*page, unix.IPC_CREAT|0o600)
			if err != nil {
				fmt.Println(err)
				return 1
			}
			b, err := unix.SysvShmAttach(id, 0, 0)
			if err != nil {
				fmt.Println(err)
				return 1
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = sys.RemapFilePages(b, 0, page, 1)
			}()
			_, _ = unix.SysvShmCtl(id, unix.IPC_RMID, nil)
			wg.Wait()
			b[0] = 1 // still mapped and usable
		}
		return 0
	})
	_ = ipctest.Helper("shm-peer", func(args []string) int {
		// Attach by id, check the parent's pattern, write ours, bump the counter,
		// report, wait, detach.
		s, err := OpenSegmentID(atoi(args[0]))
		if err != nil {
			fmt.Println(err)
			return 1
		}
		got := make([]byte, 5)
		if _, err := s.ReadAt(got, 0); err != nil || string(got) != "hello" {
			fmt.Printf("read %q %v\n", got, err)
			return 1
		}
		if _, err := s.WriteAt([]byte("world"), 8); err != nil {
			fmt.Println(err)
			return 1
		}
		w, err := s.Uint64(64)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		for range 1000 {
			w.Add(1)
		}
		ipctest.Signal()
		ipctest.Await()
		if err := s.Detach(); err != nil {
			fmt.Println(err)
			return 1
		}
		ipctest.Signal()
		ipctest.Await()
		return 0
	})
)

// segFault runs shm-fault and requires it to die of SIGSEGV.
func segFault(t *testing.T, id int, mode string) {
	t.Helper()
	p := ipctest.Start(t, "shm-fault", ipctest.WithArgs(strconv.Itoa(id), mode))
	err := p.Wait()
	if err == nil || !strings.Contains(p.Output(), "SIGSEGV") {
		t.Fatalf("%s write: exit %v, output:\n%s", mode, err, p.Output())
	}
}

func TestSegment(t *testing.T) {
	limits, err := ReadLimits()
	must(t, err)
	page := os.Getpagesize()

	t.Run("SHM-01", func(t *testing.T) {
		key := newKey()
		_, err := OpenSegment(key)
		wantErr(t, err, unix.ENOENT)
		s, err := CreateSegment(key, page)
		must(t, err)
		defer s.Detach()
		defer s.Remove()
		_, err = CreateSegment(key, page)
		wantErr(t, err, unix.EEXIST)
		_, err = CreateSegment(Private, 0)
		wantErr(t, err, ipc.ErrInvalid, unix.EINVAL)
		_, err = unix.SysvShmGet(int(Private), 0, unix.IPC_CREAT|0o600)
		wantErr(t, err, unix.EINVAL)
		_, err = unix.SysvShmGet(int(key), 2*page, 0o600)
		wantErr(t, err, unix.EINVAL)
		// no permission and SHM_HUGETLB unprivileged: as nobody
		runShmNobody(t)
		if nr, _ := os.ReadFile("/proc/sys/vm/nr_hugepages"); strings.TrimSpace(string(nr)) == "0" && os.Geteuid() == 0 {
			_, err = CreateSegment(Private, 2<<20, HugePages())
			wantErr(t, err, unix.ENOMEM)
		} else {
			t.Log("hugetlb-without-pages case skipped: huge pages are configured or not root")
		}
		if inPrivateNamespace() {
			setSysctl(t, "shmmax", strconv.Itoa(1<<20))
			_, err = CreateSegment(Private, 2<<20)
			wantErr(t, err, unix.EINVAL)
		} else {
			t.Logf("size > SHMMAX (%d) skipped: needs a private namespace to lower shmmax", limits.ShmMax)
		}
	})

	t.Run("SHM-02", func(t *testing.T) {
		requireNamespace(t)
		used := len(mustRows(t, "shm"))
		setSysctl(t, "shmmni", strconv.Itoa(used+2))
		tmpSegment(t, page)
		tmpSegment(t, page)
		_, err := CreateSegment(Private, page)
		wantErr(t, err, unix.ENOSPC)
	})

	t.Run("SHM-03", func(t *testing.T) { runShmNobody(t) })

	t.Run("SHM-04", func(t *testing.T) {
		requireNamespace(t)
		const want = 5151
		must(t, os.WriteFile("/proc/sys/kernel/shm_next_id", []byte(strconv.Itoa(want)), 0))
		s := tmpSegment(t, page)
		if s.ID() != want {
			t.Fatalf("id %d, want %d", s.ID(), want)
		}
		must(t, os.WriteFile("/proc/sys/kernel/shm_next_id", []byte(strconv.Itoa(want)), 0))
		if s2 := tmpSegment(t, page); s2.ID() == want {
			t.Fatal("second segment got the id in use")
		}
	})

	t.Run("SHM-05", func(t *testing.T) {
		s := tmpSegment(t, page)
		// NULL address: what CreateSegment did
		if len(s.Bytes()) != page {
			t.Fatalf("attached %d bytes", len(s.Bytes()))
		}
		// an aligned address: find a free one, then attach there
		probe, err := unix.SysvShmAttach(s.ID(), 0, 0)
		must(t, err)
		addr := sys.MemAddr(probe)
		must(t, unix.SysvShmDetach(probe))
		at, err := unix.SysvShmAttach(s.ID(), addr, 0)
		must(t, err)
		if sys.MemAddr(at) != addr {
			t.Fatalf("attached at %#x, asked %#x", sys.MemAddr(at), addr)
		}
		must(t, unix.SysvShmDetach(at))
		// SHM_RND rounds down to SHMLBA (a page here)
		rnd, err := unix.SysvShmAttach(s.ID(), addr+100, unix.SHM_RND)
		must(t, err)
		if sys.MemAddr(rnd) != addr {
			t.Fatalf("SHM_RND attached at %#x, want %#x", sys.MemAddr(rnd), addr)
		}
		must(t, unix.SysvShmDetach(rnd))
		// SHM_RDONLY: writing faults (in a subprocess); the API hands out a read-only view
		segFault(t, s.ID(), "rdonly")
		ro, err := OpenSegmentID(s.ID(), ReadOnly())
		must(t, err)
		defer ro.Detach()
		copy(s.Bytes(), "shared")
		got := make([]byte, 6)
		if _, err := ro.ReadAt(got, 0); err != nil || string(got) != "shared" {
			t.Fatalf("read-only ReadAt: %q %v", got, err)
		}
		if ro.Bytes() != nil {
			t.Fatal("read-only attachment hands out a writable slice")
		}
		_, err = ro.WriteAt([]byte("x"), 0)
		wantErr(t, err, unix.EACCES)
		_, err = ro.Uint32(0)
		wantErr(t, err, unix.EACCES)
		_, err = View[uint64](ro, 0)
		wantErr(t, err, unix.EACCES)
		if _, err := ro.Load32(0); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("SHM-06", func(t *testing.T) {
		_, err := unix.SysvShmAttach(1<<30, 0, 0)
		wantErr(t, err, unix.EINVAL)
		_, err = OpenSegmentID(1 << 30)
		wantErr(t, err, unix.EINVAL)
		s := tmpSegment(t, page)
		probe, err := unix.SysvShmAttach(s.ID(), 0, 0)
		must(t, err)
		addr := sys.MemAddr(probe)
		must(t, unix.SysvShmDetach(probe))
		_, err = unix.SysvShmAttach(s.ID(), addr+1, 0)
		wantErr(t, err, unix.EINVAL)
		runShmNobody(t) // no permission: EACCES
	})

	t.Run("SHM-07", func(t *testing.T) {
		s := tmpSegment(t, page)
		_, err := unix.SysvShmAttach(s.ID(), 1, unix.SHM_RND|sys.SHM_REMAP)
		wantErr(t, err, unix.EINVAL)
	})

	t.Run("SHM-08", func(t *testing.T) {
		s := tmpSegment(t, 4*page)
		b, err := unix.SysvShmAttach(s.ID(), 0, 0)
		must(t, err)
		// split and re-merge the mapping
		must(t, unix.Mprotect(b[page:2*page], unix.PROT_READ))
		must(t, unix.Mprotect(b[2*page:3*page], unix.PROT_READ))
		must(t, unix.Mprotect(b[page:3*page], unix.PROT_READ|unix.PROT_WRITE))
		must(t, unix.SysvShmDetach(b))
		st, err := s.Stat()
		must(t, err)
		if st.Attached != 1 { // only s itself
			t.Fatalf("nattch %d after detach, want 1", st.Attached)
		}
	})

	t.Run("SHM-09", func(t *testing.T) {
		before := kernelSecondBefore()
		s := tmpSegment(t, 3*page)
		copy(s.Bytes(), "hello")
		st, err := s.Stat()
		must(t, err)
		if st.Size != 3*page || st.CreatorPID != os.Getpid() || st.ChangeTime.Before(before) || st.Attached != 1 {
			t.Fatalf("IPC_STAT %+v", st)
		}
		// SHM_STAT by index gives the same
		var info sys.ShmInfo
		maxIdx, err := sys.ShmctlSHMInfo(&info)
		must(t, err)
		found := false
		for i := 0; i <= maxIdx && !found; i++ {
			var ds unix.SysvShmDesc
			if id, err := unix.SysvShmCtl(i, sys.SHM_STAT, &ds); err == nil && id == s.ID() {
				found = segStat(&ds) == st
			}
		}
		if !found {
			t.Fatal("SHM_STAT disagrees with IPC_STAT")
		}
		// nattch across another process's attach and detach
		p := ipctest.Start(t, "shm-peer", ipctest.WithArgs(strconv.Itoa(s.ID())))
		p.Await()
		if st, _ := s.Stat(); st.Attached != 2 {
			t.Fatalf("nattch %d with the peer attached", st.Attached)
		}
		p.Signal()
		p.Await()
		if st, _ := s.Stat(); st.Attached != 1 {
			t.Fatalf("nattch %d after the peer detached", st.Attached)
		}
		p.Signal()
		p.MustSucceed()
	})

	t.Run("SHM-10", func(t *testing.T) {
		var ds unix.SysvShmDesc
		_, err := unix.SysvShmCtl(1<<30, unix.IPC_STAT, &ds)
		wantErr(t, err, unix.EINVAL)
		s, err := CreateSegment(Private, page)
		must(t, err)
		other, err := OpenSegmentID(s.ID())
		must(t, err)
		must(t, s.Remove())
		must(t, s.Detach())
		must(t, other.Detach())
		_, err = unix.SysvShmCtl(s.ID(), unix.IPC_STAT, &ds)
		wantErr(t, err, unix.EINVAL)
		// bad STAT/SET buffers cannot be expressed; EACCES and EPERM as nobody:
		runShmNobody(t)
	})

	t.Run("SHM-11", func(t *testing.T) {
		tmpSegment(t, page)
		var info sys.Shminfo
		_, err := sys.ShmctlIPCInfo(&info)
		must(t, err)
		if info.Shmmax != limits.ShmMax || info.Shmall != limits.ShmAll || int(info.Shmmni) != limits.ShmMni {
			t.Fatalf("IPC_INFO %+v vs %+v", info, limits)
		}
		var si sys.ShmInfo
		maxIdx, err := sys.ShmctlSHMInfo(&si)
		must(t, err)
		rows := mustRows(t, "shm")
		if int(si.UsedIDs) != len(rows) {
			t.Fatalf("SHM_INFO used_ids %d, /proc has %d", si.UsedIDs, len(rows))
		}
		ids := map[string]bool{}
		for i := 0; i <= maxIdx; i++ {
			var ds unix.SysvShmDesc
			if id, err := unix.SysvShmCtl(i, sys.SHM_STAT_ANY, &ds); err == nil {
				ids[strconv.Itoa(id)] = true
			}
		}
		for _, r := range rows {
			if !ids[r["shmid"]] {
				t.Fatalf("SHM_STAT_ANY missed %s", r["shmid"])
			}
		}
	})

	t.Run("SHM-12", func(t *testing.T) {
		// remap_file_pages on an attachment racing IPC_RMID and re-creation: the
		// kernel must neither crash nor corrupt (the call itself may fail). In a
		// subprocess, since remapped pages keep a segment attached until exit.
		ipctest.Start(t, "shm-remap").MustSucceed()
	})

	t.Run("SHM-13", func(t *testing.T) {
		s := tmpSegment(t, page)
		h, err := OpenSegmentID(s.ID())
		must(t, err)
		must(t, h.Detach())
		st, err := s.Stat()
		must(t, err)
		checkCompatTimes(t, "shm", s.ID(), st.AttachTime, st.DetachTime, st.ChangeTime)
	})

	t.Run("SHM-14", func(t *testing.T) {
		s := tmpSegment(t, page)
		must(t, s.Lock())
		if st, _ := s.Stat(); !st.Locked() {
			t.Fatalf("SHM_LOCK: mode %#o", st.Perm.Mode)
		}
		must(t, s.Unlock())
		if st, _ := s.Stat(); st.Locked() {
			t.Fatalf("SHM_UNLOCK: mode %#o", st.Perm.Mode)
		}
		l := tmpSegment(t, page, Locked())
		if st, _ := l.Stat(); !st.Locked() {
			t.Fatal("Locked option did not lock")
		}
	})

	t.Run("SHM-15", func(t *testing.T) {
		s := tmpSegment(t, page, WithMode(0o640))
		st0, err := s.Stat()
		must(t, err)
		must(t, s.SetPerm(st0.Perm.UID, st0.Perm.GID, 0o600))
		st, err := s.Stat()
		must(t, err)
		if st.Perm.Mode&0o777 != 0o600 || st.ChangeTime.Before(st0.ChangeTime) {
			t.Fatalf("after IPC_SET: %+v (before %+v)", st, st0)
		}
		wantErr(t, s.SetPerm(st0.Perm.UID, st0.Perm.GID, 0o606), ipc.ErrInvalid)
	})

	t.Run("SHM-16", func(t *testing.T) {
		s := tmpSegment(t, page)
		segFault(t, s.ID(), "detached")
		h, err := OpenSegmentID(s.ID())
		must(t, err)
		must(t, h.Detach())
		must(t, h.Detach())
		_, err = h.WriteAt([]byte("x"), 0)
		wantErr(t, err, os.ErrClosed)
		_, err = h.ReadAt(make([]byte, 1), 0)
		wantErr(t, err, os.ErrClosed)
		_, err = h.Uint32(0)
		wantErr(t, err, os.ErrClosed)
		_, err = h.Load64(0)
		wantErr(t, err, os.ErrClosed)
		_, err = View[uint32](h, 0)
		wantErr(t, err, os.ErrClosed)
		if h.Bytes() != nil {
			t.Fatal("Bytes after Detach")
		}
		if st, _ := s.Stat(); st.Attached != 1 {
			t.Fatalf("nattch %d, want only the creator's", st.Attached)
		}
	})

	t.Run("SHM-17", func(t *testing.T) {
		s := tmpSegment(t, page)
		wantErr(t, sys.ShmdtAddr(sys.MemAddr(s.Bytes())+uintptr(page)*16), unix.EINVAL)
		wantErr(t, sys.ShmdtAddr(sys.MemAddr(s.Bytes())+1), unix.EINVAL)
	})

	t.Run("SHM-18", func(t *testing.T) {
		s, err := CreateSegment(Private, page)
		must(t, err)
		must(t, s.Remove())
		_, err = s.WriteAt([]byte("still here"), 0)
		must(t, err)
		st, err := s.Stat()
		must(t, err)
		if !st.Removed() || st.Perm.Mode&0o1000 == 0 || st.Attached != 1 {
			t.Fatalf("after IPC_RMID: %+v", st)
		}
		id := s.ID()
		must(t, s.Detach())
		var ds unix.SysvShmDesc
		_, err = unix.SysvShmCtl(id, unix.IPC_STAT, &ds)
		wantErr(t, err, unix.EINVAL)
	})
}

// runShmNobody runs shm-nobody as another user.
func runShmNobody(t *testing.T) {
	t.Helper()
	ipctest.RequireRoot(t)
	key := newKey()
	closed, err := CreateSegment(key, os.Getpagesize(), WithMode(0))
	must(t, err)
	defer closed.Detach()
	defer closed.Remove()
	root := tmpSegment(t, os.Getpagesize())
	ipctest.Start(t, "shm-nobody", ipctest.WithArgs(strconv.Itoa(int(key)), strconv.Itoa(root.ID())),
		ipctest.AsUser(ipctest.Nobody)).MustSucceed()
}

func TestSegmentAccess(t *testing.T) {
	s := tmpSegment(t, 4096)
	// cross-process: pattern, atomic counter
	copy(s.Bytes(), "hello")
	w, err := s.Uint64(64)
	must(t, err)
	p := ipctest.Start(t, "shm-peer", ipctest.WithArgs(strconv.Itoa(s.ID())))
	for range 1000 {
		w.Add(1)
	}
	p.Await()
	eventually(t, "both increments", func() bool { return w.Load() == 2000 })
	if !bytes.Equal(s.Bytes()[8:13], []byte("world")) {
		t.Fatalf("peer's write not seen: %q", s.Bytes()[8:13])
	}
	p.Signal()
	p.Await()
	p.Signal()
	p.MustSucceed()

	// bounds
	_, err = s.ReadAt(make([]byte, 2), 4095)
	wantErr(t, err, ipc.ErrInvalid)
	_, err = s.WriteAt([]byte("x"), -1)
	wantErr(t, err, ipc.ErrInvalid)
	_, err = s.Uint32(2)
	wantErr(t, err, ipc.ErrInvalid)
	_, err = s.Uint64(4092)
	wantErr(t, err, ipc.ErrInvalid)

	// typed views: plain types only
	type header struct {
		Magic uint32
		Flags uint32
		Head  uint64
		Slots [4]uint16
	}
	h, err := View[header](s, 128)
	must(t, err)
	h.Magic = 0xfeed
	if v, _ := s.Load32(128); v != 0xfeed {
		t.Fatalf("view not backed by the segment: %#x", v)
	}
	type padded struct {
		A uint8
		B uint64
	}
	type withPtr struct{ P *int }
	type withInt struct{ N int }
	_, err = View[padded](s, 0)
	wantErr(t, err, ipc.ErrInvalid)
	_, err = View[withPtr](s, 0)
	wantErr(t, err, ipc.ErrInvalid)
	_, err = View[withInt](s, 0)
	wantErr(t, err, ipc.ErrInvalid)
	_, err = View[header](s, 4)
	wantErr(t, err, ipc.ErrInvalid)
	_, err = View[[4096]byte](s, 1)
	wantErr(t, err, ipc.ErrInvalid)

	// squatting: a segment with a wider mode than asked, or another owner, is refused
	key := newKey()
	wide, err := CreateSegment(key, 4096, WithMode(0o640))
	must(t, err)
	defer wide.Detach()
	defer wide.Remove()
	_, err = OpenSegment(key)
	wantErr(t, err, ipc.ErrUntrustedObject)
	_, err = OpenSegment(key, WithOwner(os.Geteuid()+1), WithMode(0o640))
	wantErr(t, err, ipc.ErrUntrustedObject)
	ok, err := OpenSegment(key, WithMode(0o640))
	must(t, err)
	must(t, ok.Detach())
	// S1: world-writable refused without AllowWorld
	_, err = CreateSegment(Private, 4096, WithMode(0o666))
	wantErr(t, err, ipc.ErrInvalid)
	_, err = CreateSegment(Private, 4096, WithMode(0o660))
	wantErr(t, err, ipc.ErrInvalid)
}
