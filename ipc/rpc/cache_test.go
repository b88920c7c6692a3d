package rpc

import (
	"testing"
	"time"
)

// RPC-06: the reply cache is bounded and evicts by its documented rule: when full,
// the oldest completed entry goes if it completed at least minAge ago, otherwise the
// new call is refused (cacheFull, the server drops it unanswered); running entries
// are never evicted; a completed entry answers its duplicates.
func TestReplyCacheEviction(t *testing.T) {
	const minAge = 100 * time.Millisecond
	c := newReplyCache(2, minAge)
	k := func(xid uint32) cacheKey {
		return cacheKey{client: "udp 127.0.0.1:9", xid: xid, prog: 1, vers: 1, proc: 1}
	}
	if st, _ := c.begin(k(1)); st != cacheNew {
		t.Fatalf("first call: %v", st)
	}
	if st, _ := c.begin(k(1)); st != cacheRunning {
		t.Fatalf("duplicate of a running call: %v", st)
	}
	if st, _ := c.begin(k(2)); st != cacheNew {
		t.Fatalf("second call: %v", st)
	}
	if st, _ := c.begin(k(3)); st != cacheFull {
		t.Fatalf("third call with two running: %v, want full", st)
	}
	start := time.Now()
	c.finish(k(1), []byte("reply 1"))
	c.finish(k(2), []byte("reply 2"))
	if st, r := c.begin(k(1)); st != cacheDone || string(r) != "reply 1" {
		t.Fatalf("duplicate of a completed call: %v %q", st, r)
	}
	if st, _ := c.begin(k(3)); st != cacheFull && time.Since(start) < minAge {
		t.Fatalf("third call with two young entries: %v, want full", st)
	}
	time.Sleep(minAge + 10*time.Millisecond)
	if st, _ := c.begin(k(3)); st != cacheNew {
		t.Fatalf("third call once the oldest entry aged: %v, want new", st)
	}
	if _, ok := c.m[k(1)]; ok {
		t.Fatal("the oldest entry was not the one evicted")
	}
	if st, r := c.begin(k(2)); st != cacheDone || string(r) != "reply 2" {
		t.Fatalf("the younger entry: %v %q", st, r)
	}
	if len(c.m) > 2 {
		t.Fatalf("%d entries in a cache of 2", len(c.m))
	}
}
