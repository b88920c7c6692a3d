package mailbox_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc/mailbox"
)

// benchBox is a mailbox (and a second handle on it) in a fresh namespace.
func benchBox(b *testing.B, be mailbox.Backend) (*mailbox.Mailbox, *mailbox.Mailbox) {
	ns := newNS(b)
	mb, err := ns.CreateMailbox("bench", mailbox.WithBackend(be), mailbox.WithCapacity(8, 256))
	must(b, err)
	b.Cleanup(func() { mb.Close() })
	other, err := ns.OpenMailbox("bench")
	must(b, err)
	b.Cleanup(func() { other.Close() })
	return mb, other
}

// BenchmarkDiscipline prices each discipline between two handles of one process (a
// receiving goroutine answers); allocs/op shows the hot paths allocate nothing.
func BenchmarkDiscipline(b *testing.B) {
	for _, be := range []mailbox.Backend{mailbox.PosixMQ, mailbox.SysV} {
		for _, d := range []mailbox.Discipline{mailbox.NonBlocking, mailbox.Buffered, mailbox.Receipt, mailbox.Delivery, mailbox.Response} {
			b.Run(be.String()+"/"+d.String(), func(b *testing.B) {
				mb, other := benchBox(b, be)
				ctx := context.Background()
				msg := make([]byte, 64)
				done := make(chan error, 1)
				go func() {
					buf := make([]byte, 256)
					for i := 0; i < b.N; i++ {
						m, err := other.Recv(ctx, buf)
						if err == nil && m.Discipline == mailbox.Response {
							err = other.Reply(ctx, m, buf[:m.N])
						}
						if err != nil {
							done <- err
							return
						}
					}
					done <- nil
				}()
				reply := make([]byte, 256)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					var err error
					if d == mailbox.NonBlocking {
						for err = mb.TrySend(msg); err != nil; err = mb.TrySend(msg) {
						}
					} else {
						_, err = mb.SendWith(ctx, d, msg, reply)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				must(b, mb.Flush(ctx))
				must(b, <-done)
			})
		}
	}
}

// fanIn has n sender processes send per messages each, with discipline d, to one
// mailbox this process receives from, and returns the messages in arrival order and
// the time from the go signal to the last message.
func fanIn(t testing.TB, be mailbox.Backend, d mailbox.Discipline, n, per int) ([]string, time.Duration) {
	ns := newNS(t)
	mb, err := ns.CreateMailbox("fanin", mailbox.WithBackend(be), mailbox.WithCapacity(10, 256))
	must(t, err)
	defer mb.Close()
	procs := make([]*ipctest.Proc, n)
	for i := range procs {
		procs[i] = start(t, "send", ipctest.WithArgs(ns.Dir(), "fanin", d.String(), strconv.Itoa(per), "s"+strconv.Itoa(i), "wait"))
	}
	for _, p := range procs {
		p.Await()
	}
	ctx := context.Background()
	buf := make([]byte, 256)
	got := make([]string, 0, n*per)
	t0 := time.Now()
	for _, p := range procs {
		p.Signal()
	}
	for i := 0; i < n*per; i++ {
		m, err := mb.Recv(ctx, buf)
		must(t, err)
		if m.Discipline == mailbox.Response {
			must(t, mb.Reply(ctx, m, []byte(strings.ToUpper(string(buf[:m.N])))))
		}
		got = append(got, string(buf[:m.N]))
	}
	elapsed := time.Since(t0)
	for _, p := range procs {
		p.Await()
		p.MustSucceed()
	}
	return got, elapsed
}

// TestFanIn: four sender processes, one receiver, every discipline: every message
// arrives exactly once and each sender's messages arrive in order.
func TestFanIn(t *testing.T) {
	const n, per = 4, 50
	for _, d := range []mailbox.Discipline{mailbox.Buffered, mailbox.Receipt, mailbox.Delivery, mailbox.Response} {
		t.Run(d.String(), func(t *testing.T) {
			got, elapsed := fanIn(t, mailbox.PosixMQ, d, n, per)
			for s := 0; s < n; s++ {
				var mine []string
				for _, g := range got {
					if strings.HasPrefix(g, fmt.Sprintf("s%d-", s)) {
						mine = append(mine, g)
					}
				}
				if !slices.Equal(mine, expect(fmt.Sprintf("s%d", s), per)) {
					t.Errorf("sender %d: got %v", s, mine)
				}
			}
			t.Logf("%d senders × %d messages, %v: %.0f msgs/s", n, per, d, float64(n*per)/elapsed.Seconds())
		})
	}
}

// BenchmarkFanIn: four sender processes, one receiving mailbox, per discipline and
// backend; msgs/s is the receiver's rate.
func BenchmarkFanIn(b *testing.B) {
	const n = 4
	for _, be := range []mailbox.Backend{mailbox.PosixMQ, mailbox.SysV} {
		for _, d := range []mailbox.Discipline{mailbox.Buffered, mailbox.Receipt, mailbox.Delivery, mailbox.Response} {
			b.Run(be.String()+"/"+d.String(), func(b *testing.B) {
				per := max(b.N/n, 1)
				_, elapsed := fanIn(b, be, d, n, per)
				b.ReportMetric(float64(n*per)/elapsed.Seconds(), "msgs/s")
				b.ReportMetric(float64(elapsed.Nanoseconds())/float64(n*per), "ns/msg")
			})
		}
	}
}
