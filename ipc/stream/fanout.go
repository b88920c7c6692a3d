package stream

import (
	"context"
	"errors"
	"time"
)

// A Fanout multicasts one stream to several sinks whose contracts differ: each
// branch is a Source opened to one sink, and a branch whose contract has Every = k
// gets only the units whose sequence number is a multiple of k (a receiver of lower
// capability: every other video frame). Sequence numbers are the Fanout's, so each
// sink sees which units it was meant to get. It is safe for concurrent use.
type Fanout struct {
	branches []*Source
	seq      uint64
	mu       chan struct{}
}

// NewFanout returns a Fanout over the branches.
func NewFanout(branches ...*Source) *Fanout {
	return &Fanout{branches: branches, mu: make(chan struct{}, 1)}
}

// Send sends payload at media time pts to every branch that wants this unit, each
// shaped by its own contract, one after another. It returns an OpError wrapping the
// errors of the branches that failed, joined; the others got the unit.
func (f *Fanout) Send(ctx context.Context, payload []byte, pts time.Duration) error {
	select {
	case f.mu <- struct{}{}:
	case <-ctx.Done():
		return wrapOp("send", ctx.Err())
	}
	defer func() { <-f.mu }()
	seq := f.seq
	f.seq++
	var errs []error
	for _, b := range f.branches {
		b.mu.Lock()
		if seq%uint64(b.spec.every()) == 0 {
			if err := b.send(ctx, seq, payload, pts); err != nil {
				errs = append(errs, err)
			}
		}
		b.mu.Unlock()
	}
	return wrapOp("send", errors.Join(errs...))
}

// Close closes every branch.
func (f *Fanout) Close() error {
	var errs []error
	for _, b := range f.branches {
		errs = append(errs, b.Close())
	}
	return wrapOp("close", errors.Join(errs...))
}
