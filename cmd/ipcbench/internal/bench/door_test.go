package bench

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/ipclab/ipclab/ipc"
)

// TestDoorTransports makes calls over the door transports, both implementations and
// both wait strategies, socket and shared-memory sizes, with both ends in this
// process (the engine puts them in two); the ipclab client allocates nothing.
func TestDoorTransports(t *testing.T) {
	for _, name := range []string{"door", "door-socket", "door-inplace"} {
		tr, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if sl, ok := tr.(ScenarioLister); !ok || sl.Scenarios()[0] != ScenarioCall ||
			len(sl.Scenarios()) != 1 && !(name == "door" && len(sl.Scenarios()) == 2 && sl.Scenarios()[1] == ScenarioRPC) {
			t.Fatalf("%s does not list the call scenario alone (and rpc for door)", name)
		}
		for _, impl := range []string{ImplIpclab, ImplRaw} {
			for _, w := range tr.Waits() {
				if impl == ImplRaw && w != ipc.WaitKernel {
					continue
				}
				for _, size := range []int{64, 1 << 20} {
					t.Run(fmt.Sprintf("%s/%s/%s/%d", name, impl, w, size), func(t *testing.T) {
						p := Params{Primitive: name, Impl: impl, Scenario: ScenarioCall, Size: size, Wait: w}
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
						if c, ok := a.(Connector); ok {
							if err := c.Connect(context.Background()); err != nil {
								t.Fatal(err)
							}
						}
						msg, buf := bytes.Repeat([]byte{0x5a}, size), make([]byte, size)
						call := func() {
							echoed := make(chan error, 1)
							if impl == ImplRaw { // the peer's loop echoes
								go func() {
									pb := make([]byte, size)
									err := b.Recv(pb)
									if err == nil {
										err = b.Send(pb)
									}
									echoed <- err
								}()
							} else {
								echoed <- nil
							}
							if err := a.Send(msg); err != nil {
								t.Fatal(err)
							}
							clear(buf)
							if err := a.Recv(buf); err != nil || !bytes.Equal(buf, msg) {
								t.Fatalf("call: %v", err)
							}
							if err := <-echoed; err != nil {
								t.Fatal(err)
							}
						}
						for i := 0; i < 5; i++ {
							call()
						}
						if impl == ImplIpclab && size == 64 {
							if allocs := testing.AllocsPerRun(100, func() {
								_ = a.Send(msg)
								_ = a.Recv(buf)
							}); allocs > 2 { // bound kept from when the server allocated per call (it now allocates 1 Call in 32)
								t.Errorf("%v allocations per call", allocs)
							}
						}
					})
				}
			}
		}
	}
}
