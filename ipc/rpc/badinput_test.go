package rpc_test

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/xdrpp/goxdr/xdr"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/rpc"
	"github.com/ipclab/ipclab/sockets"
)

// Bad input is an *ipc.OpError matching ipc.ErrInvalid, returned before any system
// call (the addresses below are never dialled: nothing listens there), never a panic.
func TestBadInput(t *testing.T) {
	var nilCtx context.Context
	const nowhere = "127.0.0.1:9"
	for name, err := range map[string]error{
		"nil context": func() error { _, err := rpc.Dial(nilCtx, "udp", nowhere, 1, 1); return err }(),
		"network":     func() error { _, err := rpc.Dial(bg, "sctp", nowhere, 1, 1); return err }(),
		"nil option":  func() error { _, err := rpc.Dial(bg, "udp", nowhere, 1, 1, nil); return err }(),
		"semantics":   func() error { _, err := rpc.Dial(bg, "udp", nowhere, 1, 1, rpc.WithSemantics(9)); return err }(),
		"retransmit": func() error {
			_, err := rpc.Dial(bg, "udp", nowhere, 1, 1, rpc.WithRetransmit(0, time.Second))
			return err
		}(),
		"credential flavour": func() error {
			_, err := rpc.Dial(bg, "udp", nowhere, 1, 1, rpc.WithCred(rpc.OpaqueAuth{Flavor: 6}))
			return err
		}(),
		"server nil option": func() error { _, err := rpc.NewServer(nil); return err }(),
		"server max record": func() error { _, err := rpc.NewServer(rpc.WithMaxRecord(1)); return err }(),
		"server cache":      func() error { _, err := rpc.NewServer(rpc.WithReplyCache(-1, 0)); return err }(),
		"AUTH_SYS gids": func() error {
			_, err := (&rpc.AuthSys{GIDs: make([]uint32, 17)}).Encode()
			return err
		}(),
		"encode nil":      func() error { _, err := rpc.AppendXDR(nil, nil); return err }(),
		"decode nil":      rpc.UnmarshalXDR([]byte{0, 0, 0, 0}, nil),
		"rpcbind port":    func() error { _, err := rpc.Set(bg, 1, 1, "tcp", 70000); return err }(),
		"lookup net":      func() error { _, err := rpc.Lookup(bg, "sctp", 1, 1); return err }(),
		"getaddr net":     func() error { _, err := rpc.LookupAddr(bg, "unix", 1, 1); return err }(),
		"decode into nil": rpc.UnmarshalXDR(make([]byte, 8), xdr.XDR_uint64(nil)),
		"typed nil value": func() error { _, err := rpc.AppendXDR(nil, xdr.XDR_uint64(nil)); return err }(),
		"string bound": func() error {
			s := "too long"
			_, err := rpc.AppendXDR(nil, xdr.XdrString{Str: &s, Bound: 3})
			return err
		}(),
	} {
		ipctest.CheckOpError(t, name, err, ipc.ErrInvalid)
	}

	s, err := rpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ipctest.CheckOpError(t, "nil procedure", s.Register(1, 1, map[uint32]rpc.ProcFunc{1: nil}), ipc.ErrInvalid)
	if err := s.Register(1, 1, nil); err != nil {
		t.Fatal(err)
	}
	ipctest.CheckOpError(t, "registered twice", s.Register(1, 1, nil), ipc.ErrInvalid)
	ipctest.CheckOpError(t, "advertise nothing", s.Advertise(bg), ipc.ErrInvalid)

	addr, err := s.ListenUDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, "udp", addr.String(), 1, 1)
	ipctest.CheckOpError(t, "call nil context", c.Call(nilCtx, 0, nil, nil), ipc.ErrInvalid)
	ipctest.CheckOpError(t, "call semantics", c.Call(bg, 0, nil, nil, rpc.CallSemantics(0)), ipc.ErrInvalid)
	ipctest.CheckOpError(t, "call nil option", c.Call(bg, 0, nil, nil, nil), ipc.ErrInvalid)
	long := "much too long"
	ipctest.CheckOpError(t, "argument over its bound", c.Call(bg, 0, xdr.XdrString{Str: &long, Bound: 4}, nil), ipc.ErrInvalid)
	ipctest.CheckOpError(t, "result into nil", c.Call(bg, 0, nil, xdr.XDR_uint64(nil)), ipc.ErrInvalid)
	if c.Transmissions() != 0 {
		t.Errorf("%d transmissions for calls refused as bad input", c.Transmissions())
	}
}

// Close is idempotent, makes later calls fail with os.ErrClosed, and unblocks a call
// in flight at once (over TCP, a server that accepted and never answers; over UDP,
// a socket that never reads), with a context that cannot end.
func TestCloseUnblocksCall(t *testing.T) {
	l, err := sockets.ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	u, err := sockets.ListenUDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for _, tc := range []struct{ network, addr string }{{"tcp", l.Addr().String()}, {"udp", u.LocalAddr().String()}} {
		c, err := rpc.Dial(bg, tc.network, tc.addr, 1, 1, rpc.WithTimeout(0))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Call(bg, 0, nil, nil) }()
		time.Sleep(50 * time.Millisecond)
		select {
		case err := <-done:
			t.Fatalf("%s: the call returned before Close: %v", tc.network, err)
		default:
		}
		if err := c.Close(); err != nil {
			t.Errorf("%s: close: %v", tc.network, err)
		}
		select {
		case err := <-done:
			ipctest.CheckOpError(t, tc.network+": call in flight at Close", err, os.ErrClosed, net.ErrClosed)
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Close did not unblock the call", tc.network)
		}
		if err := c.Close(); err != nil {
			t.Errorf("%s: second close: %v", tc.network, err)
		}
		ipctest.CheckOpError(t, tc.network+": call after Close", c.Call(bg, 0, nil, nil), os.ErrClosed)
	}
	s, err := rpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ListenTCP("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second server close: %v", err)
	}
	_, err = s.ListenUDP("127.0.0.1:0")
	if !errors.Is(err, net.ErrClosed) {
		t.Errorf("listen after Close: %v", err)
	}
}
