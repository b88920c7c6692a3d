package rpc_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/xdrpp/goxdr/xdr"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc/rpc"
)

func TestMain(m *testing.M) { ipctest.Main(m) }

var bg = context.Background()

// The test program served by the helper processes.
const (
	testProg  = 0x20000777
	procEcho  = 1 // uint64 -> uint64
	procFail  = 2 // void -> SYSTEM_ERR
	procUID   = 3 // void -> the caller's AUTH_SYS uid; AUTH_TOOWEAK for another flavour
	procBlob  = 4 // opaque<> -> opaque<> reversed
	procPanic = 5
)

// testProcs are the procedures of testProg, versions 1 and 3.
func testProcs() map[uint32]rpc.ProcFunc {
	return map[uint32]rpc.ProcFunc{
		procEcho: func(ctx context.Context, c *rpc.Call) error {
			var v uint64
			if err := c.Args(xdr.XDR_uint64(&v)); err != nil {
				return err
			}
			return c.Result(xdr.XDR_uint64(&v))
		},
		procFail: func(ctx context.Context, c *rpc.Call) error {
			return fmt.Errorf("this procedure always fails")
		},
		procUID: func(ctx context.Context, c *rpc.Call) error {
			a, err := c.AuthSys()
			if err != nil {
				return err
			}
			return c.Result(xdr.XDR_uint32(&a.UID))
		},
		procBlob: func(ctx context.Context, c *rpc.Call) error {
			var b []byte
			if err := c.Args(xdr.XdrVecOpaque{Bytes: &b, Bound: 1 << 20}); err != nil {
				return err
			}
			for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
				b[i], b[j] = b[j], b[i]
			}
			return c.Result(xdr.XdrVecOpaque{Bytes: &b, Bound: 1 << 20})
		},
		procPanic: func(ctx context.Context, c *rpc.Call) error {
			panic("handler panic on purpose")
		},
	}
}

// The server helper: serves testProg versions 1 and 3 on TCP and UDP, writes
// "tcpaddr udpaddr" to file 0, signals, and closes the server when told to.
var _ = ipctest.Helper("rpc-server", func(args []string) int {
	s, err := rpc.NewServer()
	if err != nil {
		return fail("%v", err)
	}
	for _, v := range []uint32{1, 3} {
		if err := s.Register(testProg, v, testProcs()); err != nil {
			return fail("%v", err)
		}
	}
	return serveUntilTold(s)
})

// serveUntilTold listens on TCP and UDP, reports the addresses, and closes s when
// the test says so.
func serveUntilTold(s *rpc.Server) int {
	ta, err := s.ListenTCP("127.0.0.1:0")
	if err != nil {
		return fail("%v", err)
	}
	ua, err := s.ListenUDP("127.0.0.1:0")
	if err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(ipctest.File(0), "%s %s\n", ta, ua)
	ipctest.Signal()
	ipctest.Await()
	if err := s.Close(); err != nil {
		return fail("close: %v", err)
	}
	return 0
}

func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	return 1
}

// peer is a server helper process and its addresses.
type peer struct {
	proc     *ipctest.Proc
	tcp, udp string
}

// startServerB is startServer for a benchmark.
func startServerB(b *testing.B) *peer {
	b.Helper()
	return startServer(b, "rpc-server")
}

// startServer starts the named server helper and reads its addresses.
func startServer(t testing.TB, name string, opts ...ipctest.Option) *peer {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := ipctest.Start(t, name, append(opts, ipctest.Handover(w))...)
	p.Await()
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatalf("server addresses: %v\n%s", err, p.Output())
	}
	f := strings.Fields(line)
	if len(f) != 2 {
		t.Fatalf("server addresses: %q", line)
	}
	pe := &peer{proc: p, tcp: f[0], udp: f[1]}
	t.Cleanup(func() { pe.stop(t) })
	return pe
}

// stop tells the server to close and waits for it to exit cleanly.
func (p *peer) stop(t testing.TB) {
	if p.proc == nil {
		return
	}
	p.proc.Signal()
	if err := p.proc.Wait(); err != nil {
		t.Errorf("server helper: %v\n%s", err, p.proc.Output())
	}
	p.proc = nil
}

func (p *peer) addr(network string) string {
	if network == "tcp" {
		return p.tcp
	}
	return p.udp
}

func dial(t testing.TB, network, addr string, prog, vers uint32, opts ...rpc.ClientOption) *rpc.Client {
	t.Helper()
	c, err := rpc.Dial(bg, network, addr, prog, vers, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// The policy server: testProg version 1, but only for AUTH_SYS callers claiming uid
// 4242 (an *AuthError for AUTH_NONE, a plain error for other uids).
var _ = ipctest.Helper("rpc-policy-server", func(args []string) int {
	s, err := rpc.NewServer(rpc.WithAuthPolicy(func(c *rpc.Call) error {
		a, err := c.AuthSys()
		if err != nil {
			return err
		}
		if a.UID != 4242 {
			return fmt.Errorf("uid %d is not allowed", a.UID)
		}
		return nil
	}))
	if err != nil {
		return fail("%v", err)
	}
	if err := s.Register(testProg, 1, testProcs()); err != nil {
		return fail("%v", err)
	}
	return serveUntilTold(s)
})
