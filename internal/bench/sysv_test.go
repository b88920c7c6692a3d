package bench

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/ipclab/ipclab/ipc"
)

// sysvPair sets up a System V transport with both ends in this process (the peer's
// end on a second goroutine where it must block).
func sysvPair(tb testing.TB, prim, impl string, w ipc.WaitStrategy, size int) (Endpoint, Endpoint, Params) {
	tb.Helper()
	tr, err := Lookup(prim)
	if err != nil {
		tb.Fatal(err)
	}
	if err := tr.Available(); err != nil {
		tb.Skip(err)
	}
	p := Params{Primitive: prim, Impl: impl, Scenario: ScenarioPingPong, Size: size, Wait: w}
	a, files, err := tr.Setup(&p)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := tr.Open(p, files)
	if err != nil {
		a.Close()
		tr.Cleanup(p)
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		b.Close()
		a.Close()
		tr.Cleanup(p)
	})
	return a, b, p
}

// sysvObjects lists this IPC namespace's System V objects.
func sysvObjects() string {
	var out []string
	for _, k := range []string{"msg", "sem", "shm"} {
		b, _ := os.ReadFile("/proc/sysvipc/" + k)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		out = append(out, lines[1:]...)
	}
	return strings.Join(out, "\n")
}

// TestSysVTransports exchanges messages both ways through every System V transport,
// implementation and wait strategy, checks 0 allocs per round trip, and that nothing
// is left behind.
func TestSysVTransports(t *testing.T) {
	before := sysvObjects()
	for _, prim := range []string{"sysv-msg", "sysv-sem", "shm", "shm-sem"} {
		tr, _ := Lookup(prim)
		var cases []struct {
			impl string
			wait ipc.WaitStrategy
		}
		for _, w := range tr.Waits() {
			cases = append(cases, struct {
				impl string
				wait ipc.WaitStrategy
			}{ImplIpclab, w})
		}
		cases = append(cases, struct {
			impl string
			wait ipc.WaitStrategy
		}{ImplRaw, ipc.WaitKernel})
		for _, c := range cases {
			for _, size := range []int{1, 64, 4096} {
				t.Run(fmt.Sprintf("%s/%s/%v/%d", prim, c.impl, c.wait, size), func(t *testing.T) {
					a, b, _ := sysvPair(t, prim, c.impl, c.wait, size)
					msg, buf := bytes.Repeat([]byte{0x5a}, size), make([]byte, size)
					echoErr := make(chan error, 1)
					const rounds = 200
					go func() {
						pbuf := make([]byte, size)
						for range rounds + 100 {
							if err := b.Recv(pbuf); err != nil {
								echoErr <- err
								return
							}
							if err := b.Send(pbuf); err != nil {
								echoErr <- err
								return
							}
						}
						echoErr <- nil
					}()
					for i := range rounds {
						msg[0] = byte(i)
						if err := a.Send(msg); err != nil {
							t.Fatal(err)
						}
						if err := a.Recv(buf); err != nil {
							t.Fatalf("Recv: %v", err)
						}
						if prim != "sysv-sem" && !bytes.Equal(buf, msg) {
							t.Fatalf("round %d: echo differs", i)
						}
					}
					if allocs := testing.AllocsPerRun(99, func() {
						_ = a.Send(msg)
						_ = a.Recv(buf)
					}); allocs != 0 && !sysvRace {
						t.Errorf("%v allocs per round trip", allocs)
					}
					if err := <-echoErr; err != nil {
						t.Fatal(err)
					}
				})
			}
		}
	}
	if after := sysvObjects(); after != before {
		t.Errorf("System V objects left behind:\n%s", after)
	}
}
