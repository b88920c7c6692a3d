package rpc_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"
)

// TestQueuedCallHonoursContext (RPC-08): a call queued behind another on the same
// client gives up when its own context ends, not when the call ahead of it does;
// Close ends a queued call at once too.
func TestQueuedCallHonoursContext(t *testing.T) {
	_, port := silentUDP(t)
	c := dial(t, "udp", "127.0.0.1:"+strconv.Itoa(port), 0x20000a07, 1)
	ctx, cancel := context.WithTimeout(bg, 3*time.Second)
	defer cancel()
	first := c.Go(ctx, 0, nil, nil)
	time.Sleep(50 * time.Millisecond) // first is in flight
	qctx, qcancel := context.WithTimeout(bg, 100*time.Millisecond)
	start := time.Now()
	err := c.Call(qctx, 0, nil, nil)
	qcancel()
	if d := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || d > time.Second {
		t.Errorf("queued call: %v after %v, want context.DeadlineExceeded after about 100ms", err, d)
	}
	p := c.Go(bg, 0, nil, nil)
	time.Sleep(50 * time.Millisecond)
	c.Close()
	select {
	case <-p.Done():
		if err := p.Wait(); !errors.Is(err, os.ErrClosed) {
			t.Errorf("queued call after Close: %v, want os.ErrClosed", err)
		}
	case <-time.After(time.Second):
		t.Errorf("queued call still waiting 1s after Close")
	}
	<-first.Done()
}
