package sysv

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/ipclab/ipclab/internal/sys"
)

// The benchmarks run with -benchmem to show that the hot paths allocate nothing with
// caller buffers: 0 allocs/op.

func BenchmarkQueueSendRecv(b *testing.B) {
	q := tmpQueue(b)
	ctx := context.Background()
	msg, buf := make([]byte, 64), make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		if err := q.Send(ctx, 1, msg); err != nil {
			b.Fatal(err)
		}
		if _, _, err := q.Recv(ctx, buf, Any()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkQueuePingPong exercises the blocking path: each Recv usually waits in the
// kernel for the other goroutine's message.
func BenchmarkQueuePingPong(b *testing.B) {
	q := tmpQueue(b)
	ctx := context.Background()
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		for {
			n, _, err := q.Recv(ctx, buf, OfType(1))
			if err != nil || n == 0 {
				return
			}
			if q.Send(ctx, 2, buf[:n]) != nil {
				return
			}
		}
	}()
	msg, buf := make([]byte, 64), make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		if err := q.Send(ctx, 1, msg); err != nil {
			b.Fatal(err)
		}
		if _, _, err := q.Recv(ctx, buf, OfType(2)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	_ = q.Send(ctx, 1, nil)
	<-done
}

func BenchmarkSemOp(b *testing.B) {
	s := tmpSemSet(b, 2)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Op(ctx, SemOp{0, 1, Undo}, SemOp{1, 1, 0}); err != nil {
			b.Fatal(err)
		}
		if err := s.Op(ctx, SemOp{0, -1, Undo}, SemOp{1, -1, 0}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSemPingPong exercises the blocking path with a context that cannot end.
// (With a cancellable context, a call that has to block costs internal/wait's
// AfterFunc registration: one allocation.)
func BenchmarkSemPingPong(b *testing.B) {
	s := tmpSemSet(b, 2)
	ctx := context.Background()
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for s.Op(ctx, SemOp{0, -1, 0}) == nil && !stop.Load() && s.Op(ctx, SemOp{1, 1, 0}) == nil {
		}
	}()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Op(ctx, SemOp{0, 1, 0}); err != nil {
			b.Fatal(err)
		}
		if err := s.Op(ctx, SemOp{1, -1, 0}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	stop.Store(true)
	_ = s.Op(ctx, SemOp{0, 1, 0})
	<-done
}

func BenchmarkRingSendRecv(b *testing.B) {
	for _, sig := range []Signal{SignalFutex, SignalSemaphore} {
		b.Run(sig.String(), func(b *testing.B) {
			r := tmpRing(b, 4096, WithSignal(sig))
			ctx := context.Background()
			msg, buf := make([]byte, 64), make([]byte, 64)
			b.ReportAllocs()
			for b.Loop() {
				if err := r.Send(ctx, msg); err != nil {
					b.Fatal(err)
				}
				if _, err := r.Recv(ctx, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRawMsgSendRecv is BenchmarkQueueSendRecv with bare system calls: the
// difference is the library's overhead.
func BenchmarkRawMsgSendRecv(b *testing.B) {
	q := tmpQueue(b)
	sbuf, rbuf := make([]byte, 8+64), make([]byte, 8+64)
	sbuf[0] = 1
	for b.Loop() {
		if err := sys.Msgsnd(q.ID(), sbuf, 0); err != nil {
			b.Fatal(err)
		}
		if _, err := sys.Msgrcv(q.ID(), rbuf, 0, 0); err != nil {
			b.Fatal(err)
		}
	}
}
