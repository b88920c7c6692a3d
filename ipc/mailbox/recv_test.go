package mailbox_test

import (
	"context"
	"errors"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/mailbox"
	"github.com/ipclab/ipclab/ipc/mailbox/internal/wire"
	"github.com/ipclab/ipclab/ipc/posixmq"
	"github.com/ipclab/ipclab/ipc/sysv"
)

// rawSend puts bytes into a mailbox's kernel queue, bypassing the framing.
func rawSend(t *testing.T, rec mailbox.Record, b []byte) {
	t.Helper()
	switch rec.Backend {
	case "posixmq":
		q, err := posixmq.Open(rec.Object)
		must(t, err)
		defer q.Close()
		must(t, q.TrySend(b, 0))
	case "sysv":
		id, _ := strconv.Atoi(rec.Object)
		q, err := sysv.OpenQueueID(id)
		must(t, err)
		defer q.Close()
		must(t, q.TrySend(1, b))
	}
}

// TestReceive: blocking, non-blocking and deadline receives; a short buffer and a
// malformed message lose nothing.
func TestReceive(t *testing.T) {
	backends(t, func(t *testing.T, b mailbox.Backend) {
		ns, ctx := newNS(t), ctxT(t)
		mb, err := ns.CreateMailbox("rx", mailbox.WithBackend(b))
		must(t, err)
		defer mb.Close()
		buf := make([]byte, 64)

		_, err = mb.TryRecv(buf)
		wantErr(t, "TryRecv on empty", err, ipc.ErrWouldBlock)
		_, err = mb.Poll(buf)
		wantErr(t, "Poll on empty", err, ipc.ErrWouldBlock)

		dctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		_, err = mb.Recv(dctx, buf)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Recv past its deadline: %v", err)
		}

		// Blocking: a receive waiting when the message arrives gets it.
		got := make(chan string, 1)
		go func() {
			m, err := mb.Recv(ctx, buf)
			if err != nil {
				got <- err.Error()
				return
			}
			got <- string(buf[:m.N])
		}()
		must(t, mb.Send(ctx, []byte("late")))
		if s := <-got; s != "late" {
			t.Errorf("blocking Recv got %q", s)
		}

		// Short buffer: the message stays for the next call.
		must(t, mb.Send(ctx, []byte("a longer message")))
		m, err := mb.Recv(ctx, buf[:4])
		wantErr(t, "Recv into a short buffer", err, io.ErrShortBuffer)
		if m.N != 16 {
			t.Errorf("short buffer: N = %d, want 16", m.N)
		}
		m, err = mb.Recv(ctx, buf)
		must(t, err)
		if string(buf[:m.N]) != "a longer message" {
			t.Errorf("after short buffer: %q", buf[:m.N])
		}

		// Garbage in the queue is reported and skipped; the message behind it arrives.
		rawSend(t, mb.Record(), []byte("not a frame at all"))
		frame := make([]byte, wire.Size(0, len("after")))
		_, err = wire.Encode(frame, wire.Frame{Kind: wire.KindData, Discipline: uint8(mailbox.Receipt), Seq: 1, Payload: []byte("after")})
		must(t, err)
		rawSend(t, mb.Record(), frame)
		_, err = mb.Recv(ctx, buf)
		var fe *mailbox.FrameError
		if !errors.As(err, &fe) {
			t.Errorf("garbage: got %v, want a *FrameError", err)
		}
		m, err = mb.Recv(ctx, buf)
		must(t, err)
		if string(buf[:m.N]) != "after" {
			t.Errorf("after garbage: %q", buf[:m.N])
		}
	})
}

// TestWireDisciplines: a frame carries a Discipline's value.
func TestWireDisciplines(t *testing.T) {
	got := []mailbox.Discipline{mailbox.Discipline(wire.NonBlocking), mailbox.Discipline(wire.Buffered),
		mailbox.Discipline(wire.Receipt), mailbox.Discipline(wire.Delivery), mailbox.Discipline(wire.Response)}
	want := []mailbox.Discipline{mailbox.NonBlocking, mailbox.Buffered, mailbox.Receipt, mailbox.Delivery, mailbox.Response}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("wire discipline %d is %v, want %v", i+1, got[i], want[i])
		}
	}
	if mailbox.FrameOverhead != wire.HeaderSize+wire.MaxAddr {
		t.Errorf("FrameOverhead = %d", mailbox.FrameOverhead)
	}
}
