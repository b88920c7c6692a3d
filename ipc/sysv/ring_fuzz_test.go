package sysv

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/ipclab/ipclab/ipc"
)

// FuzzRingReader is the shm ring reader against a hostile writer (S12, FI-19): the
// fuzzer writes the producer's position and the whole data area of a real ring
// segment, then the reader takes messages until it finds none or refuses the state.
// It must never panic or read outside the data area: every message it returns fits
// its buffer, every refusal is ErrInvalid (or ErrTruncated for a long message), and
// it never consumes more than was published.
func FuzzRingReader(f *testing.F) {
	const capacity = 256
	rec := func(msgs ...string) []byte {
		var b []byte
		for _, m := range msgs {
			b = binary.NativeEndian.AppendUint32(b, uint32(len(m)))
			b = append(b, m...)
			for len(b)%8 != 0 {
				b = append(b, 0)
			}
		}
		return b
	}
	f.Add(uint64(16), rec("hello"))
	f.Add(uint64(32), rec("one", "two"))
	f.Add(uint64(8), binary.NativeEndian.AppendUint32(nil, wrapMarker))
	f.Add(uint64(1<<20), rec("x"))
	f.Add(uint64(16), binary.NativeEndian.AppendUint32(nil, 1<<31))
	r, err := CreateRing(capacity)
	if err != nil {
		f.Fatal(err)
	}
	defer r.Close()
	defer r.Remove()
	m := r.seg.Bytes()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // an empty ring returns at once instead of waiting for a writer
	buf := make([]byte, 64)
	f.Fuzz(func(t *testing.T, head uint64, data []byte) {
		clear(m[ringHeader : ringHeader+capacity])
		copy(m[ringHeader:ringHeader+capacity], data)
		binary.NativeEndian.PutUint64(m[offTail:], 0)
		binary.NativeEndian.PutUint64(m[offHead:], head)
		r.recvPos = 0
		for range capacity {
			before := r.recvPos
			n, err := r.Recv(ctx, buf)
			if n > len(buf) || n < 0 {
				t.Fatalf("returned %d bytes for a %d-byte buffer", n, len(buf))
			}
			if r.recvPos < before || (head >= before && r.recvPos > head) {
				t.Fatalf("consumed to %d of %d published", r.recvPos, head)
			}
			switch {
			case err == nil || errors.Is(err, ipc.ErrTruncated):
				continue
			case errors.Is(err, context.Canceled):
				if head != r.recvPos {
					t.Fatalf("waited with %d bytes published and %d consumed", head, r.recvPos)
				}
				return
			case errors.Is(err, ipc.ErrInvalid):
				return
			default:
				t.Fatalf("unexpected error: %v", err)
			}
		}
	})
}
