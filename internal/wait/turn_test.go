package wait

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newTurn() *Turn {
	t := new(Turn)
	t.Init()
	return t
}

// TestTurnExcludes: of 16 goroutines taking and giving 2000 times each, never two
// hold the turn at once, and every one finishes (no wake-up lost).
func TestTurnExcludes(t *testing.T) {
	tu := newTurn()
	var inside, most atomic.Int32
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				if err := tu.Take(context.Background(), nil, false); err != nil {
					t.Error(err)
					return
				}
				if n := inside.Add(1); n > most.Load() {
					most.Store(n)
				}
				if i%7 == 0 {
					time.Sleep(time.Microsecond)
				}
				inside.Add(-1)
				tu.Give()
			}
		}()
	}
	finish(t, &wg)
	if most.Load() != 1 {
		t.Fatalf("%d callers held the turn at once", most.Load())
	}
	if tu.state.Load() != 0 {
		t.Fatalf("state %d after every caller gave the turn back, want 0", tu.state.Load())
	}
}

// TestTurnCancelledWaiters: while many waiters give up at random (contexts ending
// at random times), the others still each get the turn: a waiter that leaves never
// takes a wake-up with it.
func TestTurnCancelledWaiters(t *testing.T) {
	tu := newTurn()
	var wg sync.WaitGroup
	var got, gaveUp atomic.Int64
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 1))
			for i := 0; i < 300; i++ {
				ctx := context.Background()
				var cancel context.CancelFunc = func() {}
				if r.IntN(2) == 0 {
					ctx, cancel = context.WithTimeout(ctx, time.Duration(r.IntN(200))*time.Microsecond)
				}
				err := tu.Take(ctx, nil, false)
				cancel()
				switch {
				case err == nil:
					got.Add(1)
					time.Sleep(time.Duration(r.IntN(50)) * time.Microsecond)
					tu.Give()
				case errors.Is(err, context.DeadlineExceeded):
					gaveUp.Add(1)
				default:
					t.Error(err)
					return
				}
			}
		}(uint64(g))
	}
	finish(t, &wg)
	t.Logf("%d takes, %d gave up", got.Load(), gaveUp.Load())
	if tu.state.Load() != 0 {
		t.Fatalf("state %d at the end, want 0", tu.state.Load())
	}
}

// TestTurnWaiterHonoursItsOwn: behind a holder that never gives the turn back, a
// waiter's context and a deadline (also one set while it waits) each end its own
// wait, and Close ends the rest; Drain then waits for the holder.
func TestTurnWaiterHonoursItsOwn(t *testing.T) {
	tu := newTurn()
	if err := tu.Take(context.Background(), nil, false); err != nil {
		t.Fatal(err)
	}
	if tu.TryTake() {
		t.Fatal("TryTake took a held turn")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := tu.Take(ctx, nil, false); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiter with a 20 ms context: %v", err)
	}

	var dl Deadlines
	errc := make(chan error, 1)
	go func() { errc <- tu.Take(context.Background(), &dl, false) }()
	time.Sleep(10 * time.Millisecond)
	dl.Set(time.Now().Add(10*time.Millisecond), true, false) // while it waits
	select {
	case err := <-errc:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("waiter whose deadline was set while it waited: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a deadline set while the caller waited did not end its wait")
	}

	go func() { errc <- tu.Take(context.Background(), nil, false) }()
	time.Sleep(10 * time.Millisecond)
	tu.Close()
	if err := <-errc; !errors.Is(err, os.ErrClosed) {
		t.Fatalf("waiter at Close: %v", err)
	}
	drained := make(chan struct{})
	go func() { tu.Drain(); close(drained) }()
	select {
	case <-drained:
		t.Fatal("Drain returned while the turn was held")
	case <-time.After(20 * time.Millisecond):
	}
	tu.Give()
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		t.Fatal("Drain did not return once the holder gave the turn back")
	}
	tu.Close()
	tu.Drain() // a second Close: returns at once
	if err := tu.Take(context.Background(), nil, false); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Take after Close and Drain: %v", err)
	}
	if tu.TryTake() || tu.TryDrain() {
		t.Fatal("the turn could be taken after Drain")
	}
}

// TestTurnFreeTakeAllocatesNothing: taking and giving a free turn allocates nothing.
func TestTurnFreeTakeAllocatesNothing(t *testing.T) {
	tu := newTurn()
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() {
		if tu.Take(ctx, nil, false) == nil {
			tu.Give()
		}
	}); n != 0 {
		t.Fatalf("%v allocations per Take and Give", n)
	}
}

func BenchmarkTurnTakeGive(b *testing.B) {
	tu := newTurn()
	ctx := context.Background()
	for b.Loop() {
		tu.Take(ctx, nil, false)
		tu.Give()
	}
}

func finish(t *testing.T, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("callers still waiting after 60 s: a wake-up was lost")
	}
}

// TestTurnNoOvertaking: two callers that each give the turn back and ask again at
// once. While one waits, the other must not take the turn time after time: a turn
// whose waiters competed with the caller that had just given it back let one take
// it 2 999 times in a row while the other waited (found by review); handing it to
// the woken waiter makes them alternate.
func TestTurnNoOvertaking(t *testing.T) {
	tu := newTurn()
	const each = 3000
	var waiting [2]atomic.Bool
	var waits [2]atomic.Int64 // how many waits each has begun
	var mu sync.Mutex         // the run bookkeeping (a turn's holder is alone anyway)
	last, run, longest := -1, 0, 0
	var seen int64 = -1
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := 1 - g
			for range each {
				waits[g].Add(1)
				waiting[g].Store(true)
				if err := tu.Take(context.Background(), nil, false); err != nil {
					t.Error(err)
					return
				}
				waiting[g].Store(false)
				mu.Lock()
				// Count only takes during one uninterrupted wait of the other.
				if waiting[o].Load() && last == g && waits[o].Load() == seen {
					run++
				} else {
					run = 0
				}
				last, seen = g, waits[o].Load()
				if !waiting[o].Load() {
					seen = -1
				}
				longest = max(longest, run)
				mu.Unlock()
				for start := time.Now(); time.Since(start) < 5*time.Microsecond; {
				}
				tu.Give()
			}
		}()
	}
	finish(t, &wg)
	t.Logf("longest run of takes by one caller while the other waited: %d", longest)
	if longest > each/3 {
		t.Fatalf("one caller took the turn %d times in a row while the other waited", longest)
	}
}
