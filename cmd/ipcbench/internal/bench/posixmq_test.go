package bench

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/ipclab/ipclab/ipc"
)

// mqPair sets up the posix-mq transport with both ends in this process.
func mqPair(tb testing.TB, impl string, w ipc.WaitStrategy, size int) (Endpoint, Endpoint) {
	tb.Helper()
	tr, err := Lookup("posix-mq")
	if err != nil {
		tb.Fatal(err)
	}
	if err := tr.Available(); err != nil {
		tb.Skip(err)
	}
	p := Params{Primitive: "posix-mq", Impl: impl, Scenario: "pingpong", Size: size, Wait: w}
	a, files, err := tr.Setup(&p)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { a.Close() })
	b, err := tr.Open(p, files)
	for _, f := range files {
		f.Close()
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	if err := tr.Cleanup(p); err != nil {
		tb.Fatal(err)
	}
	return a, b
}

var mqImpls = []struct {
	impl string
	wait ipc.WaitStrategy
}{{ImplIpclab, ipc.WaitPoller}, {ImplIpclab, ipc.WaitKernel}, {ImplRaw, ipc.WaitKernel}}

// TestPosixMQTransport exchanges messages both ways in every implementation, checks
// 0 allocs per message and that no queue name is left behind.
func TestPosixMQTransport(t *testing.T) {
	before, _ := os.ReadDir("/dev/mqueue")
	for _, c := range mqImpls {
		for _, size := range []int{1, 64, 4096} {
			t.Run(fmt.Sprintf("%s/%v/%d", c.impl, c.wait, size), func(t *testing.T) {
				a, b := mqPair(t, c.impl, c.wait, size)
				msg, buf := bytes.Repeat([]byte{0x5a}, size), make([]byte, size)
				for i := 0; i < 10; i++ {
					msg[0] = byte(i)
					if err := a.Send(msg); err != nil {
						t.Fatal(err)
					}
					if err := b.Recv(buf); err != nil || !bytes.Equal(buf, msg) {
						t.Fatalf("peer Recv: %v", err)
					}
					if err := b.Send(buf); err != nil {
						t.Fatal(err)
					}
					if err := a.Recv(buf); err != nil || !bytes.Equal(buf, msg) {
						t.Fatalf("Recv: %v", err)
					}
				}
				if allocs := testing.AllocsPerRun(100, func() {
					_ = a.Send(msg)
					_ = b.Recv(buf)
				}); allocs != 0 {
					t.Errorf("%v allocs per message", allocs)
				}
				if err := a.Close(); err != nil {
					t.Error(err)
				}
				if err := a.Close(); err != nil {
					t.Errorf("second Close: %v", err)
				}
			})
		}
	}
	if after, err := os.ReadDir("/dev/mqueue"); err == nil && len(after) > len(before) {
		t.Errorf("queues left behind: %d before, %d after", len(before), len(after))
	}
}

// BenchmarkPosixMQPingPong is a round trip of 64-byte messages between two
// goroutines (each on its own thread) over the transport: a same-process stand-in
// for ipcbench's two-process ping-pong, for comparing ipclab with the raw baseline.
func BenchmarkPosixMQPingPong(b *testing.B) {
	for _, c := range mqImpls {
		b.Run(fmt.Sprintf("%s/%v", c.impl, c.wait), func(b *testing.B) {
			a, peer := mqPair(b, c.impl, c.wait, 64)
			done := make(chan error, 1)
			n := b.N
			go func() {
				runtime.LockOSThread()
				buf := make([]byte, 64)
				for i := 0; i < n; i++ {
					if err := peer.Recv(buf); err != nil {
						done <- err
						return
					}
					if err := peer.Send(buf); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			msg, buf := make([]byte, 64), make([]byte, 64)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < n; i++ {
				if err := a.Send(msg); err != nil {
					b.Fatal(err)
				}
				if err := a.Recv(buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}
