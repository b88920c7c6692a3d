package rpc_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/xdrpp/goxdr/xdr"

	"github.com/ipclab/ipclab/ipc/rpc"
)

// A server with one procedure that doubles an int, and a synchronous call to it over
// TCP. The server and the client would normally be two processes.
func Example() {
	const prog, vers, double = 0x20000999, 1, 1
	s, err := rpc.NewServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	s.Register(prog, vers, map[uint32]rpc.ProcFunc{
		double: func(ctx context.Context, c *rpc.Call) error {
			var n int32
			if err := c.Args(xdr.XDR_int32(&n)); err != nil {
				return err // GARBAGE_ARGS
			}
			n *= 2
			return c.Result(xdr.XDR_int32(&n))
		},
	})
	addr, err := s.ListenTCP("127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}

	c, err := rpc.Dial(context.Background(), "tcp", addr.String(), prog, vers)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	in, out := int32(21), int32(0)
	err = c.Call(context.Background(), double, xdr.XDR_int32(&in), xdr.XDR_int32(&out))
	fmt.Println(out, err)
	err = c.Call(context.Background(), 7, nil, nil)
	fmt.Println(errors.Is(err, rpc.ErrProcUnavail))
	// Output:
	// 42 <nil>
	// true
}

// Choosing a call semantics: the client retransmits over UDP until its deadline
// (at-least-once), and one call goes out once only (maybe). A server with a reply
// cache turns the retransmitting semantics into at-most-once.
func Example_semantics() {
	const prog, vers = 0x20000998, 1
	s, _ := rpc.NewServer(rpc.WithReplyCache(1024, time.Minute))
	defer s.Close()
	s.Register(prog, vers, map[uint32]rpc.ProcFunc{})
	addr, err := s.ListenUDP("127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err := rpc.Dial(context.Background(), "udp", addr.String(), prog, vers,
		rpc.WithSemantics(rpc.AtMostOnce), rpc.WithRetransmit(50*time.Millisecond, time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println(c.Call(ctx, 0, nil, nil))                               // retransmitted until answered
	fmt.Println(c.Call(ctx, 0, nil, nil, rpc.CallSemantics(rpc.Maybe))) // sent once
	// Output:
	// <nil>
	// <nil>
}

// An asynchronous call: Go returns at once, the result is there when Done is closed.
func ExampleClient_Go() {
	const prog, vers, square = 0x20000997, 1, 1
	s, _ := rpc.NewServer()
	defer s.Close()
	s.Register(prog, vers, map[uint32]rpc.ProcFunc{
		square: func(ctx context.Context, c *rpc.Call) error {
			var n int64
			if err := c.Args(xdr.XDR_int64(&n)); err != nil {
				return err
			}
			n *= n
			return c.Result(xdr.XDR_int64(&n))
		},
	})
	addr, err := s.ListenTCP("127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err := rpc.Dial(context.Background(), "tcp", addr.String(), prog, vers)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	in, out := int64(12), int64(0)
	p := c.Go(context.Background(), square, xdr.XDR_int64(&in), xdr.XDR_int64(&out))
	// ... other work ...
	select {
	case <-p.Done():
		fmt.Println(out, p.Wait())
	case <-time.After(10 * time.Second):
		fmt.Println("no answer")
	}
	// Output:
	// 144 <nil>
}

// One-way calls: Send returns without waiting for the server and no reply comes;
// Batch holds calls until the next two-way call, which sends them ahead of itself.
// Calls on one TCP connection run in order, so the two-way call sees them all.
func ExampleClient_Send() {
	const prog, vers, logLine, lines = 0x20000996, 1, 1, 2
	var mu sync.Mutex
	var logged []string
	s, _ := rpc.NewServer()
	defer s.Close()
	s.Register(prog, vers, map[uint32]rpc.ProcFunc{
		logLine: func(ctx context.Context, c *rpc.Call) error {
			var line string
			if err := c.Args(xdr.XdrString{Str: &line, Bound: 100}); err != nil {
				return err
			}
			mu.Lock()
			logged = append(logged, line)
			mu.Unlock()
			return nil
		},
		lines: func(ctx context.Context, c *rpc.Call) error {
			mu.Lock()
			n := uint32(len(logged))
			mu.Unlock()
			return c.Result(xdr.XDR_uint32(&n))
		},
	})
	addr, err := s.ListenTCP("127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err := rpc.Dial(context.Background(), "tcp", addr.String(), prog, vers)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	for _, line := range []string{"one", "two"} {
		c.Send(context.Background(), logLine, xdr.XdrString{Str: &line, Bound: 100})
	}
	for _, line := range []string{"three", "four"} {
		c.Batch(context.Background(), logLine, xdr.XdrString{Str: &line, Bound: 100})
	}
	var n uint32
	err = c.Call(context.Background(), lines, nil, xdr.XDR_uint32(&n)) // flushes the batch
	mu.Lock()
	fmt.Println(n, err, logged)
	mu.Unlock()
	// Output:
	// 4 <nil> [one two three four]
}

// A deferred-synchronous call: the server acknowledges it at once with a ticket;
// the result is collected later, here on a new connection.
func ExampleClient_Defer() {
	const prog, vers, slowDouble = 0x20000995, 1, 1
	s, _ := rpc.NewServer()
	defer s.Close()
	s.Register(prog, vers, map[uint32]rpc.ProcFunc{
		slowDouble: func(ctx context.Context, c *rpc.Call) error {
			var n int32
			if err := c.Args(xdr.XDR_int32(&n)); err != nil {
				return err
			}
			time.Sleep(100 * time.Millisecond)
			n *= 2
			return c.Result(xdr.XDR_int32(&n))
		},
	})
	addr, err := s.ListenTCP("127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	c, err := rpc.Dial(ctx, "tcp", addr.String(), prog, vers)
	if err != nil {
		fmt.Println(err)
		return
	}
	in := int32(21)
	ticket, err := c.Defer(ctx, slowDouble, xdr.XDR_int32(&in))
	c.Close() // the result waits on the server
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err = rpc.Dial(ctx, "tcp", addr.String(), prog, vers)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	var out int32
	fmt.Println(c.Collect(ctx, ticket, xdr.XDR_int32(&out)), out)
	// Output:
	// <nil> 42
}

// Exactly-once with a durable reply log: the handler makes its effect through
// Call.Effect, which is committed with the reply in one durable record; a server
// started again on the log replays the committed effects to rebuild its state (and
// would answer a retransmitted call from the log without running it again).
func ExampleWithDurableReplies() {
	const prog, vers, deposit = 0x20000994, 1, 1
	dir, _ := os.MkdirTemp("", "rpc-example")
	defer os.RemoveAll(dir)
	log := filepath.Join(dir, "replies.log")

	var balance int32 // the application's state, rebuilt from the log
	start := func() (*rpc.Server, error) {
		s, err := rpc.NewServer(rpc.WithDurableReplies(log, func(e rpc.Effect) error {
			balance += int32(binary.BigEndian.Uint32(e.Data))
			return nil
		}))
		if err != nil {
			return nil, err
		}
		return s, s.Register(prog, vers, map[uint32]rpc.ProcFunc{
			deposit: func(ctx context.Context, c *rpc.Call) error {
				var amount int32
				if err := c.Args(xdr.XDR_int32(&amount)); err != nil {
					return err
				}
				if err := c.Effect(binary.BigEndian.AppendUint32(nil, uint32(amount))); err != nil {
					return err
				}
				balance += amount
				return c.Result(xdr.XDR_int32(&balance))
			},
		})
	}
	s, err := start()
	if err != nil {
		fmt.Println(err)
		return
	}
	addr, err := s.ListenUDP("127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err := rpc.Dial(context.Background(), "udp", addr.String(), prog, vers, rpc.WithSemantics(rpc.AtMostOnce))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	var got int32
	for _, amount := range []int32{10, 5} {
		if err := c.Call(context.Background(), deposit, xdr.XDR_int32(&amount), xdr.XDR_int32(&got)); err != nil {
			fmt.Println(err)
			return
		}
	}
	fmt.Println("balance", got)
	s.Close() // or a crash

	balance = 0
	s, err = start()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("after restart", balance)
	s.RemoveLog()
	// Output:
	// balance 15
	// after restart 15
}
