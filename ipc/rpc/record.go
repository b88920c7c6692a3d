package rpc

import (
	"context"
	"encoding/binary"
	"io"
)

// Record marking (RFC 5531 §11): on a byte stream every message is a record of one or
// more fragments, each preceded by a 4-byte big-endian word whose top bit marks the
// last fragment and whose other 31 bits give the fragment's length.
const (
	lastFrag = 1 << 31
	// DefaultMaxRecord is the largest record (call or reply, all fragments
	// together) a Server or Client accepts unless told otherwise (WithMaxRecord).
	DefaultMaxRecord = 1 << 20
	// maxDatagram is the largest UDP payload.
	maxDatagram = 65507
)

// ctxReader is what a record reader reads from: a stream socket.
type ctxReader interface {
	ReadContext(ctx context.Context, p []byte) (int, error)
}

// recordReader reads records from a stream through a buffer of its own. A record's
// length is checked against max fragment by fragment, from each fragment's header,
// before its bytes are read, and room is made for a record's bytes only as they
// arrive: a peer that announces a huge record costs what it sends, not an
// allocation of the announced size.
type recordReader struct {
	r     ctxReader
	max   int
	buf   []byte // read buffer; buf[start:end] is unread
	start int
	end   int
	rec   []byte // the record being assembled, reused
}

const readBufSize = 64 << 10

// maxFragments bounds the fragments of one record, so that a stream of empty
// fragments cannot keep a reader busy without end.
const maxFragments = 1024

func newRecordReader(r ctxReader, max int) *recordReader {
	return &recordReader{r: r, max: max, buf: make([]byte, readBufSize)}
}

// fill reads more bytes into the buffer, moving the unread ones to its front first.
func (rr *recordReader) fill(ctx context.Context) error {
	if rr.start > 0 {
		rr.end = copy(rr.buf, rr.buf[rr.start:rr.end])
		rr.start = 0
	}
	n, err := rr.r.ReadContext(ctx, rr.buf[rr.end:])
	rr.end += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// next returns the next record. It aliases the reader's memory and is valid until
// the next call. At a clean end of stream between records it returns io.EOF; inside
// a record io.ErrUnexpectedEOF; a record over the limit ErrTooBig.
func (rr *recordReader) next(ctx context.Context) ([]byte, error) {
	rr.rec = rr.rec[:0]
	first := true
	for frags := 0; ; frags++ {
		if frags == maxFragments {
			return nil, protoErr("record of more than %d fragments", maxFragments)
		}
		for rr.end-rr.start < 4 {
			if err := rr.fill(ctx); err != nil {
				if err == io.EOF && (!first || rr.end > rr.start) {
					err = io.ErrUnexpectedEOF
				}
				return nil, err
			}
		}
		hdr := binary.BigEndian.Uint32(rr.buf[rr.start:])
		rr.start += 4
		n := int(hdr &^ lastFrag)
		if n > rr.max-len(rr.rec) {
			return nil, ErrTooBig
		}
		last := hdr&lastFrag != 0
		// The common case, one fragment that is already in the buffer: no copy.
		if first && last && rr.end-rr.start >= n {
			rec := rr.buf[rr.start : rr.start+n : rr.start+n]
			rr.start += n
			return rec, nil
		}
		first = false
		for n > 0 {
			if rr.end == rr.start {
				if err := rr.fill(ctx); err != nil {
					if err == io.EOF {
						err = io.ErrUnexpectedEOF
					}
					return nil, err
				}
			}
			k := min(n, rr.end-rr.start)
			if need := len(rr.rec) + k; need > cap(rr.rec) {
				// Room for the bytes that have arrived, not for what the header
				// announces: doubling, but at most what is buffered plus
				// readBufSize beyond them, never past the fragment's end or the
				// limit. A peer that announces a huge record and sends nothing
				// costs what it sent.
				want := min(max(need, 2*cap(rr.rec)), need+readBufSize, len(rr.rec)+n, rr.max)
				grown := make([]byte, len(rr.rec), max(want, need))
				copy(grown, rr.rec)
				rr.rec = grown
			}
			rr.rec = append(rr.rec, rr.buf[rr.start:rr.start+k]...)
			rr.start += k
			n -= k
		}
		if last {
			return rr.rec, nil
		}
	}
}

// putMark writes the record mark of a single-fragment record of n bytes into b[:4].
func putMark(b []byte, n int) {
	binary.BigEndian.PutUint32(b, lastFrag|uint32(n))
}
