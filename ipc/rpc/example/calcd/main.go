// Command calcd serves calc.x (package calc) on TCP and UDP and registers it with the
// machine's rpcbind, so that `rpcinfo -p` lists it and clients find it:
//
//	go run ./ipc/rpc/example/calcd &
//	rpcinfo -p | grep 536875572
//	go run ./ipc/rpc/example/calc -op sum 1 2 3
//
// It unregisters on SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ipclab/ipclab/ipc/rpc"
	calc "github.com/ipclab/ipclab/ipc/rpc/example"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to serve on (TCP and UDP)")
	noRpcbind := flag.Bool("no-rpcbind", false, "do not register with rpcbind")
	flag.Parse()
	if err := run(*addr, !*noRpcbind); err != nil {
		fmt.Fprintln(os.Stderr, "calcd:", err)
		os.Exit(1)
	}
}

func run(addr string, advertise bool) error {
	s, err := rpc.NewServer(rpc.WithReplyCache(4096, rpc.DefaultCacheAge))
	if err != nil {
		return err
	}
	defer s.Close()
	if err := calc.Register_CALC_V1(s, calc.Calc{}); err != nil {
		return err
	}
	ta, err := s.ListenTCP(addr)
	if err != nil {
		return err
	}
	ua, err := s.ListenUDP(addr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if advertise {
		if err := s.Advertise(ctx); err != nil {
			return err
		}
	}
	fmt.Printf("calcd: CALC_PROG %d version %d on tcp %s, udp %s\n", calc.CALC_PROG, calc.CALC_V1, ta, ua)
	<-ctx.Done()
	return s.Close()
}
