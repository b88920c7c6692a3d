package ebpf_test

import (
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ebpf"
)

// BenchmarkPipeRoundTrip64 measures a 64-byte round trip over two blocking pipes
// between two threads, without and with the probes attached (tracing this process),
// in one run: the ratio of the two is the probes' overhead on the smallest exchange,
// where it is largest. Run as root:
//
//	go test -run '^$' -bench PipeRoundTrip64 -count 5 ./ebpf/
func BenchmarkPipeRoundTrip64(b *testing.B) {
	for _, probes := range []bool{false, true} {
		name := "probes=off"
		if probes {
			name = "probes=on"
		}
		b.Run(name, func(b *testing.B) {
			if probes {
				if os.Geteuid() != 0 || runtime.GOARCH != "amd64" {
					b.Skip("needs root on linux/amd64")
				}
				p, err := ebpf.Load(ebpf.Options{PIDs: []int{os.Getpid()}})
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close()
			}
			pipeRoundTrips(b)
		})
	}
}

// BenchmarkProbeOverhead measures the same 64-byte pipe round trip in alternating
// blocks without and with the probes (loaded and closed around each "on" block), so
// that both see the same machine load, and reports the median on/off ratio as
// "on/off" (and each side's median as ns/rt-off, ns/rt-on). One op is one pair of
// blocks.
//
//	go test -run '^$' -bench ProbeOverhead -benchtime 10x ./ebpf/
func BenchmarkProbeOverhead(b *testing.B) {
	if os.Geteuid() != 0 || runtime.GOARCH != "amd64" {
		b.Skip("needs root on linux/amd64")
	}
	const block = 20000
	var off, on, ratio []float64
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := roundTrips(block); err != nil {
			b.Fatal(err)
		}
		offNs := float64(time.Since(t0).Nanoseconds()) / block
		p, err := ebpf.Load(ebpf.Options{PIDs: []int{os.Getpid()}})
		if err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		err = roundTrips(block)
		onNs := float64(time.Since(t0).Nanoseconds()) / block
		p.Close()
		if err != nil {
			b.Fatal(err)
		}
		off, on, ratio = append(off, offNs), append(on, onNs), append(ratio, onNs/offNs)
	}
	b.ReportMetric(median(off), "ns/rt-off")
	b.ReportMetric(median(on), "ns/rt-on")
	b.ReportMetric(median(ratio), "on/off")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// roundTrips does n 64-byte round trips over two blocking pipes between two locked
// threads.
func roundTrips(n int) error {
	var ab, ba [2]int
	if err := unix.Pipe2(ab[:], unix.O_CLOEXEC); err != nil {
		return err
	}
	if err := unix.Pipe2(ba[:], unix.O_CLOEXEC); err != nil {
		unix.Close(ab[0])
		unix.Close(ab[1])
		return err
	}
	defer func() {
		for _, fd := range []int{ab[0], ab[1], ba[0], ba[1]} {
			unix.Close(fd)
		}
	}()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		buf := make([]byte, 64)
		for i := 0; i < n; i++ {
			if _, err := unix.Read(ab[0], buf); err != nil {
				done <- err
				return
			}
			if _, err := unix.Write(ba[1], buf); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	buf := make([]byte, 64)
	for i := 0; i < n; i++ {
		if _, err := unix.Write(ab[1], buf); err != nil {
			return err
		}
		if _, err := unix.Read(ba[0], buf); err != nil {
			return err
		}
	}
	return <-done
}

func pipeRoundTrips(b *testing.B) {
	var ab, ba [2]int
	if err := unix.Pipe2(ab[:], unix.O_CLOEXEC); err != nil {
		b.Fatal(err)
	}
	if err := unix.Pipe2(ba[:], unix.O_CLOEXEC); err != nil {
		b.Fatal(err)
	}
	defer func() {
		for _, fd := range []int{ab[0], ab[1], ba[0], ba[1]} {
			unix.Close(fd)
		}
	}()
	done := make(chan error, 1)
	n := b.N
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		buf := make([]byte, 64)
		for i := 0; i < n; i++ {
			if _, err := unix.Read(ab[0], buf); err != nil {
				done <- err
				return
			}
			if _, err := unix.Write(ba[1], buf); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	buf := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < n; i++ {
		if _, err := unix.Write(ab[1], buf); err != nil {
			b.Fatal(err)
		}
		if _, err := unix.Read(ba[0], buf); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
