package rpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// chunkReader hands out data a few bytes at a time, as a stream socket may.
type chunkReader struct {
	data  []byte
	chunk int
}

func (r *chunkReader) ReadContext(_ context.Context, p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.chunk, len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// refRecords splits a stream into records the plain way, for comparison.
func refRecords(data []byte, max int) (recs [][]byte, err error) {
	var cur []byte
	frags := 0
	for len(data) > 0 {
		if len(data) < 4 {
			return recs, io.ErrUnexpectedEOF
		}
		h := binary.BigEndian.Uint32(data)
		n := int(h &^ lastFrag)
		data = data[4:]
		if frags == maxFragments {
			return recs, ErrProtocol
		}
		frags++
		if len(cur)+n > max {
			return recs, ErrTooBig
		}
		if len(data) < n {
			return recs, io.ErrUnexpectedEOF
		}
		cur = append(cur, data[:n]...)
		data = data[n:]
		if h&lastFrag != 0 {
			recs = append(recs, append([]byte{}, cur...))
			cur, frags = nil, 0
		}
	}
	if frags > 0 {
		return recs, io.ErrUnexpectedEOF
	}
	return recs, io.EOF
}

// FuzzRecordReader (RPC-09) feeds arbitrary byte streams, in arbitrary chunks, to the
// TCP record reader: it never panics, never returns a record over the limit, never
// grows its buffers past the limit (an announced length is checked before any room
// is made for it), and splits the stream exactly as a plain reference parser does.
func FuzzRecordReader(f *testing.F) {
	one := func(last bool, p []byte) []byte {
		h := uint32(len(p))
		if last {
			h |= lastFrag
		}
		return append(binary.BigEndian.AppendUint32(nil, h), p...)
	}
	f.Add(one(true, []byte("hello, record")), uint16(100), uint8(3))
	f.Add(append(one(false, []byte("ab")), one(true, []byte("cd"))...), uint16(4), uint8(1))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2}, uint16(64), uint8(7))
	f.Add(append(one(false, nil), one(true, nil)...), uint16(0), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, max16 uint16, chunk8 uint8) {
		max := int(max16)
		rr := newRecordReader(&chunkReader{data: data, chunk: 1 + int(chunk8)}, max)
		want, wantErr := refRecords(data, max)
		for i := 0; ; i++ {
			rec, err := rr.next(context.Background())
			if cap(rr.rec) > max && max > 0 {
				t.Fatalf("assembly buffer grew to %d over the limit %d", cap(rr.rec), max)
			}
			if err != nil {
				if i != len(want) {
					t.Fatalf("error %v after %d records, reference has %d", err, i, len(want))
				}
				if !errors.Is(err, wantErr) {
					t.Fatalf("error %v, reference says %v", err, wantErr)
				}
				return
			}
			if len(rec) > max {
				t.Fatalf("record of %d bytes over the limit %d", len(rec), max)
			}
			if i >= len(want) || !bytes.Equal(rec, want[i]) {
				t.Fatalf("record %d is %x, reference has %d records", i, rec, len(want))
			}
		}
	})
}

// FuzzMessage (RPC-09) decodes arbitrary bytes as a call, a reply and an AUTH_SYS
// body: no panic, and whatever is accepted re-encodes to exactly the same bytes (the
// decoders accept nothing they would not write: no non-zero padding, no lengths
// over their bounds, no trailing bytes in an error reply or a credential).
func FuzzMessage(f *testing.F) {
	sys, _ := (&AuthSys{Stamp: 9, Machine: "host", UID: 1000, GID: 100, GIDs: []uint32{1, 2, 3}}).Encode()
	f.Add(appendCall(nil, &CallHeader{XID: 1, Prog: 100000, Vers: 2, Proc: 3, Cred: sys}))
	f.Add(append(appendCall(nil, &CallHeader{XID: 2, Prog: 7, Vers: 1, Proc: 1}), 0, 0, 0, 5))
	f.Add(appendReply(nil, &ReplyHeader{XID: 3, Accepted: true, Stat: Success}))
	f.Add(appendReply(nil, &ReplyHeader{XID: 4, Accepted: true, Stat: ProgMismatch, Low: 1, High: 3}))
	f.Add(appendReply(nil, &ReplyHeader{XID: 5, Reject: rejectAuthError, Auth: AuthTooWeak}))
	f.Add(appendReply(nil, &ReplyHeader{XID: 6, Reject: rejectRPCMismatch, Low: 2, High: 2}))
	f.Add(sys.Body)
	f.Fuzz(func(t *testing.T, msg []byte) {
		if h, args, err := parseCall(msg); err == nil {
			again := append(appendCall(nil, &h), args...)
			if !bytes.Equal(again, msg) {
				t.Fatalf("call %+v re-encodes to %x, decoded from %x", h, again, msg)
			}
		}
		if h, res, err := parseReply(msg); err == nil {
			again := append(appendReply(nil, &h), res...)
			if !bytes.Equal(again, msg) {
				t.Fatalf("reply %+v re-encodes to %x, decoded from %x", h, again, msg)
			}
			if (h.Accepted && h.Stat == Success) != (replyError(&h) == nil) {
				t.Fatalf("reply %+v maps to %v", h, replyError(&h))
			}
		}
		if a, err := DecodeAuthSys(msg); err == nil {
			oa, err := a.Encode()
			if err != nil || !bytes.Equal(oa.Body, msg) {
				t.Fatalf("AUTH_SYS %+v re-encodes to %x, %v; decoded from %x", a, oa.Body, err, msg)
			}
		}
	})
}
