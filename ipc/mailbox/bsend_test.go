package mailbox_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/mailbox"
)

// bsend-len: dir name count size wait. Opens a mailbox with a send buffer of count
// messages and Bsends count messages "L-I" padded to size bytes; right after each
// Bsend returns it prints the mailbox's Len. Signals, then Flushes and signals again.
// The test runs it with GOMAXPROCS=1: no other goroutine can run between a Bsend and
// the Len that follows it.
var _ = ipctest.Helper("bsend-len", func(args []string) int {
	ns := helperNS(args)
	n, size := atoi(args[2]), atoi(args[3])
	w, err := ipc.ParseWaitStrategy(args[4])
	check(err)
	mb, err := ns.OpenMailbox(args[1], mailbox.WithSendBuffer(n), mailbox.WithWait(w))
	check(err)
	defer mb.Close()
	for i := 0; i < n; i++ {
		check(mb.Bsend(hctx(), padded(fmt.Sprintf("L-%d", i), size)))
		l, err := mb.Len()
		check(err)
		fmt.Println(l)
	}
	ipctest.Signal()
	check(mb.Flush(hctx()))
	ipctest.Signal()
	return 0
})

// bsend-bursts: dir name count burst size wait. Bsends count messages, numbered from
// 0 and padded to size bytes, in bursts of burst back-to-back calls, and Flushes after
// every other burst, so that bursts start both with the send buffer empty and with it
// still holding messages. Signals once everything is flushed.
var _ = ipctest.Helper("bsend-bursts", func(args []string) int {
	ns := helperNS(args)
	n, burst, size := atoi(args[2]), atoi(args[3]), atoi(args[4])
	w, err := ipc.ParseWaitStrategy(args[5])
	check(err)
	mb, err := ns.OpenMailbox(args[1], mailbox.WithWait(w))
	check(err)
	defer mb.Close()
	msg := make([]byte, size)
	for i := 0; i < n; i++ {
		copy(msg, fmt.Sprintf("%08d", i))
		check(mb.Bsend(hctx(), msg))
		if i%(2*burst) == burst-1 {
			check(mb.Flush(hctx()))
		}
	}
	check(mb.Flush(hctx()))
	ipctest.Signal()
	return 0
})

// link-bsend-bursts: dir name count size wait. Dials the link name (this end sends)
// and sends count messages, numbered from 0 and padded to size bytes: first with
// TrySend until the link is full, then signals and Bsends the rest in bursts three
// times that capacity, Flushing after every other burst. Signals once everything is
// flushed and waits for the test.
var _ = ipctest.Helper("link-bsend-bursts", func(args []string) int {
	ns := helperNS(args)
	n, size := atoi(args[2]), atoi(args[3])
	w, err := ipc.ParseWaitStrategy(args[4])
	check(err)
	l, err := ns.DialLink(hctx(), args[1], mailbox.WithWait(w))
	check(err)
	defer l.Close()
	msg := make([]byte, size)
	i := 0
	for ; i < n; i++ {
		copy(msg, fmt.Sprintf("%08d", i))
		err := l.Tx.TrySend(msg)
		if errors.Is(err, ipc.ErrWouldBlock) {
			break
		}
		check(err)
	}
	if i == 0 || i == n {
		panic(fmt.Sprintf("the link took %d of %d messages", i, n))
	}
	ipctest.Signal()
	burst := 3 * i
	for k := 0; i < n; i, k = i+1, k+1 {
		copy(msg, fmt.Sprintf("%08d", i))
		check(l.Tx.Bsend(hctx(), msg))
		if k%(2*burst) == burst-1 {
			check(l.Tx.Flush(hctx()))
		}
	}
	check(l.Tx.Flush(hctx()))
	ipctest.Signal()
	ipctest.Await()
	return 0
})

// padded returns s followed by spaces up to size bytes.
func padded(s string, size int) []byte {
	return []byte(fmt.Sprintf("%-*s", size, s))
}

// capacity returns how many size-byte Bsend payloads the empty mailbox mb stores, by
// filling it with TrySend and draining it again.
func capacity(t *testing.T, mb *mailbox.Mailbox, size int) int {
	t.Helper()
	msg := make([]byte, size)
	n := 0
	for ; n < 1000; n++ {
		if err := mb.TrySend(msg); err != nil {
			wantErr(t, "TrySend on a full mailbox", err, ipc.ErrWouldBlock)
			break
		}
	}
	if got := len(drain(t, mb)); got != n {
		t.Fatalf("filled with %d messages, drained %d", n, got)
	}
	if n == 0 || n == 1000 {
		t.Fatalf("mailbox capacity %d messages", n)
	}
	return n
}

// TestBsendStoresWhenRoom: while the mailbox has room and nothing is buffered, Bsend
// stores the message in the kernel object before it returns (the Len right after it
// counts it), so its latency never depends on the flushing goroutine getting a CPU.
// Only messages that do not fit wait in the send buffer, behind which nothing
// overtakes; another process then receives them all, in order.
func TestBsendStoresWhenRoom(t *testing.T) {
	cases := []struct {
		b mailbox.Backend
		w ipc.WaitStrategy
	}{{mailbox.PosixMQ, ipc.WaitPoller}, {mailbox.PosixMQ, ipc.WaitKernel}, {mailbox.SysV, ipc.WaitKernel}}
	for _, c := range cases {
		t.Run(c.b.String()+"/"+c.w.String(), func(t *testing.T) {
			ns, ctx := newNS(t), ctxT(t)
			const size = 3000 // several fill a System V queue (capacity in bytes) too
			mb, err := ns.CreateMailbox("room", mailbox.WithBackend(c.b), mailbox.WithCapacity(4, size))
			must(t, err)
			defer mb.Close()
			capa := capacity(t, mb, size)
			n := capa + 3
			h := start(t, "bsend-len", ipctest.WithArgs(ns.Dir(), "room", strconv.Itoa(n), strconv.Itoa(size), c.w.String()),
				ipctest.WithEnv("GOMAXPROCS=1"))
			h.Await() // every Bsend returned
			buf := make([]byte, size)
			for i := 0; i < n; i++ {
				m, err := mb.Recv(ctx, buf)
				must(t, err)
				if got, want := strings.TrimRight(string(buf[:m.N]), " "), fmt.Sprintf("L-%d", i); got != want {
					t.Fatalf("message %d: got %q, want %q", i, got, want)
				}
			}
			h.Await() // flushed
			h.MustSucceed()
			var want []string
			for i := 0; i < n; i++ {
				want = append(want, strconv.Itoa(min(i+1, capa)))
			}
			if got := lines(h.Output()); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("mailbox length after each Bsend: %v, want %v (capacity %d)", got, want, capa)
			}
		})
	}
}

// TestBsendOrder/FI-06: a sender process Bsends bursts three times larger than the
// mailbox while this process receives; every message arrives exactly once and in order,
// whether it went straight to the queue or waited in the send buffer.
func TestBsendOrder(t *testing.T) {
	cases := []struct {
		b    mailbox.Backend
		w    ipc.WaitStrategy
		size int
	}{{mailbox.PosixMQ, ipc.WaitPoller, 64}, {mailbox.PosixMQ, ipc.WaitKernel, 64}, {mailbox.SysV, ipc.WaitKernel, 2000}}
	for _, c := range cases {
		t.Run(c.b.String()+"/"+c.w.String()+"/FI-06", func(t *testing.T) {
			ns := newNS(t)
			mb, err := ns.CreateMailbox("burst", mailbox.WithBackend(c.b), mailbox.WithCapacity(4, c.size))
			must(t, err)
			defer mb.Close()
			capa := capacity(t, mb, c.size)
			const n = 3000
			burst := 3 * capa
			h := start(t, "bsend-bursts", ipctest.WithArgs(ns.Dir(), "burst", strconv.Itoa(n), strconv.Itoa(burst),
				strconv.Itoa(c.size), c.w.String()))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			buf := make([]byte, c.size)
			for i := 0; i < n; i++ {
				m, err := mb.Recv(ctx, buf)
				must(t, err)
				if m.N != c.size {
					t.Fatalf("message %d: %d bytes, want %d", i, m.N, c.size)
				}
				got, err := strconv.Atoi(string(buf[:8]))
				must(t, err)
				if got != i {
					t.Fatalf("message %d of %d is number %d (bursts of %d, mailbox capacity %d)", i, n, got, burst, capa)
				}
			}
			h.Await()
			h.MustSucceed()
			if extra := drain(t, mb); len(extra) != 0 {
				t.Errorf("%d messages beyond the %d sent", len(extra), n)
			}
		})
	}
}

// TestBsendOrderLink/FI-06: TestBsendOrder over a link (a seqpacket connection, whose
// capacity the sender measures by filling it).
func TestBsendOrderLink(t *testing.T) {
	for _, w := range []ipc.WaitStrategy{ipc.WaitPoller, ipc.WaitKernel} {
		t.Run(w.String()+"/FI-06", func(t *testing.T) {
			ns, ctx := newNS(t), ctxT(t)
			const n, size = 3000, 1000
			ln, err := ns.ListenLink("blink", mailbox.RecvEnd, mailbox.WithCapacity(1, size))
			must(t, err)
			defer ln.Close()
			h := start(t, "link-bsend-bursts", ipctest.WithArgs(ns.Dir(), "blink", strconv.Itoa(n), strconv.Itoa(size), w.String()))
			l, err := ln.Accept(ctx)
			must(t, err)
			defer l.Close()
			h.Await() // the link is full
			buf := make([]byte, size)
			for i := 0; i < n; i++ {
				m, err := l.Rx.Recv(ctx, buf)
				must(t, err)
				if m.N != size {
					t.Fatalf("message %d: %d bytes, want %d", i, m.N, size)
				}
				got, err := strconv.Atoi(string(buf[:8]))
				must(t, err)
				if got != i {
					t.Fatalf("message %d of %d is number %d", i, n, got)
				}
			}
			h.Await() // flushed
			if m, err := l.Rx.TryRecv(buf); !errors.Is(err, ipc.ErrWouldBlock) {
				t.Errorf("after the last message: %v, %v", m, err)
			}
			h.Signal()
			h.MustSucceed()
		})
	}
}
