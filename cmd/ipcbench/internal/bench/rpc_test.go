package bench

import (
	"bytes"
	"context"
	"fmt"
	"testing"
)

// TestRPCTransports makes calls over the transports of scenario rpc (RPC-01): ONC
// RPC over a door and over TCP, net/rpc over a Unix socket, both ends in this
// process (the engine puts them in two), and checks the echoed results.
func TestRPCTransports(t *testing.T) {
	for _, name := range []string{"rpc-door", "rpc-tcp", "netrpc-unix"} {
		tr, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if !supports(tr, ScenarioRPC) || supports(tr, ScenarioPingPong) {
			t.Fatalf("%s: scenarios %v", name, tr.(ScenarioLister).Scenarios())
		}
		impl := tr.(ImplLister).Impls(ScenarioRPC)[0]
		for _, size := range []int{0, 64, 64 << 10} {
			t.Run(fmt.Sprintf("%s/%d", name, size), func(t *testing.T) {
				p := Params{Primitive: name, Impl: impl, Scenario: ScenarioRPC, Size: size, Wait: tr.Waits()[0]}
				a, files, err := tr.Setup(&p)
				if err != nil {
					t.Fatal(err)
				}
				defer tr.Cleanup(p)
				defer a.Close()
				b, err := tr.Open(p, files)
				for _, f := range files {
					f.Close()
				}
				if err != nil {
					t.Fatal(err)
				}
				defer b.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 10e9)
				defer cancel()
				if c, ok := a.(Connector); ok {
					if err := c.Connect(ctx); err != nil {
						t.Fatal(err)
					}
				}
				for i := range 50 {
					msg, buf := bytes.Repeat([]byte{byte(i)}, size), make([]byte, size)
					if err := a.Send(msg); err != nil {
						t.Fatal(err)
					}
					if err := a.Recv(buf); err != nil || !bytes.Equal(buf, msg) {
						t.Fatalf("call %d: %v", i, err)
					}
				}
			})
		}
	}
}
