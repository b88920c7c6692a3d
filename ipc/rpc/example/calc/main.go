// Command calc calls a calc.x server (calcd, or rpcgen's C server): it finds it
// through rpcbind unless -addr is given.
//
//	calc -op sum 1 2 3           # 6
//	calc -op concat remote procedure call
//	calc -proto tcp -op negate 5
//	calc -op swab 0x0102030405060708
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/ipclab/ipclab/ipc/rpc"
	calc "github.com/ipclab/ipclab/ipc/rpc/example"
)

func main() {
	proto := flag.String("proto", "udp", "tcp or udp")
	addr := flag.String("addr", "", "server address (default: ask rpcbind)")
	op := flag.String("op", "sum", "sum, product, negate, concat or swab")
	who := flag.String("who", os.Getenv("USER"), "name to be greeted")
	flag.Parse()
	if err := run(*proto, *addr, *op, *who, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "calc:", err)
		os.Exit(1)
	}
}

func run(proto, addr, op, who string, args []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var c calc.CALC_V1_Client
	if addr == "" {
		rc, err := rpc.DialRpcbind(ctx, proto, calc.CALC_PROG, calc.CALC_V1)
		if err != nil {
			return err
		}
		c = calc.CALC_V1_Client{C: rc}
	} else {
		var err error
		if c, err = calc.Dial_CALC_V1(ctx, proto, addr); err != nil {
			return err
		}
	}
	defer c.Close()
	nums := func() (calc.Nums, error) {
		var n calc.Nums
		for _, a := range args {
			v, err := strconv.ParseInt(a, 0, 64)
			if err != nil {
				return nil, err
			}
			n = append(n, v)
		}
		return n, nil
	}
	req := calc.Request{Who: who}
	switch op {
	case "swab":
		n, err := nums()
		if err != nil || len(n) != 1 {
			return fmt.Errorf("swab takes one number")
		}
		in, out := uint64(n[0]), uint64(0)
		if err := c.CALC_SWAB(ctx, &in, &out); err != nil {
			return err
		}
		fmt.Printf("%#016x\n", out)
		return nil
	case "sum", "product":
		req.What.Kind = map[string]calc.Op{"sum": calc.SUM, "product": calc.PRODUCT}[op]
		n, err := nums()
		if err != nil {
			return err
		}
		*req.What.Values() = n
	case "negate":
		n, err := nums()
		if err != nil || len(n) != 1 {
			return fmt.Errorf("negate takes one number")
		}
		req.What.Kind = calc.NEGATE
		*req.What.N() = n[0]
	case "concat":
		req.What.Kind = calc.CONCAT
		*req.What.Words() = args
	default:
		return fmt.Errorf("unknown op %q", op)
	}
	var ans calc.Answer
	if err := c.CALC_EVAL(ctx, &req, &ans); err != nil {
		return err
	}
	if !ans.Ok {
		return fmt.Errorf("refused: %s", *ans.Why())
	}
	r := ans.Res()
	fmt.Println(r.Greeting)
	if op == "concat" {
		fmt.Println(r.Text)
	} else {
		fmt.Println(r.Value)
	}
	return nil
}
