package calc_test

import (
	"context"
	"fmt"

	"github.com/ipclab/ipclab/ipc/rpc"
	calc "github.com/ipclab/ipclab/ipc/rpc/example"
)

// A server of calc.x and a client calling it through the generated stubs, over UDP
// (over TCP it is the same with "tcp" and ListenTCP).
func Example() {
	s, err := rpc.NewServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	if err := calc.Register_CALC_V1(s, calc.Calc{}); err != nil {
		fmt.Println(err)
		return
	}
	addr, err := s.ListenUDP("127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}

	c, err := calc.Dial_CALC_V1(context.Background(), "udp", addr.String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	var req calc.Request
	req.Who = "reader"
	req.What.Kind = calc.CONCAT
	*req.What.Words() = []calc.Name{"remote", "procedure", "call"}
	var ans calc.Answer
	if err := c.CALC_EVAL(context.Background(), &req, &ans); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ans.Res().Greeting, "/", ans.Res().Text)

	in, out := uint64(0x0102030405060708), uint64(0)
	err = c.CALC_SWAB(context.Background(), &in, &out)
	fmt.Printf("%#x %v\n", out, err)
	// Output:
	// hello, reader / remote procedure call
	// 0x807060504030201 <nil>
}
