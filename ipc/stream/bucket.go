package stream

import "time"

// A TokenBucket is the token bucket of a shaper or a policer: tokens (bytes) flow in
// at Rate up to Depth; a unit needs as many tokens as it has bytes. Times are
// CLOCK_MONOTONIC nanoseconds (Now). It is not safe for concurrent use.
type TokenBucket struct {
	rate   float64 // bytes per ns
	depth  float64
	tokens float64
	last   int64
}

// NewTokenBucket returns a bucket of rate bytes per second and depth bytes, full at
// now.
func NewTokenBucket(rate float64, depth int, now int64) *TokenBucket {
	return &TokenBucket{rate: rate / 1e9, depth: float64(depth), tokens: float64(depth), last: now}
}

func (b *TokenBucket) fill(now int64) {
	if now > b.last {
		b.tokens = min(b.depth, b.tokens+float64(now-b.last)*b.rate)
		b.last = now
	}
}

// Wait returns how long after now the bucket will hold n tokens (0 if it does).
func (b *TokenBucket) Wait(n int, now int64) time.Duration {
	b.fill(now)
	short := float64(n) - b.tokens
	if short <= 0 {
		return 0
	}
	return time.Duration(short/b.rate) + 1
}

// Take takes n tokens at now if the bucket holds them, and reports whether it did.
// A shaper waits (Wait) and takes; a policer takes, and a unit it cannot take for
// is beyond the contract.
func (b *TokenBucket) Take(n int, now int64) bool {
	b.fill(now)
	if b.tokens < float64(n) {
		return false
	}
	b.tokens -= float64(n)
	return true
}

// Set changes the rate and depth from now on (renegotiation), keeping the tokens
// it holds up to the new depth.
func (b *TokenBucket) Set(rate float64, depth int, now int64) {
	b.fill(now)
	b.rate, b.depth = rate/1e9, float64(depth)
	b.tokens = min(b.tokens, b.depth)
}
