package rpc_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc/rpc"
	"github.com/ipclab/ipclab/sockets"
)

// silentUDP is a UDP socket that never answers: a port held by a process that is
// no RPC server (or a server that hangs).
func silentUDP(t *testing.T) (*sockets.DgramConn, int) {
	t.Helper()
	u, err := sockets.ListenUDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	return u, u.LocalAddr().(*net.UDPAddr).Port
}

// unsetAfter removes prog/vers from rpcbind now and when the test ends.
func unsetAfter(t *testing.T, prog, vers uint32) {
	t.Helper()
	if _, err := rpc.Unset(bg, prog, vers); err != nil {
		t.Skipf("rpcbind: %v", err)
	}
	t.Cleanup(func() { _, _ = rpc.Unset(bg, prog, vers) })
}

// TestUDPContextDeadline: a UDP call that ends at its context's deadline returns
// the context's error, not the socket's os.ErrDeadlineExceeded; the client's own
// timeout (WithTimeout) still ends with os.ErrDeadlineExceeded.
func TestUDPContextDeadline(t *testing.T) {
	_, port := silentUDP(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for _, sem := range []rpc.Semantics{rpc.Maybe, rpc.AtLeastOnce} {
		c := dial(t, "udp", addr, 0x20000a01, 1, rpc.WithSemantics(sem), rpc.WithRetransmit(30*time.Millisecond, 30*time.Millisecond))
		for i := 0; i < 5; i++ {
			ctx, cancel := context.WithTimeout(bg, 60*time.Millisecond)
			err := c.Call(ctx, 0, nil, nil)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("%v, run %d: %v, want context.DeadlineExceeded", sem, i, err)
			}
		}
		c.Close()
	}
	c := dial(t, "udp", addr, 0x20000a01, 1, rpc.WithTimeout(60*time.Millisecond))
	if err := c.Call(bg, 0, nil, nil); !errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("client timeout: %v, want os.ErrDeadlineExceeded", err)
	}
	c.Close()
}

// TestStaleSilentUDP (RPC-03): a UDP registration whose port is held by a socket
// that never answers is stale: DialRpcbind says ErrStale, every time, and
// Advertise replaces it.
func TestStaleSilentUDP(t *testing.T) {
	const prog, vers = 0x20000a02, 1
	unsetAfter(t, prog, vers)
	_, port := silentUDP(t)
	if ok, err := rpc.Set(bg, prog, vers, "udp", port); err != nil || !ok {
		t.Fatalf("set: %v %v", ok, err)
	}
	for i := 0; i < 3; i++ {
		c, err := rpc.DialRpcbind(bg, "udp", prog, vers)
		if err == nil {
			c.Close()
		}
		if !errors.Is(err, rpc.ErrStale) {
			t.Fatalf("run %d: DialRpcbind = %v, want ErrStale", i, err)
		}
	}
	s, err := rpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Register(prog, vers, nil); err != nil {
		t.Fatal(err)
	}
	ua, err := s.ListenUDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Advertise(bg); err != nil {
		t.Fatalf("advertise over a stale registration: %v", err)
	}
	if got, err := rpc.Lookup(bg, "udp", prog, vers); err != nil || got != ua.String() {
		t.Fatalf("lookup = %q, %v; want %s", got, err, ua)
	}
}

// TestAdvertiseRacingClose (RPC-03): whatever the order in which Advertise and
// Close run, once both have returned rpcbind holds nothing of the server's.
func TestAdvertiseRacingClose(t *testing.T) {
	const prog, vers = 0x20000a03, 1
	unsetAfter(t, prog, vers)
	left := 0
	for i := 0; i < 20; i++ {
		s, err := rpc.NewServer()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Register(prog, vers, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ListenTCP("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ListenUDP("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Advertise(bg) }()
		time.Sleep(time.Duration(i%5) * time.Millisecond)
		s.Close()
		if err := <-done; err != nil && !errors.Is(err, net.ErrClosed) {
			t.Fatalf("round %d: advertise = %v, want nil or net.ErrClosed", i, err)
		}
		for _, network := range []string{"tcp", "udp"} {
			if a, err := rpc.Lookup(bg, network, prog, vers); !errors.Is(err, rpc.ErrNotRegistered) {
				t.Errorf("round %d: %s still registered after Close: %q, %v", i, network, a, err)
				left++
			}
		}
		_, _ = rpc.Unset(bg, prog, vers)
	}
	if left > 0 {
		t.Errorf("%d registrations left behind in 20 rounds", left)
	}
}

// TestAdvertiseUndoKeepsOthers (RPC-03): an Advertise that fails because a live
// server holds one transport undoes only what it registered itself, not the live
// server's registration.
func TestAdvertiseUndoKeepsOthers(t *testing.T) {
	const prog, vers = 0x20000a04, 1
	unsetAfter(t, prog, vers)
	b, err := rpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Register(prog, vers, nil); err != nil {
		t.Fatal(err)
	}
	bu, err := b.ListenUDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Advertise(bg); err != nil {
		t.Fatal(err)
	}
	a, err := rpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Register(prog, vers, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ListenTCP("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ListenUDP("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := a.Advertise(bg); !errors.Is(err, unix.EADDRINUSE) {
		t.Fatalf("advertise over a live server: %v, want EADDRINUSE", err)
	}
	if got, err := rpc.Lookup(bg, "udp", prog, vers); err != nil || got != bu.String() {
		t.Fatalf("the live server's udp registration after the failed Advertise: %q, %v; want %s", got, err, bu)
	}
	if got, err := rpc.Lookup(bg, "tcp", prog, vers); !errors.Is(err, rpc.ErrNotRegistered) {
		t.Fatalf("the failed Advertise left tcp registered: %q, %v", got, err)
	}
}

// TestAdvertiseTwoListenersOneTransport (RPC-03): a server with two UDP sockets
// advertises the first (one endpoint per transport), and a stale registration
// of a transport other than the first endpoint's is found stale and replaced.
func TestAdvertiseTwoListenersOneTransport(t *testing.T) {
	const prog, vers = 0x20000a05, 1
	unsetAfter(t, prog, vers)
	s, err := rpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Register(prog, vers, nil); err != nil {
		t.Fatal(err)
	}
	u1, err := s.ListenUDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ListenUDP("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Advertise(bg); err != nil {
		t.Errorf("advertise with two udp sockets: %v", err)
	}
	if got, err := rpc.Lookup(bg, "udp", prog, vers); err != nil || got != u1.String() {
		t.Errorf("lookup = %q, %v; want the first socket %s", got, err, u1)
	}
	s.Close()

	// A stale udp registration (its port closed), and a server with TCP first.
	u, err := sockets.ListenUDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := u.LocalAddr().(*net.UDPAddr).Port
	u.Close()
	if ok, err := rpc.Set(bg, prog, vers, "udp", port); err != nil || !ok {
		t.Fatalf("set: %v %v", ok, err)
	}
	s2, err := rpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.Register(prog, vers, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.ListenTCP("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ua, err := s2.ListenUDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Advertise(bg); err != nil {
		t.Fatalf("advertise over a stale udp registration: %v", err)
	}
	if got, err := rpc.Lookup(bg, "udp", prog, vers); err != nil || got != ua.String() {
		t.Errorf("udp lookup = %q, %v; want %s", got, err, ua)
	}
}
