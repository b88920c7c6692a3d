package rpc

import (
	"sync"
	"time"
)

// replyCache is the server's duplicate-request cache (at-most-once): for each call it
// has seen, keyed by client and xid, either "running" or the reply it sent.
//
// Bound and eviction: it holds at most max entries. An entry is created when a call
// first arrives (running) and completed with its reply. When a new call finds the
// cache full, the oldest completed entry is evicted if it was completed at least
// minAge ago; otherwise the new call is dropped unanswered and not run (the client
// retransmits). Running entries are never evicted. So a retransmission within
// minAge of the reply always finds its entry. The completed entries' replies are
// bounded by maxBytes too (a new call counts the cache full while they hold
// maxBytes or more), so memory is bounded by max entries and maxBytes of replies
// plus one reply per running call.
type replyCache struct {
	mu     sync.Mutex
	max    int
	minAge time.Duration
	// maxBytes bounds the bytes of the completed entries' replies; bytes is
	// what they hold.
	maxBytes, bytes int
	m               map[cacheKey]*cacheEntry
	done            []*cacheEntry // completed entries, oldest first (a queue)
	head            int
}

type cacheKey struct {
	client           string // transport and address
	xid              uint32
	prog, vers, proc uint32
}

type cacheEntry struct {
	key   cacheKey
	reply []byte // nil while running
	at    time.Time
}

type cacheState int

const (
	cacheNew cacheState = iota
	cacheRunning
	cacheDone
	cacheFull
)

func newReplyCache(max int, minAge time.Duration) *replyCache {
	return &replyCache{max: max, minAge: minAge, maxBytes: DefaultCacheBytes, m: make(map[cacheKey]*cacheEntry, min(max, 4096))}
}

// begin looks key up. For cacheNew the caller runs the call and then calls finish;
// for cacheDone reply is the cached reply (valid until the next call on the cache).
func (c *replyCache) begin(key cacheKey) (cacheState, []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key]; ok {
		if e.reply == nil {
			return cacheRunning, nil
		}
		return cacheDone, e.reply
	}
	for len(c.m) >= c.max || c.bytes >= c.maxBytes {
		if !c.evict() {
			return cacheFull, nil
		}
	}
	c.m[key] = &cacheEntry{key: key}
	return cacheNew, nil
}

// evict removes the oldest completed entry if it is old enough.
func (c *replyCache) evict() bool {
	if c.head == len(c.done) {
		return false
	}
	e := c.done[c.head]
	if time.Since(e.at) < c.minAge {
		return false
	}
	c.done[c.head] = nil
	c.head++
	if c.head > len(c.done)/2 && c.head > 64 {
		c.done = append(c.done[:0], c.done[c.head:]...)
		c.head = 0
	}
	delete(c.m, e.key)
	c.bytes -= len(e.reply)
	return true
}

// finish records the reply of a call begun with cacheNew.
func (c *replyCache) finish(key cacheKey, reply []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || e.reply != nil {
		return
	}
	e.reply = append(make([]byte, 0, len(reply)), reply...)
	e.at = time.Now()
	c.bytes += len(reply)
	c.done = append(c.done, e)
}

// load enters a completed entry read from a durable log, evicting the oldest
// completed entry when the cache is full (at start-up, before any call).
func (c *replyCache) load(key cacheKey, reply []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; ok {
		return
	}
	for (len(c.m) >= c.max || c.bytes+len(reply) > c.maxBytes) && c.head < len(c.done) {
		e := c.done[c.head]
		c.done[c.head] = nil
		c.head++
		delete(c.m, e.key)
		c.bytes -= len(e.reply)
	}
	e := &cacheEntry{key: key, reply: append(make([]byte, 0, len(reply)), reply...), at: time.Now()}
	c.m[key] = e
	c.bytes += len(reply)
	c.done = append(c.done, e)
}
