package rpc_test

import (
	"path/filepath"
	"testing"

	"github.com/xdrpp/goxdr/xdr"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc/rpc"
)

// BenchmarkCall makes calls of the uint64 echo procedure to a server in another
// process, with caller buffers for the argument and the result: over TCP with a
// context that cannot end the client allocates nothing per call (-benchmem: 0
// allocs/op).
func BenchmarkCall(b *testing.B) {
	for _, network := range []string{"tcp", "udp"} {
		b.Run(network, func(b *testing.B) {
			srv := startServerB(b)
			c, err := rpc.Dial(bg, network, srv.addr(network), testProg, 1, rpc.WithTimeout(0))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			var in, out uint64
			arg, res := xdr.XDR_uint64(&in), xdr.XDR_uint64(&out)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				in = uint64(i)
				if err := c.Call(bg, procEcho, arg, res); err != nil || out != in {
					b.Fatalf("call %d: %d, %v", i, out, err)
				}
			}
		})
	}
}

// TestCallAllocs pins the zero-allocation claim of BenchmarkCall for TCP.
func TestCallAllocs(t *testing.T) {
	srv := startServer(t, "rpc-server")
	c := dial(t, "tcp", srv.tcp, testProg, 1)
	var in, out uint64
	arg, res := xdr.XDR_uint64(&in), xdr.XDR_uint64(&out)
	allocs := testing.AllocsPerRun(200, func() {
		in++
		if err := c.Call(bg, procEcho, arg, res); err != nil || out != in {
			t.Fatalf("call: %d, %v", out, err)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per TCP call, want 0", allocs)
	}
}

// TestDoorCallAllocs: over a door, too, a call with caller buffers of fixed-size
// types allocates nothing on the client.
func TestDoorCallAllocs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "binder")
	startServer(t, "rpc-door-server", ipctest.WithArgs(dir))
	c, err := rpc.DialDoor(bg, filepath.Join(dir, "door"), testProg, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var in, out uint64
	arg, res := xdr.XDR_uint64(&in), xdr.XDR_uint64(&out)
	allocs := testing.AllocsPerRun(200, func() {
		in++
		if err := c.Call(bg, procEcho, arg, res); err != nil || out != in {
			t.Fatalf("call: %d, %v", out, err)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per door call, want 0", allocs)
	}
}

// BenchmarkDoorCall is BenchmarkCall over the door transport.
func BenchmarkDoorCall(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "binder")
	startServer(b, "rpc-door-server", ipctest.WithArgs(dir))
	c, err := rpc.DialDoor(bg, filepath.Join(dir, "door"), testProg, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var in, out uint64
	arg, res := xdr.XDR_uint64(&in), xdr.XDR_uint64(&out)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		in = uint64(i)
		if err := c.Call(bg, procEcho, arg, res); err != nil || out != in {
			b.Fatalf("call %d: %d, %v", i, out, err)
		}
	}
}
