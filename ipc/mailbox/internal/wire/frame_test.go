package wire_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/mailbox/internal/wire"
)

func encode(t testing.TB, f wire.Frame) []byte {
	buf := make([]byte, wire.Size(len(f.Addr), len(f.Payload)))
	n, err := wire.Encode(buf, f)
	must(t, err)
	return buf[:n]
}

func TestFrameRoundTrip(t *testing.T) {
	f := wire.Frame{Kind: wire.KindData, Discipline: wire.Delivery, Seq: 1<<40 + 7,
		Addr: []byte("_r.123.abc"), Payload: []byte("payload")}
	g, err := wire.Decode(encode(t, f))
	must(t, err)
	if g.Kind != f.Kind || g.Discipline != f.Discipline || g.Seq != f.Seq ||
		!bytes.Equal(g.Addr, f.Addr) || !bytes.Equal(g.Payload, f.Payload) {
		t.Fatalf("got %+v, want %+v", g, f)
	}
	if _, err := wire.Encode(make([]byte, 10), f); !errors.Is(err, ipc.ErrInvalid) {
		t.Errorf("short buffer: %v", err)
	}
	if _, err := wire.Encode(make([]byte, 100), wire.Frame{Kind: wire.KindAck, Discipline: wire.Receipt}); !errors.Is(err, ipc.ErrInvalid) {
		t.Errorf("ack for a receipt: %v", err)
	}
}

// TestBadFrames (FI-18): lying lengths, oversized addresses and unknown fields are
// rejected with a clear error, before anything is trusted.
func TestBadFrames(t *testing.T) { t.Run("FI-18", testBadFrames) }

func testBadFrames(t *testing.T) {
	good := encode(t, wire.Frame{Kind: wire.KindData, Discipline: wire.Response, Seq: 9,
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
		"bad address":       mutate(func(b []byte) []byte { b[wire.HeaderSize+3] = '/'; return b }),
	}
	for name, b := range cases {
		_, err := wire.Decode(b)
		var fe *wire.FrameError
		if !errors.As(err, &fe) || !errors.Is(err, ipc.ErrInvalid) || fe.Size != len(b) {
			t.Errorf("%s: got %v, want a *FrameError for %d bytes", name, err, len(b))
		}
	}
}

func FuzzDecodeFrame(f *testing.F) {
	f.Add([]byte{})
	f.Add(encodeFuzzSeed(wire.Frame{Kind: wire.KindData, Discipline: wire.Receipt, Seq: 1, Payload: []byte("x")}))
	f.Add(encodeFuzzSeed(wire.Frame{Kind: wire.KindData, Discipline: wire.Response, Seq: 2, Addr: []byte("_r.1.aa"), Payload: []byte("call")}))
	f.Add(encodeFuzzSeed(wire.Frame{Kind: wire.KindAck, Discipline: wire.Delivery, Seq: 3}))
	f.Add(encodeFuzzSeed(wire.Frame{Kind: wire.KindReply, Discipline: wire.Response, Seq: 4, Payload: []byte("r")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := wire.Decode(b)
		if err != nil {
			if !errors.Is(err, ipc.ErrInvalid) {
				t.Fatalf("error %v does not match ipc.ErrInvalid", err)
			}
			return
		}
		// A frame that decodes re-encodes to the same bytes.
		out := make([]byte, len(b))
		n, err := wire.Encode(out, fr)
		if err != nil || !bytes.Equal(out[:n], b) {
			t.Fatalf("re-encode: %v\n got %x\nwant %x", err, out[:n], b)
		}
	})
}

func encodeFuzzSeed(f wire.Frame) []byte {
	buf := make([]byte, wire.Size(len(f.Addr), len(f.Payload)))
	n, _ := wire.Encode(buf, f)
	return buf[:n]
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
