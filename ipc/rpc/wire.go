package rpc

import (
	"encoding/binary"
	"fmt"
)

// RFC 5531 constants.
const (
	rpcVersion = 2

	msgCall  = 0
	msgReply = 1

	replyAccepted = 0
	replyDenied   = 1

	rejectRPCMismatch = 0
	rejectAuthError   = 1

	// maxAuthBody is the largest opaque_auth body RFC 5531 allows.
	maxAuthBody = 400
	// maxMachineName and maxGids bound an authsys_parms (RFC 5531 §A: machinename<255>,
	// gids<16>).
	maxMachineName = 255
	maxGids        = 16
)

// AcceptStat is the status of an accepted reply (RFC 5531 accept_stat).
type AcceptStat uint32

// The accept_stat values of RFC 5531.
const (
	Success      AcceptStat = 0 // RPC executed successfully
	ProgUnavail  AcceptStat = 1 // remote hasn't exported the program
	ProgMismatch AcceptStat = 2 // remote can't support the version
	ProcUnavail  AcceptStat = 3 // program can't support the procedure
	GarbageArgs  AcceptStat = 4 // procedure can't decode the params
	SystemErr    AcceptStat = 5 // e.g. memory allocation failure
)

// Auth flavours this package speaks.
const (
	FlavorNone uint32 = 0 // AUTH_NONE
	FlavorSys  uint32 = 1 // AUTH_SYS (AUTH_UNIX)
)

// OpaqueAuth is an RFC 5531 opaque_auth: a flavour and up to 400 bytes of body. In a
// decoded message Body aliases the message buffer.
type OpaqueAuth struct {
	Flavor uint32
	Body   []byte
}

// AuthSys is the body of an AUTH_SYS credential (RFC 5531 authsys_parms). Nothing in
// it is verified: any client can claim any uid (see the package doc).
type AuthSys struct {
	Stamp   uint32
	Machine string // at most 255 bytes
	UID     uint32
	GID     uint32
	GIDs    []uint32 // at most 16
}

// Encode returns the credential's opaque_auth, or an error matching ipc.ErrInvalid
// when a field is over its bound.
func (a *AuthSys) Encode() (OpaqueAuth, error) {
	if len(a.Machine) > maxMachineName || len(a.GIDs) > maxGids {
		return OpaqueAuth{}, invalid("encode", "AUTH_SYS", "machine name of %d bytes or %d gids over the limit (255, 16)", len(a.Machine), len(a.GIDs))
	}
	b := binary.BigEndian.AppendUint32(nil, a.Stamp)
	b = appendOpaque(b, []byte(a.Machine))
	b = binary.BigEndian.AppendUint32(b, a.UID)
	b = binary.BigEndian.AppendUint32(b, a.GID)
	b = binary.BigEndian.AppendUint32(b, uint32(len(a.GIDs)))
	for _, g := range a.GIDs {
		b = binary.BigEndian.AppendUint32(b, g)
	}
	return OpaqueAuth{Flavor: FlavorSys, Body: b}, nil
}

// DecodeAuthSys decodes an AUTH_SYS credential body. It refuses (ErrProtocol) a body
// whose fields overrun it, are over their bounds or leave bytes unread.
func DecodeAuthSys(body []byte) (AuthSys, error) {
	var a AuthSys
	r := wireReader{b: body}
	a.Stamp = r.u32()
	m := r.opaque(maxMachineName)
	a.UID = r.u32()
	a.GID = r.u32()
	n := r.u32()
	if r.err == nil && (n > maxGids || int(n)*4 > len(r.b)-r.off) {
		r.err = protoErr("AUTH_SYS with %d gids", n)
	}
	if r.err != nil {
		return AuthSys{}, r.err
	}
	if n > 0 {
		a.GIDs = make([]uint32, n)
		for i := range a.GIDs {
			a.GIDs[i] = r.u32()
		}
	}
	if r.off != len(body) && r.err == nil {
		r.err = protoErr("AUTH_SYS body with %d trailing bytes", len(body)-r.off)
	}
	if r.err != nil {
		return AuthSys{}, r.err
	}
	a.Machine = string(m)
	return a, nil
}

// CallHeader is the header of a call message, up to its arguments.
type CallHeader struct {
	XID              uint32
	Prog, Vers, Proc uint32
	Cred, Verf       OpaqueAuth
}

// ReplyHeader is the header of a reply message, up to its results.
type ReplyHeader struct {
	XID      uint32
	Accepted bool       // MSG_ACCEPTED, else MSG_DENIED
	Stat     AcceptStat // when Accepted
	Verf     OpaqueAuth // when Accepted
	Reject   uint32     // when denied: RPC_MISMATCH or AUTH_ERROR
	Auth     AuthStat   // when denied with AUTH_ERROR
	Low      uint32     // PROG_MISMATCH or RPC_MISMATCH: lowest version
	High     uint32     // PROG_MISMATCH or RPC_MISMATCH: highest version
}

// appendCall appends a call message header to b.
func appendCall(b []byte, h *CallHeader) []byte {
	b = binary.BigEndian.AppendUint32(b, h.XID)
	b = binary.BigEndian.AppendUint32(b, msgCall)
	b = binary.BigEndian.AppendUint32(b, rpcVersion)
	b = binary.BigEndian.AppendUint32(b, h.Prog)
	b = binary.BigEndian.AppendUint32(b, h.Vers)
	b = binary.BigEndian.AppendUint32(b, h.Proc)
	b = appendAuth(b, h.Cred)
	return appendAuth(b, h.Verf)
}

// appendReply appends a reply message header to b (the results follow when
// h.Accepted and h.Stat is Success).
func appendReply(b []byte, h *ReplyHeader) []byte {
	b = binary.BigEndian.AppendUint32(b, h.XID)
	b = binary.BigEndian.AppendUint32(b, msgReply)
	if !h.Accepted {
		b = binary.BigEndian.AppendUint32(b, replyDenied)
		b = binary.BigEndian.AppendUint32(b, h.Reject)
		if h.Reject == rejectRPCMismatch {
			b = binary.BigEndian.AppendUint32(b, h.Low)
			return binary.BigEndian.AppendUint32(b, h.High)
		}
		return binary.BigEndian.AppendUint32(b, uint32(h.Auth))
	}
	b = binary.BigEndian.AppendUint32(b, replyAccepted)
	b = appendAuth(b, h.Verf)
	b = binary.BigEndian.AppendUint32(b, uint32(h.Stat))
	if h.Stat == ProgMismatch {
		b = binary.BigEndian.AppendUint32(b, h.Low)
		b = binary.BigEndian.AppendUint32(b, h.High)
	}
	return b
}

func appendAuth(b []byte, a OpaqueAuth) []byte {
	b = binary.BigEndian.AppendUint32(b, a.Flavor)
	return appendOpaque(b, a.Body)
}

func appendOpaque(b, p []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
	b = append(b, p...)
	for i := len(p); i%4 != 0; i++ {
		b = append(b, 0)
	}
	return b
}

// wireReader reads XDR words from a message held in memory. The first error
// sticks; every later read returns zero. It never allocates.
type wireReader struct {
	b   []byte
	off int
	err error
}

func (r *wireReader) u32() uint32 {
	if r.err != nil {
		return 0
	}
	if len(r.b)-r.off < 4 {
		r.err = protoErr("message ends at byte %d inside a 4-byte word", len(r.b))
		return 0
	}
	v := binary.BigEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

// opaque reads a variable-length opaque of at most max bytes, checking its length
// against max and against what is left before taking it. The result aliases r.b.
func (r *wireReader) opaque(max int) []byte {
	n := r.u32()
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(max) {
		r.err = protoErr("opaque of %d bytes over its bound %d", n, max)
		return nil
	}
	padded := (int(n) + 3) &^ 3
	if len(r.b)-r.off < padded {
		r.err = protoErr("opaque of %d bytes overruns the message", n)
		return nil
	}
	p := r.b[r.off : r.off+int(n) : r.off+int(n)]
	for _, z := range r.b[r.off+int(n) : r.off+padded] {
		if z != 0 {
			r.err = protoErr("non-zero padding")
			return nil
		}
	}
	r.off += padded
	return p
}

func (r *wireReader) auth() OpaqueAuth {
	f := r.u32()
	return OpaqueAuth{Flavor: f, Body: r.opaque(maxAuthBody)}
}

// msgType reads the xid and message type of a message, the part calls and replies
// share.
func msgType(b []byte) (xid, mtype uint32, err error) {
	if len(b) < 8 {
		return 0, 0, protoErr("message of %d bytes", len(b))
	}
	return binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:]), nil
}

// errRPCVers marks a call of another RPC version than 2: the server answers it with
// RPC_MISMATCH rather than dropping it.
var errRPCVers = fmt.Errorf("call of an RPC version other than 2: %w", ErrProtocol)

// parseCall decodes a call message. args aliases b. A call with a version other
// than 2 returns the xid and errRPCVers; any other malformation ErrProtocol.
func parseCall(b []byte) (h CallHeader, args []byte, err error) {
	r := wireReader{b: b}
	h.XID = r.u32()
	if mt := r.u32(); r.err == nil && mt != msgCall {
		return h, nil, protoErr("message type %d where a call was expected", mt)
	}
	if v := r.u32(); r.err == nil && v != rpcVersion {
		return h, nil, errRPCVers
	}
	h.Prog = r.u32()
	h.Vers = r.u32()
	h.Proc = r.u32()
	h.Cred = r.auth()
	h.Verf = r.auth()
	if r.err != nil {
		return h, nil, r.err
	}
	return h, b[r.off:], nil
}

// parseReply decodes a reply message. results aliases b and is empty unless the
// reply is accepted with SUCCESS.
func parseReply(b []byte) (h ReplyHeader, results []byte, err error) {
	r := wireReader{b: b}
	h.XID = r.u32()
	if mt := r.u32(); r.err == nil && mt != msgReply {
		return h, nil, protoErr("message type %d where a reply was expected", mt)
	}
	switch st := r.u32(); {
	case r.err != nil:
	case st == replyAccepted:
		h.Accepted = true
		h.Verf = r.auth()
		h.Stat = AcceptStat(r.u32())
		switch {
		case r.err != nil:
		case h.Stat == ProgMismatch:
			h.Low, h.High = r.u32(), r.u32()
		case h.Stat > SystemErr:
			r.err = protoErr("accept_stat %d", h.Stat)
		}
	case st == replyDenied:
		h.Reject = r.u32()
		switch {
		case r.err != nil:
		case h.Reject == rejectRPCMismatch:
			h.Low, h.High = r.u32(), r.u32()
		case h.Reject == rejectAuthError:
			h.Auth = AuthStat(r.u32())
		default:
			r.err = protoErr("reject_stat %d", h.Reject)
		}
	default:
		r.err = protoErr("reply_stat %d", st)
	}
	if r.err != nil {
		return h, nil, r.err
	}
	if !h.Accepted || h.Stat != Success {
		if r.off != len(b) {
			return h, nil, protoErr("%d bytes after an error reply", len(b)-r.off)
		}
		return h, nil, nil
	}
	return h, b[r.off:], nil
}

// replyError maps a reply header that is not SUCCESS to the caller's error.
func replyError(h *ReplyHeader) error {
	if !h.Accepted {
		if h.Reject == rejectRPCMismatch {
			return &MismatchError{Sentinel: ErrRPCMismatch, Low: h.Low, High: h.High}
		}
		return &AuthError{Stat: h.Auth}
	}
	switch h.Stat {
	case Success:
		return nil
	case ProgUnavail:
		return ErrProgUnavail
	case ProgMismatch:
		return &MismatchError{Sentinel: ErrProgMismatch, Low: h.Low, High: h.High}
	case ProcUnavail:
		return ErrProcUnavail
	case GarbageArgs:
		return ErrGarbageArgs
	}
	return ErrSystemErr
}
