// Package wire is the mailbox package's wire format: the frame every message, ack and
// reply travels in, and the names a frame's reply-to address may hold. The mailbox
// package is its only user; nothing here is public API.
package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/ipclab/ipclab/ipc"
)

// Every message a mailbox, port or link carries is one frame:
//
//	offset size field
//	0      2    magic "MB"
//	2      1    version (1)
//	3      1    kind: data, ack or reply
//	4      1    discipline the sender used (data) or answers (ack, reply): the value
//	            of a mailbox.Discipline, 1 (nonblocking) to 5 (response)
//	5      1    length of the reply-to address (0..MaxAddr)
//	6      2    reserved, zero
//	8      8    sequence number (little endian)
//	16     4    payload length (little endian), exactly what follows the address
//	20     n    reply-to address: the namespace name of the sender's reply port
//	20+n   m    payload
//
// The length field is redundant with the message boundary the kernel keeps, so a
// frame whose fields disagree with its size is rejected rather than trusted.

const (
	// HeaderSize is the size of the fixed part of a frame.
	HeaderSize = 20
	// MaxAddr is the longest reply-to address a frame carries.
	MaxAddr = 64

	frameMagic0  = 'M'
	frameMagic1  = 'B'
	frameVersion = 1
)

// Disciplines as a frame carries them: mailbox.Discipline's values (a test there
// checks that they agree). A data frame carries any of NonBlocking to Response.
const (
	NonBlocking uint8 = iota + 1
	Buffered
	Receipt
	Delivery
	Response
)

// Kind says what a frame carries.
type Kind uint8

// Frame kinds.
const (
	// KindData is a message from a sender.
	KindData Kind = 1
	// KindAck acknowledges that a receiver has taken the data frame with the same
	// sequence number (delivery-based sends).
	KindAck Kind = 2
	// KindReply carries the answer to the data frame with the same sequence number
	// (response-based sends).
	KindReply Kind = 3
)

// String returns "data", "ack" or "reply".
func (k Kind) String() string {
	switch k {
	case KindData:
		return "data"
	case KindAck:
		return "ack"
	case KindReply:
		return "reply"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Frame is a decoded frame. Addr and Payload alias the buffer it was decoded from.
type Frame struct {
	Kind       Kind
	Discipline uint8
	Seq        uint64
	Addr       []byte
	Payload    []byte
}

// FrameError reports a malformed frame: which rule it broke and its size. The frame
// is discarded, but nothing else is: the next receive returns the next message.
type FrameError struct {
	Reason string
	Size   int
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("malformed frame (%d bytes): %s", e.Size, e.Reason)
}

// Is makes a FrameError match ipc.ErrInvalid.
func (e *FrameError) Is(target error) bool { return target == ipc.ErrInvalid }

// Size returns the size of a frame with an address of addrLen bytes and a payload of
// payloadLen bytes.
func Size(addrLen, payloadLen int) int { return HeaderSize + addrLen + payloadLen }

// Encode writes f into buf and returns the frame's length. It fails with an error
// matching ipc.ErrInvalid if f is not valid or buf is too short; it does not allocate.
func Encode(buf []byte, f Frame) (int, error) {
	if err := checkFields(f.Kind, f.Discipline, len(f.Addr)); err != "" {
		return 0, &FrameError{Reason: err, Size: Size(len(f.Addr), len(f.Payload))}
	}
	if err := checkAddr(f.Addr); err != "" {
		return 0, &FrameError{Reason: err, Size: Size(len(f.Addr), len(f.Payload))}
	}
	n := Size(len(f.Addr), len(f.Payload))
	if len(f.Payload) > 1<<31-1 || len(buf) < n {
		return 0, &FrameError{Reason: fmt.Sprintf("buffer of %d bytes too short", len(buf)), Size: n}
	}
	buf[0], buf[1], buf[2] = frameMagic0, frameMagic1, frameVersion
	buf[3], buf[4], buf[5] = byte(f.Kind), byte(f.Discipline), byte(len(f.Addr))
	buf[6], buf[7] = 0, 0
	binary.LittleEndian.PutUint64(buf[8:], f.Seq)
	binary.LittleEndian.PutUint32(buf[16:], uint32(len(f.Payload)))
	copy(buf[HeaderSize:], f.Addr)
	copy(buf[HeaderSize+len(f.Addr):], f.Payload)
	return n, nil
}

// Decode parses one received frame. Every field is checked against the rules
// above and against len(b) before use; a bad frame returns a *FrameError (matching
// ipc.ErrInvalid) and never panics. It does not allocate on success.
func Decode(b []byte) (Frame, error) {
	bad := func(format string, a ...any) (Frame, error) {
		return Frame{}, &FrameError{Reason: fmt.Sprintf(format, a...), Size: len(b)}
	}
	if len(b) < HeaderSize {
		return bad("shorter than the %d-byte header", HeaderSize)
	}
	if b[0] != frameMagic0 || b[1] != frameMagic1 {
		return bad("bad magic %#02x%02x", b[0], b[1])
	}
	if b[2] != frameVersion {
		return bad("unsupported version %d", b[2])
	}
	if b[6] != 0 || b[7] != 0 {
		return bad("reserved bytes not zero")
	}
	kind, disc, alen := Kind(b[3]), b[4], int(b[5])
	if err := checkFields(kind, disc, alen); err != "" {
		return bad("%s", err)
	}
	plen := binary.LittleEndian.Uint32(b[16:])
	if HeaderSize+alen > len(b) || uint64(plen) != uint64(len(b)-HeaderSize-alen) {
		return bad("length field says %d payload bytes after a %d-byte address, frame has %d", plen, alen, len(b)-HeaderSize)
	}
	addr := b[HeaderSize : HeaderSize+alen]
	if err := checkAddr(addr); err != "" {
		return bad("%s", err)
	}
	return Frame{
		Kind:       kind,
		Discipline: disc,
		Seq:        binary.LittleEndian.Uint64(b[8:]),
		Addr:       addr,
		Payload:    b[HeaderSize+alen:],
	}, nil
}

// checkFields validates the kind, discipline and address length of a frame.
func checkFields(kind Kind, d uint8, alen int) string {
	if alen > MaxAddr {
		return fmt.Sprintf("reply-to address of %d bytes (at most %d)", alen, MaxAddr)
	}
	switch kind {
	case KindData:
		if d < NonBlocking || d > Response {
			return fmt.Sprintf("unknown discipline %d", d)
		}
	case KindAck:
		if d != Delivery {
			return fmt.Sprintf("ack for discipline %d", d)
		}
	case KindReply:
		if d != Response {
			return fmt.Sprintf("reply for discipline %d", d)
		}
	default:
		return fmt.Sprintf("unknown kind %d", uint8(kind))
	}
	return ""
}

// checkAddr accepts empty addresses and valid reply-port names.
func checkAddr(a []byte) string {
	if len(a) == 0 {
		return ""
	}
	if !ValidName(a, true) {
		return "reply-to address is not a valid name"
	}
	return ""
}

// ValidName reports whether b is a name: 1 to MaxAddr bytes of letters, digits, '.',
// '_' and '-', starting with a letter or digit. Reserved names (reply ports) start
// with "_r." and are accepted only when reserved is set.
func ValidName(b []byte, reserved bool) bool {
	if len(b) == 0 || len(b) > MaxAddr {
		return false
	}
	start := 0
	if reserved && bytes.HasPrefix(b, []byte("_r.")) && len(b) > 3 {
		start = 3
	} else if !isAlnum(b[0]) {
		return false
	}
	for _, c := range b[start:] {
		if !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
