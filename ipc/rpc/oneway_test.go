package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/xdrpp/goxdr/xdr"
	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/rpc"
)

const (
	asyncProg = 0x20000779
	procAdd   = 1 // opaque<> -> void: counts a call (a one-way target)
	procCount = 2 // void -> uint64: calls counted so far
	procSlow  = 3 // uint64 ms -> uint64 2*ms, after sleeping ms
)

// The async server: asyncProg version 1 on TCP and UDP.
var _ = ipctest.Helper("rpc-async-server", func(args []string) int {
	s, err := rpc.NewServer()
	if err != nil {
		return fail("%v", err)
	}
	var mu sync.Mutex
	var count uint64
	err = s.Register(asyncProg, 1, map[uint32]rpc.ProcFunc{
		procAdd: func(ctx context.Context, c *rpc.Call) error {
			var b []byte
			if err := c.Args(xdr.XdrVecOpaque{Bytes: &b, Bound: 1 << 16}); err != nil {
				return err
			}
			mu.Lock()
			count++
			mu.Unlock()
			return nil
		},
		procCount: func(ctx context.Context, c *rpc.Call) error {
			mu.Lock()
			n := count
			mu.Unlock()
			return c.Result(xdr.XDR_uint64(&n))
		},
		procSlow: func(ctx context.Context, c *rpc.Call) error {
			var ms uint64
			if err := c.Args(xdr.XDR_uint64(&ms)); err != nil {
				return err
			}
			select {
			case <-time.After(time.Duration(ms) * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
			ms *= 2
			return c.Result(xdr.XDR_uint64(&ms))
		},
	})
	if err != nil {
		return fail("%v", err)
	}
	return serveUntilTold(s)
})

func count(t *testing.T, c *rpc.Client) uint64 {
	t.Helper()
	var n uint64
	if err := c.Call(bg, procCount, nil, xdr.XDR_uint64(&n)); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestOneWayNeverBlocks (RPC-08): with the server stopped (SIGSTOP), one-way calls
// over TCP return at once until the socket and the batch limit are full, then fail
// with ErrWouldBlock instead of waiting; after SIGCONT the next two-way call
// flushes what is left, and the server has run exactly the calls Send accepted.
func TestOneWayNeverBlocks(t *testing.T) {
	p := startServer(t, "rpc-async-server")
	c := dial(t, "tcp", p.tcp, asyncProg, 1, rpc.WithBatchLimit(256<<10))
	if n := count(t, c); n != 0 {
		t.Fatalf("count at start: %d", n)
	}
	if err := unix.Kill(p.proc.Pid(), unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			unix.Kill(p.proc.Pid(), unix.SIGCONT)
		}
	}()
	arg := make([]byte, 1024)
	var accepted uint64
	var slowest time.Duration
	var wouldBlock bool
	for range 100000 {
		start := time.Now()
		err := c.Send(bg, procAdd, xdr.XdrVecOpaque{Bytes: &arg, Bound: 1 << 16})
		slowest = max(slowest, time.Since(start))
		if errors.Is(err, ipc.ErrWouldBlock) {
			ipctest.CheckOpError(t, "send to a stopped server", err, ipc.ErrWouldBlock)
			wouldBlock = true
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		accepted++
	}
	t.Logf("%d one-way calls of 1 KiB accepted while the server was stopped; slowest Send %v", accepted, slowest)
	if !wouldBlock {
		t.Fatalf("%d one-way calls to a stopped server and none would block", accepted)
	}
	if slowest > 200*time.Millisecond {
		t.Fatalf("a Send took %v with the server stopped", slowest)
	}
	unix.Kill(p.proc.Pid(), unix.SIGCONT)
	stopped = false
	if n := count(t, c); n != accepted {
		t.Fatalf("server ran %d one-way calls, %d were accepted", n, accepted)
	}
	// Over UDP: one datagram each, no reply.
	u := dial(t, "udp", p.udp, asyncProg, 1)
	for range 50 {
		if err := u.Send(bg, procAdd, xdr.XdrVecOpaque{Bytes: &arg, Bound: 1 << 16}); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, u); n != accepted+50 {
		t.Fatalf("after 50 UDP one-way calls: %d, want %d", n, accepted+50)
	}
}

// TestBatchFlushedByTwoWay (RPC-08): batched one-way calls stay in the client until
// the next two-way call, which writes them ahead of itself: another connection sees
// none of them run before it, the two-way call sees all of them.
func TestBatchFlushedByTwoWay(t *testing.T) {
	p := startServer(t, "rpc-async-server")
	c := dial(t, "tcp", p.tcp, asyncProg, 1)
	other := dial(t, "tcp", p.tcp, asyncProg, 1)
	arg := []byte("batched")
	for range 100 {
		if err := c.Batch(bg, procAdd, xdr.XdrVecOpaque{Bytes: &arg, Bound: 1 << 16}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if n := count(t, other); n != 0 {
		t.Fatalf("%d batched calls ran before the flush", n)
	}
	if n := count(t, c); n != 100 {
		t.Fatalf("the two-way call after a batch of 100 saw %d", n)
	}
	for range 10 {
		if err := c.Batch(bg, procAdd, xdr.XdrVecOpaque{Bytes: &arg, Bound: 1 << 16}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(bg); err != nil {
		t.Fatal(err)
	}
	// Flush wrote them without a two-way call behind: another connection sees
	// them run soon after.
	n := count(t, other)
	for i := 0; i < 200 && n != 110; i++ {
		time.Sleep(10 * time.Millisecond)
		n = count(t, other)
	}
	if n != 110 {
		t.Fatalf("after Flush: %d, want 110", n)
	}
	u := dial(t, "udp", p.udp, asyncProg, 1)
	if err := u.Batch(bg, procAdd, nil); !errors.Is(err, ipc.ErrInvalid) {
		t.Fatalf("batch over UDP: %v, want ErrInvalid", err)
	}
	small := dial(t, "tcp", p.tcp, asyncProg, 1, rpc.WithBatchLimit(200))
	big := make([]byte, 100)
	if err := small.Batch(bg, procAdd, xdr.XdrVecOpaque{Bytes: &big, Bound: 1 << 16}); err != nil {
		t.Fatal(err)
	}
	if err := small.Batch(bg, procAdd, xdr.XdrVecOpaque{Bytes: &big, Bound: 1 << 16}); !errors.Is(err, ipc.ErrWouldBlock) {
		t.Fatalf("batch over its limit: %v", err)
	}
	if n := count(t, small); n != 111 {
		t.Fatalf("after the small batch: %d, want 111", n)
	}
}

// TestDeferred (RPC-08): a deferred-synchronous call is acknowledged at once while
// its 300 ms handler runs; the client closes its connection, and a new client (over
// TCP, then UDP) collects the result. An unknown ticket is ErrSystemErr.
func TestDeferred(t *testing.T) {
	p := startServer(t, "rpc-async-server")
	c, err := rpc.Dial(bg, "tcp", p.tcp, asyncProg, 1)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ms := uint64(300)
	tk, err := c.Defer(bg, procSlow, xdr.XDR_uint64(&ms))
	if err != nil {
		t.Fatal(err)
	}
	ack := time.Since(start)
	if ack > 150*time.Millisecond {
		t.Fatalf("acknowledgement took %v, the handler 300 ms", ack)
	}
	c.Close()
	c2 := dial(t, "tcp", p.tcp, asyncProg, 1)
	var got uint64
	if err := c2.Collect(bg, tk, xdr.XDR_uint64(&got)); err != nil || got != 600 {
		t.Fatalf("collect after reconnecting: %v, %d", err, got)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("result after %v, before the handler could end", d)
	}
	t.Logf("deferred call acknowledged after %v, collected on a new connection after %v", ack, time.Since(start))
	u := dial(t, "udp", p.udp, asyncProg, 1)
	got = 0
	if err := u.Collect(bg, tk, xdr.XDR_uint64(&got)); err != nil || got != 600 {
		t.Fatalf("collect over UDP: %v, %d", err, got)
	}
	// Over UDP a pending result is polled: the server's socket stays free for
	// other calls meanwhile.
	ms = 300
	tk, err = u.Defer(bg, procSlow, xdr.XDR_uint64(&ms))
	if err != nil {
		t.Fatal(err)
	}
	collected := make(chan error, 1)
	go func() {
		var r uint64
		err := u.Collect(bg, tk, xdr.XDR_uint64(&r))
		if err == nil && r != 600 {
			err = fmt.Errorf("result %d", r)
		}
		collected <- err
	}()
	u2 := dial(t, "udp", p.udp, asyncProg, 1)
	for range 20 {
		start := time.Now()
		if n := count(t, u2); n != 0 {
			t.Fatalf("count %d", n)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Fatalf("a UDP call took %v while a deferred result was pending", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := <-collected; err != nil {
		t.Fatalf("collect over UDP while pending: %v", err)
	}
	ipctest.CheckOpError(t, "unknown ticket", c2.Collect(bg, tk+1, xdr.XDR_uint64(&got)), rpc.ErrSystemErr)
	// The deferred call's own failure comes back through Collect.
	tk, err = c2.Defer(bg, 99, nil)
	if err != nil {
		t.Fatal(err)
	}
	ipctest.CheckOpError(t, "deferred call of a missing procedure", c2.Collect(bg, tk, nil), rpc.ErrProcUnavail)
	// A context that ends while the result is pending.
	ms = 2000
	tk, err = c2.Defer(bg, procSlow, xdr.XDR_uint64(&ms))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(bg, 100*time.Millisecond)
	defer cancel()
	if err := c2.Collect(ctx, tk, xdr.XDR_uint64(&got)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("collect with a short deadline: %v", err)
	}
}
