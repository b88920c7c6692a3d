package threads

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// Pin sets every thread, including one started by the runtime afterwards, and the
// restore func gives every thread its old mask back.
func TestPin(t *testing.T) {
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		t.Fatal(err)
	}
	restore, err := Pin(0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { // likely on a new thread: it inherits the mask
		defer close(done)
		buf := make([]byte, 1)
		unix.Read(-1, buf)
	}()
	<-done
	masks := func() (map[int]unix.CPUSet, error) {
		m := map[int]unix.CPUSet{}
		return m, Each(func(tid int) error {
			var s unix.CPUSet
			err := unix.SchedGetaffinity(tid, &s)
			m[tid] = s
			return err
		})
	}
	got, err := masks()
	if err != nil {
		t.Fatal(err)
	}
	for tid, s := range got {
		if s.Count() != 1 || !s.IsSet(0) {
			t.Errorf("thread %d: %d CPUs, CPU 0 %v", tid, s.Count(), s.IsSet(0))
		}
	}
	restore()
	got, err = masks()
	if err != nil {
		t.Fatal(err)
	}
	for tid, s := range got {
		if s != old {
			t.Errorf("thread %d not restored", tid)
		}
	}
	if r, err := Pin(-1); err != nil || r == nil {
		t.Errorf("Pin(-1): %v", err)
	}
}

// Nice sets every thread's nice value, and restore sets 0 back (as root; an
// unprivileged caller may only lower its priority).
func TestNice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("raising priority needs root")
	}
	restore, err := Nice(-5)
	if err != nil {
		t.Fatal(err)
	}
	check := func(want int) {
		t.Helper()
		Each(func(tid int) error {
			prio, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
			if err == nil && 20-prio != want { // getpriority(2) returns 20 − nice
				t.Errorf("thread %d: nice %d, want %d", tid, 20-prio, want)
			}
			return nil
		})
	}
	check(-5)
	restore()
	check(0)
}
