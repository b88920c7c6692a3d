package ipctest_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
)

func TestMain(m *testing.M) { ipctest.Main(m) }

func msg(i uint64) []byte { return binary.BigEndian.AppendUint64(nil, i) }

// run passes n numbered messages through an injector and returns the numbers that
// came out, in order.
func run(t *testing.T, f ipctest.Faults, n uint64) ([]uint64, ipctest.FaultStats) {
	t.Helper()
	in, err := ipctest.NewInjector(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for i := range n {
		for _, d := range in.Apply(msg(i)) {
			out = append(out, binary.BigEndian.Uint64(d.Msg))
		}
	}
	for _, d := range in.Flush() {
		out = append(out, binary.BigEndian.Uint64(d.Msg))
	}
	return out, in.Stats()
}

func TestInjectorReproducible(t *testing.T) {
	f := ipctest.Faults{Seed: ipctest.Seed(t), Loss: 0.1, Dup: 0.05, Reorder: 0.05, Delay: time.Millisecond, DelayProb: 0.1}
	a, sa := run(t, f, 10000)
	b, sb := run(t, f, 10000)
	if !slices.Equal(a, b) || sa != sb {
		t.Fatalf("same seed, different faults: %v / %v", sa, sb)
	}
	f.Seed++
	c, _ := run(t, f, 10000)
	if slices.Equal(a, c) {
		t.Fatal("another seed gave the same faults")
	}
}

// TestInjectorRates checks that each fault happens about as often as asked, and that
// the checker sees exactly what the injector did.
func TestInjectorRates(t *testing.T) {
	const n = 200000
	f := ipctest.Faults{Seed: ipctest.Seed(t), Loss: 0.1, Dup: 0.05, Reorder: 0.05}
	out, st := run(t, f, n)
	t.Log(st)
	near := func(name string, got int, p float64) {
		// Five standard deviations of a binomial count: fails by chance ~1 in 10⁶.
		want := p * n
		if sd := math.Sqrt(n * p * (1 - p)); math.Abs(float64(got)-want) > 5*sd {
			t.Errorf("%s: %d, want %.0f ± %.0f", name, got, want, 5*sd)
		}
	}
	near("lost", st.Lost, f.Loss)
	// Only a message that was not lost can be duplicated (or held back).
	near("duplicated", st.Duplicated, f.Dup*(1-f.Loss))
	if st.Reordered == 0 {
		t.Error("nothing reordered")
	}
	r := ipctest.CheckSeq(n, out)
	if r.Lost != st.Lost || r.Duplicated != st.Duplicated || r.Created != 0 || r.OutOfOrder == 0 {
		t.Errorf("checker %v disagrees with injector %v", r, st)
	}
}

func TestFaultsValidate(t *testing.T) {
	for _, f := range []ipctest.Faults{{Loss: -0.1}, {Dup: 1.5}, {Reorder: math.NaN()}, {Delay: -time.Second}} {
		if _, err := ipctest.NewInjector(f); err == nil {
			t.Errorf("%+v accepted", f)
		}
	}
}

// TestCheckSeqPlanted plants each violation in a clean log and checks that the checker
// names it.
func TestCheckSeqPlanted(t *testing.T) {
	clean := []uint64{0, 1, 2, 3, 4, 5}
	if r := ipctest.CheckSeq(6, clean); r.ExactlyOnce(true) != nil || !r.Prefix() {
		t.Fatalf("clean log: %v", r)
	}
	for _, c := range []struct {
		name   string
		log    []uint64
		check  func(ipctest.SeqReport) bool
		prefix bool
	}{
		{"lost", []uint64{0, 1, 3, 4, 5}, func(r ipctest.SeqReport) bool { return r.Lost == 1 && r.FirstLost == 2 }, false},
		{"lost tail", []uint64{0, 1, 2}, func(r ipctest.SeqReport) bool { return r.Lost == 3 }, true},
		{"duplicated", []uint64{0, 1, 2, 2, 3, 4, 5}, func(r ipctest.SeqReport) bool { return r.Duplicated == 1 }, false},
		{"created", []uint64{0, 1, 2, 3, 4, 5, 9}, func(r ipctest.SeqReport) bool { return r.Created == 1 }, false},
		{"reordered", []uint64{0, 2, 1, 3, 4, 5}, func(r ipctest.SeqReport) bool { return r.OutOfOrder == 1 }, false},
	} {
		r := ipctest.CheckSeq(6, c.log)
		if !c.check(r) || r.Prefix() != c.prefix {
			t.Errorf("%s: %v (prefix %v)", c.name, r, r.Prefix())
		}
		if r.ExactlyOnce(true) == nil {
			t.Errorf("%s: not reported as a violation", c.name)
		}
	}
	if ipctest.CheckSeq(6, []uint64{0, 2, 1, 3, 4, 5}).ExactlyOnce(false) != nil {
		t.Error("reordering reported when order was not asked for")
	}
}

var _ = ipctest.Helper("udp-echo", func(args []string) int {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return 1
	}
	os.Stdout.WriteString(c.LocalAddr().String() + "\n")
	ipctest.Signal()
	buf := make([]byte, 64)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return 1
		}
		c.WriteTo(buf[:n], from)
	}
})

// TestRelay sends numbered datagrams to an echo server in another process through a
// relay that loses, duplicates and reorders them both ways, and checks with CheckSeq
// that what came back is what the relay's counts say.
func TestRelay(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := ipctest.Start(t, "udp-echo", ipctest.WithStdout(w))
	w.Close()
	p.Await()
	line := make([]byte, 64)
	n, _ := r.Read(line)
	r.Close()
	target, err := net.ResolveUDPAddr("udp4", string(bytes.TrimSpace(line[:n])))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	relay, err := ipctest.NewRelay(rc, target, ipctest.Faults{Seed: ipctest.Seed(t), Loss: 0.1, Dup: 0.05, Reorder: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const total = 2000
	var got []uint64
	buf := make([]byte, 64)
	for i := range uint64(total) {
		// One at a time, so the kernel's socket buffers never drop anything the relay
		// did not: every loss is an injected one.
		if _, err := c.WriteTo(msg(i), relay.Addr()); err != nil {
			t.Fatal(err)
		}
		for {
			c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				break // lost or held: go on
			}
			v := binary.BigEndian.Uint64(buf[:n])
			got = append(got, v)
			if v == i {
				break
			}
		}
	}
	to, back := relay.Stats()
	rep := ipctest.CheckSeq(total, got)
	t.Logf("to the server: %v; back: %v; checker: %v", to, back, rep)
	if to.Messages != total || to.Lost == 0 || back.Lost == 0 || rep.Created != 0 {
		t.Fatalf("relay did not inject as asked")
	}
	// Every loss is an injected one (held messages are released after a quiet
	// moment): each loss on the way in, and at most each loss on the way back (its
	// duplicate may have come through).
	if rep.Lost < to.Lost || rep.Lost > to.Lost+back.Lost {
		t.Errorf("lost %d, relay dropped %d+%d", rep.Lost, to.Lost, back.Lost)
	}
}

var _ = ipctest.Helper("fault-point", func(args []string) int {
	for i := 0; ; i++ {
		os.Stdout.WriteString(strconv.Itoa(i) + "\n")
		ipctest.Point("loop")
		if i == 10 {
			return 0
		}
	}
})

// TestFaultAt kills and stops a helper at the chosen hit of a point.
func TestFaultAt(t *testing.T) {
	p := ipctest.Start(t, "fault-point", ipctest.FaultAt("loop", 4, unix.SIGKILL))
	err := p.Wait()
	var ee interface{ ExitCode() int }
	if !errors.As(err, &ee) || ee.ExitCode() != -1 {
		t.Fatalf("helper: %v, want killed", err)
	}
	if out := p.Output(); out != "0\n1\n2\n3\n" {
		t.Fatalf("killed at the wrong point: %q", out)
	}

	p = ipctest.Start(t, "fault-point", ipctest.FaultAt("loop", 2, unix.SIGSTOP))
	waitStopped(t, p)
	// The helper's output reaches us through a pipe and a copying goroutine: give it
	// the moment it needs.
	for i := 0; i < 1000 && p.Output() != "0\n1\n"; i++ {
		time.Sleep(time.Millisecond)
	}
	if out := p.Output(); out != "0\n1\n" {
		t.Fatalf("stopped at the wrong point: %q", out)
	}
	unix.Kill(p.Pid(), unix.SIGCONT)
	if err := p.Wait(); err != nil {
		t.Fatalf("after SIGCONT: %v", err)
	}
	if out := p.Output(); out != "0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n" {
		t.Fatalf("after SIGCONT: %q", out)
	}
}

// waitStopped waits until process pid is stopped (state T in /proc/PID/stat), without
// reaping it: the harness's own wait stays the one that does.
func waitStopped(t *testing.T, p *ipctest.Proc) {
	t.Helper()
	for range 10000 {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p.Pid()) + "/stat")
		if err != nil {
			t.Fatalf("helper gone before it stopped: %v (exit: %v, output %q)", err, p.Wait(), p.Output())
		}
		if i := bytes.LastIndexByte(b, ')'); i > 0 && len(b) > i+2 && b[i+2] == 'T' {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("helper never stopped")
}

var _ = ipctest.Helper("limit-fds", func(args []string) int {
	free, _ := strconv.Atoi(args[0])
	restore, err := ipctest.LimitFds(free)
	if err != nil {
		os.Stdout.WriteString(err.Error())
		return 2
	}
	var opened []int
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			if !errors.Is(err, unix.EMFILE) {
				return 3
			}
			break
		}
		opened = append(opened, fd)
	}
	for _, fd := range opened {
		unix.Close(fd)
	}
	restore()
	os.Stdout.WriteString(strconv.Itoa(len(opened)))
	return 0
})

func TestLimitFds(t *testing.T) {
	for _, free := range []int{0, 1, 3} {
		p := ipctest.Start(t, "limit-fds", ipctest.WithArgs(strconv.Itoa(free)))
		p.MustSucceed()
		if got := p.Output(); got != strconv.Itoa(free) {
			t.Errorf("LimitFds(%d): opened %s", free, got)
		}
	}
}
