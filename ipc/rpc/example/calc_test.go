package calc_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/rpc"
	calc "github.com/ipclab/ipclab/ipc/rpc/example"
)

func TestMain(m *testing.M) { ipctest.Main(m) }

var bg = context.Background()

// The Go server: serves Calc on TCP and UDP, writes "tcpaddr udpaddr" to file 0,
// signals, and closes when told.
var _ = ipctest.Helper("calc-server", func(args []string) int {
	s, err := rpc.NewServer()
	if err != nil {
		return fail("%v", err)
	}
	if err := calc.Register_CALC_V1(s, calc.Calc{}); err != nil {
		return fail("%v", err)
	}
	ta, err := s.ListenTCP("127.0.0.1:0")
	if err != nil {
		return fail("%v", err)
	}
	ua, err := s.ListenUDP("127.0.0.1:0")
	if err != nil {
		return fail("%v", err)
	}
	if len(args) > 0 && args[0] == "advertise" {
		if err := s.Advertise(context.Background()); err != nil {
			return fail("advertise: %v", err)
		}
	}
	fmt.Fprintf(ipctest.File(0), "%s %s\n", ta, ua)
	ipctest.Signal()
	ipctest.Await()
	if err := s.Close(); err != nil {
		return fail("close: %v", err)
	}
	return 0
})

func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	return 1
}

type goServer struct {
	proc     *ipctest.Proc
	tcp, udp string
}

func startGoServer(t *testing.T, args ...string) *goServer {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := ipctest.Start(t, "calc-server", ipctest.Handover(w), ipctest.WithArgs(args...))
	p.Await()
	line, err := bufio.NewReader(r).ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) != 2 {
		t.Fatalf("server addresses %q: %v\n%s", line, err, p.Output())
	}
	g := &goServer{proc: p, tcp: f[0], udp: f[1]}
	t.Cleanup(func() { g.stop(t) })
	return g
}

func (g *goServer) stop(t *testing.T) {
	if g.proc == nil {
		return
	}
	g.proc.Signal()
	if err := g.proc.Wait(); err != nil {
		t.Errorf("calc server: %v\n%s", err, g.proc.Output())
	}
	g.proc = nil
}

// request builds a request of each union arm.
func requests() []calc.Request {
	var sum, prod, neg, cat, empty calc.Request
	sum.Who, sum.What.Kind, sum.Tag = "sum", calc.SUM, [2]uint32{1, 0xfffffffe}
	*sum.What.Values() = calc.Nums{1, -2, 1 << 40, 5}
	prod.Who, prod.What.Kind, prod.Tag = "product", calc.PRODUCT, [2]uint32{0x01020304, 0xa0b0c0d0}
	*prod.What.Values() = calc.Nums{3, -7, 1 << 20}
	neg.Who, neg.What.Kind = "negate", calc.NEGATE
	*neg.What.N() = -0x0102030405060708
	cat.Who, cat.What.Kind = "ünïcödé", calc.CONCAT
	*cat.What.Words() = []calc.Name{"strings", "of", "odd", "lengths", ""}
	empty.Who, empty.What.Kind = "", calc.PRODUCT
	return []calc.Request{sum, prod, neg, cat, empty}
}

// want is what Calc answers to r, computed here independently.
func want(r calc.Request) string {
	greet := "hello, " + r.Who
	tag := fmt.Sprintf("%08x %08x", r.Tag[1], r.Tag[0])
	switch r.What.Kind {
	case calc.SUM:
		var s int64
		for _, v := range *r.What.Values() {
			s += v
		}
		return fmt.Sprintf("ok %q %d %q %s", greet, s, "", tag)
	case calc.PRODUCT:
		if len(*r.What.Values()) == 0 {
			return "refused empty product"
		}
		p := int64(1)
		for _, v := range *r.What.Values() {
			p *= v
		}
		return fmt.Sprintf("ok %q %d %q %s", greet, p, "", tag)
	case calc.NEGATE:
		return fmt.Sprintf("ok %q %d %q %s", greet, -*r.What.N(), "", tag)
	}
	words := make([]string, len(*r.What.Words()))
	copy(words, *r.What.Words())
	return fmt.Sprintf("ok %q %d %q %s", greet, 0, strings.Join(words, " "), tag)
}

func show(a *calc.Answer) string {
	if !a.Ok {
		return "refused " + *a.Why()
	}
	r := a.Res()
	return fmt.Sprintf("ok %q %d %q %08x %08x", r.Greeting, r.Value, r.Text, r.Tag[0], r.Tag[1])
}

// RPC-02: the generated stubs between two processes, over TCP and UDP: every arm of
// the union, strings (UTF-8, empty, odd lengths), arrays, a fixed array, hypers, and
// a byte-order check.
func TestGoClientGoServer(t *testing.T) {
	srv := startGoServer(t)
	for _, network := range []string{"tcp", "udp"} {
		addr := srv.tcp
		if network == "udp" {
			addr = srv.udp
		}
		c, err := calc.Dial_CALC_V1(bg, network, addr, rpc.WithRetransmit(50*time.Millisecond, time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		checkCalc(t, network, c)
	}
}

// checkCalc makes every kind of call through c and checks the answers.
func checkCalc(t *testing.T, what string, c calc.CALC_V1_Client) {
	t.Helper()
	if err := c.CALC_NULL(bg); err != nil {
		t.Fatalf("%s: null: %v", what, err)
	}
	for _, r := range requests() {
		var a calc.Answer
		if err := c.CALC_EVAL(bg, &r, &a); err != nil {
			t.Fatalf("%s: eval %s: %v", what, r.Who, err)
		}
		if got, w := show(&a), want(r); got != w {
			t.Errorf("%s: eval %s:\n got %s\nwant %s", what, r.Who, got, w)
		}
	}
	in, out := uint64(0x0102030405060708), uint64(0)
	if err := c.CALC_SWAB(bg, &in, &out); err != nil || out != 0x0807060504030201 {
		t.Errorf("%s: swab: %#x, %v", what, out, err)
	}
	nums := calc.Nums{5, -1, 1 << 62, 0, -1 << 62, 3}
	var sorted calc.Nums
	if err := c.CALC_SORT(bg, &nums, &sorted); err != nil {
		t.Fatalf("%s: sort: %v", what, err)
	}
	w := slices.Clone(nums)
	slices.Sort(w)
	if !slices.Equal(sorted, w) {
		t.Errorf("%s: sort: %v, want %v", what, sorted, w)
	}
	// A string over its bound is refused before anything is sent.
	long := calc.Request{Who: strings.Repeat("x", calc.MAXNAME+1)}
	long.What.Kind = calc.NEGATE
	var a calc.Answer
	ipctest.CheckOpError(t, what+": name over its bound", c.CALC_EVAL(bg, &long, &a), ipc.ErrInvalid)
}

// RPC-02: the encoding of a request is exactly RFC 4506's, whatever the host's byte
// order: big-endian words, lengths before strings and vectors, zero padding to 4
// bytes, the union's discriminant before its arm; and it decodes back to the same
// value.
func TestEncodingBytes(t *testing.T) {
	var r calc.Request
	r.Who, r.What.Kind, r.Tag = "abcde", calc.SUM, [2]uint32{0x01020304, 0xfffffffe}
	*r.What.Values() = calc.Nums{1, -2}
	b, err := rpc.AppendXDR(nil, calc.XDR_Request(&r))
	if err != nil {
		t.Fatal(err)
	}
	want := "00000005" + "6162636465000000" + // string<64> "abcde", padded
		"00000001" + // op SUM
		"00000002" + "0000000000000001" + "fffffffffffffffe" + // hyper<256> {1, -2}
		"01020304" + "fffffffe" // unsigned int[2]
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("encoding\n got %s\nwant %s", got, want)
	}
	var back calc.Request
	if err := rpc.UnmarshalXDR(b, calc.XDR_Request(&back)); err != nil {
		t.Fatal(err)
	}
	again, _ := rpc.AppendXDR(nil, calc.XDR_Request(&back))
	if !bytes.Equal(again, b) {
		t.Fatalf("round trip: %x", again)
	}
	for _, bad := range []string{
		want[:len(want)-8],                              // short
		want + "00000000",                               // trailing bytes
		"00000005" + "6162636465000001" + want[24:],     // non-zero padding
		"00000041" + want[8:],                           // string over its bound (65 > 64)
		want[:24] + "00000009" + want[32:],              // no such op
		want[:24] + "00000001" + "7fffffff" + want[40:], // vector longer than the data
	} {
		b, _ := hex.DecodeString(bad)
		ipctest.CheckOpError(t, "decode "+bad, rpc.UnmarshalXDR(b, calc.XDR_Request(&back)), rpc.ErrProtocol)
	}
}

// FuzzGeneratedTypes (RPC-09) decodes arbitrary bytes as each type of calc.x: never a
// panic, and what decodes re-encodes to the same bytes.
func FuzzGeneratedTypes(f *testing.F) {
	for _, r := range requests() {
		b, _ := rpc.AppendXDR(nil, calc.XDR_Request(&r))
		f.Add(uint8(0), b)
	}
	f.Add(uint8(1), []byte{0, 0, 0, 1, 0, 0, 0, 0})
	f.Add(uint8(2), []byte{0, 0, 0, 0, 0, 0, 0, 3, 'w', 'h', 'y', 0})
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		var v rpc.Value
		switch which % 5 {
		case 0:
			v = calc.XDR_Request(new(calc.Request))
		case 1:
			v = calc.XDR_Operand(new(calc.Operand))
		case 2:
			v = calc.XDR_Answer(new(calc.Answer))
		case 3:
			v = calc.XDR_Result(new(calc.Result))
		case 4:
			v = calc.XDR_Nums(new(calc.Nums))
		}
		if err := rpc.UnmarshalXDR(data, v); err != nil {
			return
		}
		again, err := rpc.AppendXDR(nil, v)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("%s decoded from %x re-encodes to %x, %v", v.XdrTypeName(), data, again, err)
		}
	})
}
