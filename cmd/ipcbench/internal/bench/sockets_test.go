package bench

import (
	"bytes"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
)

// TestSocketTransports exchanges messages over every socket transport, both
// implementations and both wait strategies, with both ends in this process (the
// engine puts them in two), and passes a descriptor over the Unix ones.
func TestSocketTransports(t *testing.T) {
	for _, name := range []string{"unix-stream", "unix-seqpacket", "unix-dgram", "tcp", "udp"} {
		tr, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, impl := range Impls {
			if !hasImpl(tr, impl, ScenarioPingPong) {
				continue
			}
			for _, w := range tr.Waits() {
				if impl == ImplRaw && w != ipc.WaitKernel || impl == ImplStd && w != ipc.WaitPoller {
					continue
				}
				t.Run(name+"/"+impl+"/"+w.String(), func(t *testing.T) {
					p := Params{Primitive: name, Impl: impl, Scenario: "pingpong", Size: 64, Wait: w}
					a, files, err := tr.Setup(&p)
					if err != nil {
						t.Fatal(err)
					}
					defer a.Close()
					b, err := tr.Open(p, files)
					for _, f := range files {
						f.Close()
					}
					if err != nil {
						t.Fatal(err)
					}
					defer b.Close()
					msg, buf := bytes.Repeat([]byte{0xa5}, 64), make([]byte, 64)
					for i := 0; i < 10; i++ {
						if err := a.Send(msg); err != nil {
							t.Fatal(err)
						}
						if err := b.Recv(buf); err != nil || !bytes.Equal(buf, msg) {
							t.Fatalf("Recv: %v", err)
						}
						if err := b.Send(buf); err != nil {
							t.Fatal(err)
						}
						if err := a.Recv(buf); err != nil {
							t.Fatal(err)
						}
					}
					if allocs := testing.AllocsPerRun(100, func() {
						_ = a.Send(msg)
						_ = b.Recv(buf)
					}); allocs != 0 {
						t.Errorf("%v allocs per message", allocs)
					}
					fa, okA := a.(FdEndpoint)
					fb, okB := b.(FdEndpoint)
					if !okA || !okB || tr.(sockTransport).family != unix.AF_UNIX {
						return
					}
					r, wr, err := os.Pipe()
					if err != nil {
						t.Fatal(err)
					}
					defer r.Close()
					defer wr.Close()
					if err := fa.SendFds(msg, []int{int(wr.Fd())}); err != nil {
						t.Fatal(err)
					}
					got := make([]int, 1)
					n, err := fb.RecvFds(buf, got)
					if err != nil || n != 1 {
						t.Fatalf("RecvFds: %d, %v", n, err)
					}
					unix.Close(got[0])
				})
			}
		}
	}
}
