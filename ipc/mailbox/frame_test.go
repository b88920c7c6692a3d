package mailbox_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/mailbox"
	"github.com/ipclab/ipclab/ipc/posixmq"
	"github.com/ipclab/ipclab/ipc/sysv"
)

func encode(t testing.TB, f mailbox.Frame) []byte {
	buf := make([]byte, mailbox.FrameSize(len(f.Addr), len(f.Payload)))
	n, err := mailbox.EncodeFrame(buf, f)
	must(t, err)
	return buf[:n]
}

func TestFrameRoundTrip(t *testing.T) {
	f := mailbox.Frame{Kind: mailbox.KindData, Discipline: mailbox.Delivery, Seq: 1<<40 + 7,
		Addr: []byte("_r.123.abc"), Payload: []byte("payload")}
	g, err := mailbox.DecodeFrame(encode(t, f))
	must(t, err)
	if g.Kind != f.Kind || g.Discipline != f.Discipline || g.Seq != f.Seq ||
		!bytes.Equal(g.Addr, f.Addr) || !bytes.Equal(g.Payload, f.Payload) {
		t.Fatalf("got %+v, want %+v", g, f)
	}
	if _, err := mailbox.EncodeFrame(make([]byte, 10), f); !errors.Is(err, ipc.ErrInvalid) {
		t.Errorf("short buffer: %v", err)
	}
	if _, err := mailbox.EncodeFrame(make([]byte, 100), mailbox.Frame{Kind: mailbox.KindAck, Discipline: mailbox.Receipt}); !errors.Is(err, ipc.ErrInvalid) {
		t.Errorf("ack for a receipt: %v", err)
	}
}

// TestBadFrames (FI-18): lying lengths, oversized addresses and unknown fields are
// rejected with a clear error, before anything is trusted.
func TestBadFrames(t *testing.T) { t.Run("FI-18", testBadFrames) }

func testBadFrames(t *testing.T) {
	good := encode(t, mailbox.Frame{Kind: mailbox.KindData, Discipline: mailbox.Response, Seq: 9,
		Addr: []byte("_r.1.ff"), Payload: []byte("hello")})
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := map[string][]byte{
		"empty":             nil,
		"short header":      good[:10],
		"bad magic":         mutate(func(b []byte) []byte { b[0] = 'X'; return b }),
		"bad version":       mutate(func(b []byte) []byte { b[2] = 9; return b }),
		"unknown kind":      mutate(func(b []byte) []byte { b[3] = 77; return b }),
		"unknown disc":      mutate(func(b []byte) []byte { b[4] = 0; return b }),
		"reserved":          mutate(func(b []byte) []byte { b[7] = 1; return b }),
		"huge address":      mutate(func(b []byte) []byte { b[5] = 200; return b }),
		"address past end":  mutate(func(b []byte) []byte { b[5] = 60; return b }),
		"length too big":    mutate(func(b []byte) []byte { b[19] = 0x7f; return b }),
		"length too small":  mutate(func(b []byte) []byte { b[16]--; return b }),
		"truncated payload": good[:len(good)-1],
		"trailing bytes":    append(append([]byte(nil), good...), 0),
		"bad address":       mutate(func(b []byte) []byte { b[mailbox.HeaderSize+3] = '/'; return b }),
	}
	for name, b := range cases {
		_, err := mailbox.DecodeFrame(b)
		var fe *mailbox.FrameError
		if !errors.As(err, &fe) || !errors.Is(err, ipc.ErrInvalid) || fe.Size != len(b) {
			t.Errorf("%s: got %v, want a *FrameError for %d bytes", name, err, len(b))
		}
	}
}

func FuzzDecodeFrame(f *testing.F) {
	f.Add([]byte{})
	f.Add(encodeFuzzSeed(mailbox.Frame{Kind: mailbox.KindData, Discipline: mailbox.Receipt, Seq: 1, Payload: []byte("x")}))
	f.Add(encodeFuzzSeed(mailbox.Frame{Kind: mailbox.KindData, Discipline: mailbox.Response, Seq: 2, Addr: []byte("_r.1.aa"), Payload: []byte("call")}))
	f.Add(encodeFuzzSeed(mailbox.Frame{Kind: mailbox.KindAck, Discipline: mailbox.Delivery, Seq: 3}))
	f.Add(encodeFuzzSeed(mailbox.Frame{Kind: mailbox.KindReply, Discipline: mailbox.Response, Seq: 4, Payload: []byte("r")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := mailbox.DecodeFrame(b)
		if err != nil {
			if !errors.Is(err, ipc.ErrInvalid) {
				t.Fatalf("error %v does not match ipc.ErrInvalid", err)
			}
			return
		}
		// A frame that decodes re-encodes to the same bytes.
		out := make([]byte, len(b))
		n, err := mailbox.EncodeFrame(out, fr)
		if err != nil || !bytes.Equal(out[:n], b) {
			t.Fatalf("re-encode: %v\n got %x\nwant %x", err, out[:n], b)
		}
	})
}

func encodeFuzzSeed(f mailbox.Frame) []byte {
	buf := make([]byte, mailbox.FrameSize(len(f.Addr), len(f.Payload)))
	n, _ := mailbox.EncodeFrame(buf, f)
	return buf[:n]
}

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
		rawSend(t, mb.Record(), encode(t, mailbox.Frame{Kind: mailbox.KindData, Discipline: mailbox.Receipt, Seq: 1, Payload: []byte("after")}))
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
