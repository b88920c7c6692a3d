package stream

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
)

// HeaderSize is the size of the header in front of every unit on the wire.
const HeaderSize = 40

// MaxPayload is the largest payload of one unit.
const MaxPayload = 1 << 20

const (
	magic   = 'Q'
	version = 1

	kindData    = 1
	kindControl = 2
)

// A Unit is one data unit of a stream as the sink hands it out.
type Unit struct {
	// Sub is the sub-stream (of a complex stream) the unit belongs to.
	Sub uint32
	// Seq is the unit's sequence number, from 0, counted by the source.
	Seq uint64
	// PTS is the unit's media time: where in the stream it belongs (e.g. frame 3 of
	// a 25/s video is at 120 ms). Complex streams are synchronised by it.
	PTS int64
	// Sent, Arrived and Released are CLOCK_MONOTONIC nanoseconds (see Now): when the
	// source let the unit go (took its tokens), when the sink read it from the
	// transport, and when the sink handed it out (later than Arrived in isochronous
	// mode, which holds units back). The sink reads ahead (WithReadAhead), so
	// Arrived is when the unit came, unless the read-ahead buffer was full.
	Sent, Arrived, Released int64
	// Len is the payload's length; the payload is in the caller's buffer.
	Len int
	// Late reports that the unit arrived, or was handed out, after the contract's
	// maximum delay (Sync and Isochronous) — with ByMediaTime, after its play-out
	// time plus the slack, if that is sooner.
	Late bool
	// Marked reports that the unit was beyond the contract (the policer marks
	// instead of dropping).
	Marked bool
}

// Delay is the unit's end-to-end delay: from sending to release.
func (u Unit) Delay() int64 { return u.Released - u.Sent }

// header is the wire header of a unit.
type header struct {
	kind  byte
	flags byte
	sub   uint32
	seq   uint64
	sent  int64
	pts   int64
	len   uint32
}

func (h *header) put(b []byte) {
	b[0], b[1], b[2], b[3] = magic, version, h.kind, h.flags
	binary.LittleEndian.PutUint32(b[4:], h.sub)
	binary.LittleEndian.PutUint64(b[8:], h.seq)
	binary.LittleEndian.PutUint64(b[16:], uint64(h.sent))
	binary.LittleEndian.PutUint64(b[24:], uint64(h.pts))
	binary.LittleEndian.PutUint32(b[32:], h.len)
	binary.LittleEndian.PutUint32(b[36:], 0)
}

// parse reads a header from b, checking everything a peer could get wrong before
// the length is used.
func (h *header) parse(b []byte) error {
	if len(b) < HeaderSize {
		return fmt.Errorf("%w: unit of %d bytes, shorter than its %d-byte header", ErrProtocol, len(b), HeaderSize)
	}
	if b[0] != magic || b[1] != version {
		return fmt.Errorf("%w: not a stream unit (magic %#x, version %d)", ErrProtocol, b[0], b[1])
	}
	h.kind, h.flags = b[2], b[3]
	if h.kind != kindData && h.kind != kindControl {
		return fmt.Errorf("%w: unknown unit kind %d", ErrProtocol, h.kind)
	}
	h.sub = binary.LittleEndian.Uint32(b[4:])
	h.seq = binary.LittleEndian.Uint64(b[8:])
	h.sent = int64(binary.LittleEndian.Uint64(b[16:]))
	h.pts = int64(binary.LittleEndian.Uint64(b[24:]))
	h.len = binary.LittleEndian.Uint32(b[32:])
	if h.seq == ^uint64(0) {
		return fmt.Errorf("%w: sequence number %d, the last there is", ErrProtocol, h.seq)
	}
	if h.len > MaxPayload {
		return fmt.Errorf("%w: payload of %d bytes declared, more than %d", ErrProtocol, h.len, MaxPayload)
	}
	if binary.LittleEndian.Uint32(b[36:]) != 0 {
		return fmt.Errorf("%w: reserved header bytes set", ErrProtocol)
	}
	return nil
}

var (
	// ErrProtocol is returned when a peer sends something that is not a unit of this
	// package's protocol, or a control message out of turn. It matches unix.EPROTO.
	ErrProtocol = ipc.NewSentinel("stream protocol violation", nil, unix.EPROTO)
	// ErrRefused is returned by Open when the sink's admission control refuses the
	// stream, or counters with less than the source's FlowSpec.MinRate. It matches
	// unix.ECONNREFUSED.
	ErrRefused = ipc.NewSentinel("stream refused by admission control", nil, unix.ECONNREFUSED)
)
