package doors

import (
	"bytes"
	"testing"
)

func frame(h header, data []byte) []byte {
	b := make([]byte, hdrSize, hdrSize+len(data))
	h.put(b)
	return append(b, data...)
}

// FuzzDecodeFrame feeds arbitrary messages to the frame decoder: it must never
// panic, never accept a length over the limit or a count over SCM_MAX_FD, and what
// it accepts must re-encode to the same bytes.
func FuzzDecodeFrame(f *testing.F) {
	f.Add(frame(header{kind: kCall, id: 1, length: 5, rfds: 16, aux0: defaultInline, aux1: 1 << 20}, []byte("hello")))
	f.Add(frame(header{kind: kCall, id: 2, flags: fSplit | fShmOK, nfds: 1, length: 1 << 20}, nil))
	f.Add(frame(header{kind: kReply, id: 2, flags: fShm, length: 1 << 20}, nil))
	f.Add(frame(header{kind: kError, id: 3, aux0: codeHandler, length: 4}, []byte("oops")))
	f.Add(frame(header{kind: kShm, nfds: 1, aux0: 65536}, nil))
	f.Add(frame(header{kind: kCall, id: 1, flags: fSplit, length: 1 << 40}, nil))
	f.Add([]byte{1, 2})
	const limit = 1 << 20
	f.Fuzz(func(t *testing.T, msg []byte) {
		h, body, err := decodeFrame(msg, limit)
		if err != nil {
			return
		}
		if (h.kind == kCall || h.kind == kReply) && h.length > limit {
			t.Fatalf("accepted length %d over the limit", h.length)
		}
		if h.nfds > maxWireFd || h.rfds > maxWireFd {
			t.Fatalf("accepted descriptor counts %d/%d", h.nfds, h.rfds)
		}
		if h.flags&(fSplit|fShm) == 0 && uint64(len(body)) != h.length {
			t.Fatalf("inline body of %d bytes for length %d", len(body), h.length)
		}
		if again := frame(h, body); !bytes.Equal(again, msg) {
			t.Fatalf("re-encoded %x, decoded from %x", again, msg)
		}
	})
}

// FuzzDecodeInfo checks the INFO payload decoder the same way.
func FuzzDecodeInfo(f *testing.F) {
	in := Info{Pid: 42, Uid: 1000, ID: 0xfeed, Attr: AttrShm | AttrUnref, MaxData: 1 << 20, MaxFds: 16, Inline: defaultInline}
	var b [infoSize]byte
	in.put(b[:])
	f.Add(b[:])
	f.Add(make([]byte, infoSize))
	f.Fuzz(func(t *testing.T, p []byte) {
		in, err := decodeInfo(p)
		if err != nil {
			return
		}
		if in.MaxData <= 0 || in.Inline <= 0 || in.Inline > in.MaxData || in.MaxFds > maxWireFd || in.Pid <= 0 {
			t.Fatalf("accepted %+v", in)
		}
		var again [infoSize]byte
		in.put(again[:])
		if !bytes.Equal(again[:], p) {
			t.Fatalf("re-encoded %x from %x", again, p)
		}
	})
}

// FuzzQuickDecode checks the hot paths' shortcuts against the full decoder: what
// quickCall or quickReply accepts, decodeFrame accepts too and decodes the same way;
// and the plainest calls and replies do take the shortcut.
func FuzzQuickDecode(f *testing.F) {
	f.Add(frame(header{kind: kCall, id: 1, length: 5, rfds: 16, aux0: defaultInline, aux1: 1 << 20}, []byte("hello")), uint64(1))
	f.Add(frame(header{kind: kCall, id: 7, flags: fShmOK, length: 3, aux0: 9}, []byte("abc")), uint64(7))
	f.Add(frame(header{kind: kReply, id: 2, length: 4}, []byte("pong")), uint64(2))
	f.Add(frame(header{kind: kReply, id: 2, length: 4}, []byte("pong")), uint64(3))
	f.Add(frame(header{kind: kReply, id: 4, length: 9}, []byte("too long")), uint64(4))
	f.Add(frame(header{kind: kReply, id: 2, flags: fShm, length: 1 << 20}, nil), uint64(2))
	f.Add(frame(header{kind: kReply, id: 3, nfds: 1, length: 1}, []byte("x")), uint64(3))
	f.Add(frame(header{kind: kCall, id: 0, length: 1}, []byte("x")), uint64(0))
	f.Add([]byte{1, 3}, uint64(0))
	const limit = 1 << 10
	f.Fuzz(func(t *testing.T, msg []byte, id uint64) {
		full, fbody, err := decodeFrame(msg, limit)
		if h, body, ok := quickCall(msg, limit); ok {
			if err != nil || h != full || !bytes.Equal(body, fbody) || h.kind != kCall {
				t.Fatalf("quickCall accepted %x as %+v, decodeFrame says %+v, %v", msg, h, full, err)
			}
		} else if err == nil && full.kind == kCall && full.nfds == 0 && full.flags&^fShmOK == 0 {
			t.Fatalf("quickCall refused a plain call %+v", full)
		}
		if body, ok := quickReply(msg, id, limit); ok {
			if err != nil || full.kind != kReply || full.id != id || full.flags != 0 || full.nfds != 0 || !bytes.Equal(body, fbody) {
				t.Fatalf("quickReply accepted %x for id %d, decodeFrame says %+v, %v", msg, id, full, err)
			}
		} else if err == nil && full.kind == kReply && full.id == id && full.flags == 0 && full.nfds == 0 && full.rfds == 0 {
			t.Fatalf("quickReply refused a plain reply %+v", full)
		}
	})
}
