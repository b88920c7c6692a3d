package rpc

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"
)

// FuzzDurableLog (RPC-07, RPC-09): a reply log of any content loads without a
// panic; what loads is a prefix of whole records, each of which encodes back to
// its bytes (TestDurableBadInput shows the file cut to that prefix).
func FuzzDurableLog(f *testing.F) {
	k := cacheKey{client: "udp 127.0.0.1:9", xid: 7, prog: 1, vers: 2, proc: 3}
	one := appendRecord(nil, k, []byte("effect"), []byte("reply"))
	two := appendRecord(append([]byte(nil), one...), cacheKey{client: "door 1", xid: 8}, nil, []byte{1, 2, 3})
	f.Add(one)
	f.Add(two)
	f.Add(two[:len(two)-1])
	f.Add([]byte("RPC1\x00\x00\x00\x10garbage"))
	f.Add(one[12:])
	f.Fuzz(func(t *testing.T, data []byte) {
		// The body framed with a correct checksum, so that mutations reach the
		// field decoding behind the CRC.
		framed := binary.BigEndian.AppendUint32(nil, durableMagic)
		framed = binary.BigEndian.AppendUint32(framed, uint32(len(data)))
		framed = binary.BigEndian.AppendUint32(framed, crc32.Checksum(data, castagnoli))
		framed = append(framed, data...)
		if e, reply, n, ok := decodeRecord(framed); ok {
			key := cacheKey{client: e.Client, xid: e.XID, prog: e.Prog, vers: e.Vers, proc: e.Proc}
			if n != len(framed) || !bytes.Equal(appendRecord(nil, key, e.Data, reply), framed) {
				t.Fatalf("framed record of %d bytes decodes to %d bytes that do not encode back", len(framed), n)
			}
		}
		good := 0
		for good < len(data) {
			e, reply, n, ok := decodeRecord(data[good:])
			if !ok {
				break
			}
			if n <= 0 || good+n > len(data) {
				t.Fatalf("record length %d at %d of %d", n, good, len(data))
			}
			key := cacheKey{client: e.Client, xid: e.XID, prog: e.Prog, vers: e.Vers, proc: e.Proc}
			if re := appendRecord(nil, key, e.Data, reply); !bytes.Equal(re, data[good:good+n]) {
				t.Fatalf("record at %d does not encode back to its bytes", good)
			}
			good += n
		}
		loaded := 0
		c := newReplyCache(64, 0)
		n, err := loadRecords(data, c, func(Effect) error { loaded++; return nil })
		if err != nil || n != good {
			t.Fatalf("loaded %d bytes (%v), want %d", n, err, good)
		}
		if len(c.m) > min(loaded, 64) {
			t.Fatalf("%d cache entries from %d records", len(c.m), loaded)
		}
	})
}
