package posixmq_test

import (
	"context"
	"testing"

	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc/posixmq"
)

// BenchmarkSendRecv sends and receives one 64-byte message of priority 1 per
// iteration with caller buffers: 0 allocs/op in every wait strategy.
func BenchmarkSendRecv(b *testing.B) {
	for _, w := range strategies {
		b.Run(w.String(), func(b *testing.B) {
			q := newQueue(b, posixmq.WithAttr(4, 64), posixmq.WithWait(w))
			ctx := context.Background()
			msg := make([]byte, 64)
			buf := make([]byte, 64)
			b.ReportAllocs()
			b.SetBytes(64)
			for b.Loop() {
				if err := q.Send(ctx, msg, 1); err != nil {
					b.Fatal(err)
				}
				if _, _, err := q.Recv(ctx, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTrySendRecv is the non-blocking pair.
func BenchmarkTrySendRecv(b *testing.B) {
	for _, w := range strategies {
		b.Run(w.String(), func(b *testing.B) {
			q := newQueue(b, posixmq.WithAttr(4, 64), posixmq.WithWait(w))
			msg := make([]byte, 64)
			buf := make([]byte, 64)
			b.ReportAllocs()
			for b.Loop() {
				if err := q.TrySend(msg, 1); err != nil {
					b.Fatal(err)
				}
				if _, _, err := q.TryRecv(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestZeroAllocs guards the 0 allocs/op promise outside benchmark runs.
func TestZeroAllocs(t *testing.T) {
	for _, w := range strategies {
		q := newQueue(t, posixmq.WithAttr(4, 64), posixmq.WithWait(w))
		ctx := context.Background()
		msg := make([]byte, 64)
		buf := make([]byte, 64)
		allocs := testing.AllocsPerRun(200, func() {
			if err := q.Send(ctx, msg, 1); err != nil {
				t.Fatal(err)
			}
			if _, _, err := q.Recv(ctx, buf); err != nil {
				t.Fatal(err)
			}
			if err := q.TrySend(msg, 1); err != nil {
				t.Fatal(err)
			}
			if _, _, err := q.TryRecv(buf); err != nil {
				t.Fatal(err)
			}
			// Priority 0 has an attempt of its own; the highest is in the last
			// chunk of the others.
			for _, prio := range []uint{0, posixmq.PrioMax - 1} {
				if err := q.Send(ctx, msg, prio); err != nil {
					t.Fatal(err)
				}
				if _, got, err := q.Recv(ctx, buf); err != nil || got != prio {
					t.Fatalf("Recv: priority %d, %v; want %d", got, err, prio)
				}
			}
		})
		if allocs != 0 {
			t.Errorf("%v: %v allocs per Send+Recv+TrySend+TryRecv and two more Send+Recv, want 0", w, allocs)
		}
	}
}

// BenchmarkRawSendRecv is the same pair with bare system calls on a blocking
// descriptor: the floor the library's overhead is measured against.
func BenchmarkRawSendRecv(b *testing.B) {
	q := newQueue(b, posixmq.WithAttr(4, 64))
	f, err := q.File()
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	msg := make([]byte, 64)
	buf := make([]byte, 64)
	b.ReportAllocs()
	b.SetBytes(64)
	for b.Loop() {
		if err := sys.MqTimedsend(fd, msg, 1, nil); err != nil {
			b.Fatal(err)
		}
		if _, _, err := sys.MqTimedreceive(fd, buf, nil); err != nil {
			b.Fatal(err)
		}
	}
}
