package rpc

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/xdrpp/goxdr/xdr"
)

// TestReplyCacheOnlyHandledCalls (RPC-06): calls refused before a handler runs (by
// the auth policy, for an unknown program or procedure) do not take reply-cache
// entries, so they cannot fill the cache and make the server drop good calls; TCP
// replies (never retransmitted on their connection) are not cached.
func TestReplyCacheOnlyHandledCalls(t *testing.T) {
	const prog, vers = 0x20000a06, 1
	s, err := NewServer(WithReplyCache(4, time.Minute), WithAuthPolicy(func(c *Call) error {
		if c.Header.Cred.Flavor != FlavorSys {
			return &AuthError{Stat: AuthTooWeak}
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	echo := func(ctx context.Context, c *Call) error {
		var v uint64
		if err := c.Args(xdr.XDR_uint64(&v)); err != nil {
			return err
		}
		return c.Result(xdr.XDR_uint64(&v))
	}
	if err := s.Register(prog, vers, map[uint32]ProcFunc{1: echo}); err != nil {
		t.Fatal(err)
	}
	ua, err := s.ListenUDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ta, err := s.ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	as := AuthSys{Machine: "t", UID: 1}
	cred, err := as.Encode()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Ten refused calls, each from its own client (its own cache key).
	for i := 0; i < 10; i++ {
		var opts []ClientOption
		p, v, proc := uint32(prog), uint32(vers), uint32(1)
		switch i % 3 {
		case 0: // refused by the policy
		case 1:
			opts, p = append(opts, WithCred(cred)), prog+1 // no such program
		case 2:
			opts, proc = append(opts, WithCred(cred)), 9 // no such procedure
		}
		c, err := Dial(ctx, "udp", ua.String(), p, v, opts...)
		if err != nil {
			t.Fatal(err)
		}
		var x uint64
		err = c.Call(ctx, proc, xdr.XDR_uint64(&x), xdr.XDR_uint64(&x))
		c.Close()
		if err == nil {
			t.Fatalf("refused call %d succeeded", i)
		}
	}
	for i := 0; i < 3; i++ {
		c, err := Dial(ctx, "udp", ua.String(), prog, vers, WithCred(cred), WithTimeout(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		x := uint64(i)
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		err = c.Call(cctx, 1, xdr.XDR_uint64(&x), xdr.XDR_uint64(&x))
		ccancel()
		c.Close()
		if err != nil {
			t.Errorf("good call %d after 10 refused ones: %v (stats %+v)", i, err, s.Stats())
		}
	}
	entries := func() int {
		s.cache.mu.Lock()
		defer s.cache.mu.Unlock()
		return len(s.cache.m)
	}
	before := entries()
	c, err := Dial(ctx, "tcp", ta.String(), prog, vers, WithCred(cred))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	x := uint64(7)
	if err := c.Call(ctx, 1, xdr.XDR_uint64(&x), xdr.XDR_uint64(&x)); err != nil {
		t.Fatal(err)
	}
	if n := entries(); n != before {
		t.Errorf("a TCP call took a cache entry (%d -> %d)", before, n)
	}
	if st := s.Stats(); st.CacheFull != 0 {
		t.Errorf("stats %+v: calls dropped as cache-full", st)
	}
}

// TestReplyCacheBytes (RPC-06): the cache is bounded by the bytes of its replies
// as well as by entries.
func TestReplyCacheBytes(t *testing.T) {
	c := newReplyCache(100, 0)
	c.maxBytes = 10 << 10
	for i := 0; i < 50; i++ {
		k := cacheKey{client: fmt.Sprint(i), xid: 1}
		if st, _ := c.begin(k); st != cacheNew {
			t.Fatalf("call %d: %v", i, st)
		}
		c.finish(k, make([]byte, 1<<10))
	}
	if c.bytes > c.maxBytes+1<<10 {
		t.Errorf("%d bytes of replies in a cache of %d", c.bytes, c.maxBytes)
	}
	if len(c.m) > 11 {
		t.Errorf("%d entries of 1 KiB in a cache of 10 KiB", len(c.m))
	}
}
