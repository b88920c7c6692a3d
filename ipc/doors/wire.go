package doors

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Wire format constants (see the package documentation for the protocol).
const (
	wireVersion = 1
	hdrSize     = 32

	// chunkSize is the size of the body messages that follow a split frame: well under
	// the default SO_SNDBUF (212992), the ceiling of one seqpacket message.
	chunkSize = 64 << 10

	// defaultInline is the largest data a frame carries inline (in the same message
	// as its header); larger data is split or goes through shared memory.
	defaultInline = 16 << 10

	maxErrMsg = 1024 // longest error text in an error frame
	infoSize  = 40
	maxWireFd = 253 // SCM_MAX_FD
)

// Frame kinds.
const (
	kInfo    = 1 // c->s: who are you; s->c: the door's Info
	kCall    = 2 // c->s: a call
	kReply   = 3 // s->c: a call's result
	kError   = 4 // s->c: a call failed (aux0 = code)
	kCancel  = 5 // c->s: the caller gave up on call id
	kDup     = 6 // c->s: make me a new connection (reply carries one descriptor)
	kShm     = 7 // c->s: here is my shared-memory region (one memfd), aux0 = threshold
	kRevoked = 8 // s->c: the door was revoked; every call fails from now on
	kMax     = kRevoked
)

// Frame flags.
const (
	fSplit = 1 << 0 // the data follows in ceil(length/chunkSize) body messages
	fShm   = 1 << 1 // the data lies in the shared-memory region at offset 0
	fShmOK = 1 << 2 // CALL: the reply may come through the shared-memory region
	fAll   = fSplit | fShm | fShmOK
)

// Error codes carried by error frames.
const (
	codeHandler    = 1 // the handler returned an error (data: its text)
	codePerm       = 2 // the caller's credentials failed the door's policy
	codeRevoked    = 3 // the door was revoked
	codeTooBig     = 4 // data or result too large
	codeFdsRefused = 5 // the door refuses descriptors, or too many
	codeProtocol   = 6 // malformed frame
	codeMax        = codeProtocol
)

// header is a frame header, decoded into private memory once and never re-read.
type header struct {
	kind   uint8
	flags  uint16
	nfds   uint16 // descriptors attached to this message
	rfds   uint16 // CALL: descriptors the caller accepts in the reply
	id     uint64
	length uint64 // data length (inline, split or in shared memory)
	aux0   uint32 // CALL: inline reply capacity; ERROR: code; SHM: threshold
	aux1   uint32 // CALL: largest result accepted
}

// put encodes h into b[:hdrSize].
func (h *header) put(b []byte) {
	_ = b[hdrSize-1]
	b[0] = wireVersion
	b[1] = h.kind
	binary.NativeEndian.PutUint16(b[2:], h.flags)
	binary.NativeEndian.PutUint16(b[4:], h.nfds)
	binary.NativeEndian.PutUint16(b[6:], h.rfds)
	binary.NativeEndian.PutUint64(b[8:], h.id)
	binary.NativeEndian.PutUint64(b[16:], h.length)
	binary.NativeEndian.PutUint32(b[24:], h.aux0)
	binary.NativeEndian.PutUint32(b[28:], h.aux1)
}

// errFrame describes a malformed frame; it makes the receiver drop the connection.
type errFrame string

func (e errFrame) Error() string { return "doors: malformed frame: " + string(e) }

// decodeFrame decodes and validates one received message: its header and, for an
// inline frame, its data (a sub-slice of msg). Every field is checked against the
// frame kind; nothing is allocated. maxData bounds the declared length.
func decodeFrame(msg []byte, maxData uint64) (header, []byte, error) {
	var h header
	if len(msg) < hdrSize {
		return h, nil, errFrame(fmt.Sprintf("%d bytes, shorter than a header", len(msg)))
	}
	if msg[0] != wireVersion {
		return h, nil, errFrame(fmt.Sprintf("version %d", msg[0]))
	}
	h.kind = msg[1]
	h.flags = binary.NativeEndian.Uint16(msg[2:])
	h.nfds = binary.NativeEndian.Uint16(msg[4:])
	h.rfds = binary.NativeEndian.Uint16(msg[6:])
	h.id = binary.NativeEndian.Uint64(msg[8:])
	h.length = binary.NativeEndian.Uint64(msg[16:])
	h.aux0 = binary.NativeEndian.Uint32(msg[24:])
	h.aux1 = binary.NativeEndian.Uint32(msg[28:])
	body := msg[hdrSize:]
	if h.kind == 0 || h.kind > kMax {
		return h, nil, errFrame(fmt.Sprintf("kind %d", h.kind))
	}
	if h.flags&^fAll != 0 {
		return h, nil, errFrame(fmt.Sprintf("flags %#x", h.flags))
	}
	if h.nfds > maxWireFd || h.rfds > maxWireFd {
		return h, nil, errFrame("descriptor count above SCM_MAX_FD")
	}
	if (h.kind == kCall || h.kind == kReply) && h.length > maxData || h.length > math.MaxInt32 {
		return h, nil, errFrame(fmt.Sprintf("length %d above the limit %d", h.length, maxData))
	}
	out := h.flags & (fSplit | fShm)
	switch h.kind {
	case kCall, kReply:
		if out == fSplit|fShm {
			return h, nil, errFrame("split and shm together")
		}
		if h.kind == kReply && h.flags&fShmOK != 0 {
			return h, nil, errFrame("shm-ok on a reply")
		}
	default:
		if h.flags != 0 {
			return h, nil, errFrame(fmt.Sprintf("flags %#x on kind %d", h.flags, h.kind))
		}
	}
	if out == 0 {
		if uint64(len(body)) != h.length {
			return h, nil, errFrame(fmt.Sprintf("declared %d bytes, carries %d", h.length, len(body)))
		}
	} else {
		if len(body) != 0 {
			return h, nil, errFrame("out-of-line frame with inline data")
		}
		if out == fSplit && h.length == 0 {
			return h, nil, errFrame("empty split body")
		}
	}
	switch h.kind {
	case kCall:
		if h.id == 0 {
			return h, nil, errFrame("call id 0")
		}
	case kInfo, kCancel, kDup, kRevoked:
		if h.nfds != 0 || (h.kind != kInfo && h.length != 0) {
			return h, nil, errFrame(fmt.Sprintf("kind %d with data or descriptors", h.kind))
		}
	case kShm:
		if h.nfds != 1 || h.length != 0 {
			return h, nil, errFrame("shm frame needs exactly one descriptor and no data")
		}
	case kError:
		if h.nfds != 0 || h.aux0 == 0 || h.aux0 > codeMax || h.length > maxErrMsg {
			return h, nil, errFrame("bad error frame")
		}
	}
	return h, body, nil
}

// quickReply returns the data of msg when it is the plainest reply to call id:
// inline data of at most maxResult bytes, no descriptors, no flags. It accepts only
// messages decodeFrame accepts as such a reply (see FuzzQuickDecode); ok is false
// for everything else, which then goes through decodeFrame.
func quickReply(msg []byte, id uint64, maxResult int) (data []byte, ok bool) {
	if len(msg) < hdrSize || msg[0] != wireVersion || msg[1] != kReply ||
		binary.NativeEndian.Uint16(msg[2:]) != 0 || binary.NativeEndian.Uint32(msg[4:]) != 0 ||
		binary.NativeEndian.Uint64(msg[8:]) != id ||
		binary.NativeEndian.Uint64(msg[16:]) != uint64(len(msg)-hdrSize) || len(msg)-hdrSize > maxResult {
		return nil, false
	}
	return msg[hdrSize:], true
}

// quickCall decodes msg when it is the plainest call: inline data of at most
// maxData bytes, no descriptors attached, no flags but fShmOK. It accepts only
// messages decodeFrame accepts, and decodes them the same way (see
// FuzzQuickDecode); ok is false for everything else, which then goes through
// decodeFrame.
func quickCall(msg []byte, maxData uint64) (h header, data []byte, ok bool) {
	if len(msg) < hdrSize || msg[0] != wireVersion || msg[1] != kCall {
		return h, nil, false
	}
	h = header{kind: kCall, flags: binary.NativeEndian.Uint16(msg[2:]), nfds: binary.NativeEndian.Uint16(msg[4:]),
		rfds: binary.NativeEndian.Uint16(msg[6:]), id: binary.NativeEndian.Uint64(msg[8:]),
		length: binary.NativeEndian.Uint64(msg[16:]), aux0: binary.NativeEndian.Uint32(msg[24:]),
		aux1: binary.NativeEndian.Uint32(msg[28:])}
	if h.flags&^fShmOK != 0 || h.nfds != 0 || h.rfds > maxWireFd || h.id == 0 ||
		h.length != uint64(len(msg)-hdrSize) || h.length > maxData || h.length > math.MaxInt32 {
		return h, nil, false
	}
	return h, msg[hdrSize:], true
}

// chunks returns how many body messages follow a split frame of length n.
func chunks(n uint64) int { return int((n + chunkSize - 1) / chunkSize) }

// Info describes a door, as door_info(3C) does.
type Info struct {
	// Pid is the server process's id.
	Pid int
	// Uid is the server's effective uid.
	Uid uint32
	// ID is the door's unique identifier (random, 64 bits, fixed at New).
	ID uint64
	// Attr holds the door's attributes.
	Attr Attr
	// MaxData is the largest argument the door accepts, in bytes.
	MaxData int
	// MaxFds is the most descriptors a call may carry (0 with AttrRefuseFds).
	MaxFds int
	// Inline is the largest argument sent in one message with its header; larger
	// arguments are split or travel through shared memory.
	Inline int
}

// Attr is a set of door attributes.
type Attr uint32

// Door attributes.
const (
	// AttrRefuseFds: the door refuses descriptors (DOOR_REFUSE_DESC).
	AttrRefuseFds Attr = 1 << iota
	// AttrUnref: the server asked for unreferenced notifications (DOOR_UNREF_MULTI).
	AttrUnref
	// AttrPrivatePool: the door has its own pool of server goroutines (DOOR_PRIVATE).
	AttrPrivatePool
	// AttrRevoked: the door has been revoked (DOOR_REVOKED).
	AttrRevoked
	// AttrShm: the door accepts a shared-memory region for large data.
	AttrShm
)

func (in *Info) put(b []byte) {
	binary.NativeEndian.PutUint32(b[0:], uint32(in.Pid))
	binary.NativeEndian.PutUint32(b[4:], in.Uid)
	binary.NativeEndian.PutUint64(b[8:], in.ID)
	binary.NativeEndian.PutUint32(b[16:], uint32(in.Attr))
	binary.NativeEndian.PutUint32(b[20:], uint32(in.MaxFds))
	binary.NativeEndian.PutUint64(b[24:], uint64(in.MaxData))
	binary.NativeEndian.PutUint64(b[32:], uint64(in.Inline))
}

// decodeInfo decodes and validates the data of an INFO reply.
func decodeInfo(b []byte) (Info, error) {
	var in Info
	if len(b) != infoSize {
		return in, errFrame(fmt.Sprintf("info of %d bytes", len(b)))
	}
	in.Pid = int(binary.NativeEndian.Uint32(b[0:]))
	in.Uid = binary.NativeEndian.Uint32(b[4:])
	in.ID = binary.NativeEndian.Uint64(b[8:])
	in.Attr = Attr(binary.NativeEndian.Uint32(b[16:]))
	fds := binary.NativeEndian.Uint32(b[20:])
	data := binary.NativeEndian.Uint64(b[24:])
	inline := binary.NativeEndian.Uint64(b[32:])
	if in.Pid <= 0 || in.Pid > 1<<22 || fds > maxWireFd || data > math.MaxInt32 ||
		inline == 0 || inline > data || inline > 1<<20 || in.Attr>>5 != 0 ||
		(in.Attr&AttrRefuseFds != 0 && fds != 0) {
		return in, errFrame("info fields out of range")
	}
	in.MaxFds, in.MaxData, in.Inline = int(fds), int(data), int(inline)
	return in, nil
}
