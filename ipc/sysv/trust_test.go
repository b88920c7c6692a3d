package sysv

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
)

// The squatter pre-creates objects under the victim's keys, world-accessible, and
// waits to be told to leave.
var _ = ipctest.Helper("squatter", func(args []string) int {
	key := Key(atoi(args[0]))
	q, err := CreateQueue(key, WithMode(0o666), AllowWorld())
	if err != nil {
		fmt.Println(err)
		return 1
	}
	s, err := CreateSemSet(key, 1, WithMode(0o666), AllowWorld())
	if err != nil {
		fmt.Println(err)
		return 1
	}
	g, err := CreateSegment(key, 4096, WithMode(0o666), AllowWorld())
	if err != nil {
		fmt.Println(err)
		return 1
	}
	g.Detach()
	ipctest.Signal()
	ipctest.Await()
	q.Remove()
	s.Remove()
	_, _ = unix.SysvShmCtl(g.ID(), unix.IPC_RMID, nil)
	return 0
})

// TestSquatting covers the trust rules (conformance S1, S2): objects another user
// created under our key are refused, whatever the mode.
func TestSquatting(t *testing.T) {
	ipctest.RequireRoot(t)
	key := newKey()
	p := ipctest.Start(t, "squatter", ipctest.WithArgs(strconv.Itoa(int(key))), ipctest.AsUser(ipctest.Nobody))
	p.Await()
	_, err := CreateQueue(key)
	wantErr(t, err, unix.EEXIST)
	_, err = OpenQueue(key)
	wantErr(t, err, ipc.ErrUntrustedObject)
	_, err = OpenQueue(key, WithMode(0o666), AllowWorld()) // a wide mode accepted, still not ours
	wantErr(t, err, ipc.ErrUntrustedObject)
	_, err = OpenSemSet(key)
	wantErr(t, err, ipc.ErrUntrustedObject)
	_, err = OpenSegment(key)
	wantErr(t, err, ipc.ErrUntrustedObject)
	// trusting the squatter explicitly works, and the mode is then the limit
	q, err := OpenQueue(key, WithOwner(ipctest.Nobody), WithMode(0o666), AllowWorld())
	must(t, err)
	q.Close()
	_, err = OpenQueue(key, WithOwner(ipctest.Nobody))
	wantErr(t, err, ipc.ErrUntrustedObject)
	p.Signal()
	p.MustSucceed()
}

func TestModes(t *testing.T) {
	for _, mode := range []os.FileMode{0o666, 0o604, 0o602, 0o620, 0o1600} {
		q, err := CreateQueue(Private, WithMode(mode))
		if mode == 0o1600 {
			// only permission bits are taken; 01600 is 0600
			if err != nil {
				t.Fatalf("mode %#o: %v", mode, err)
			}
			q.Remove()
			q.Close()
			continue
		}
		wantErr(t, err, ipc.ErrInvalid)
	}
	_, err := CreateSemSet(Private, 1, WithMode(0o660))
	wantErr(t, err, ipc.ErrInvalid)
	s, err := CreateSemSet(Private, 1, WithMode(0o660), AllowGroup())
	must(t, err)
	defer s.Close()
	defer s.Remove()
	st, err := s.Stat()
	must(t, err)
	if st.Perm.Mode&0o777 != 0o660 {
		t.Fatalf("mode %#o", st.Perm.Mode)
	}
	// created 0600 by default, in one step: the object never had a wider mode
	q := tmpQueue(t)
	qs, err := q.Stat()
	must(t, err)
	if qs.Perm.Mode&0o777 != 0o600 {
		t.Fatalf("default mode %#o", qs.Perm.Mode)
	}
}

func TestFtok(t *testing.T) {
	dir := t.TempDir()
	must(t, os.Chmod(dir, 0o700))
	f := filepath.Join(dir, "key")
	must(t, os.WriteFile(f, nil, 0o600))
	k1, err := Ftok(f, 'A')
	must(t, err)
	k2, err := Ftok(f, 'B')
	must(t, err)
	var st unix.Stat_t
	must(t, unix.Stat(f, &st))
	if uint32(k1)>>24 != 'A' || uint32(k2)>>24 != 'B' || uint32(k1)&0xffff != uint32(st.Ino&0xffff) {
		t.Fatalf("keys %v %v", k1, k2)
	}
	_, err = Ftok(f, 0)
	wantErr(t, err, ipc.ErrInvalid)
	_, err = Ftok(filepath.Join(dir, "absent"), 'A')
	wantErr(t, err, unix.ENOENT)
	// a file in a world-writable directory could be swapped by anyone
	open := filepath.Join(dir, "open")
	must(t, os.Mkdir(open, 0o777))
	must(t, os.Chmod(open, 0o1777))
	must(t, os.WriteFile(filepath.Join(open, "key"), nil, 0o600))
	_, err = Ftok(filepath.Join(open, "key"), 'A')
	wantErr(t, err, ipc.ErrUntrustedObject)
}
