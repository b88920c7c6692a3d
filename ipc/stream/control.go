package stream

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/ipclab/ipclab/ipc"
)

// Control operations. A source offers (opOffer) and the sink answers accept, refuse
// or counter; after a counter the source confirms or cancels. Renegotiation is an
// offer on an open stream (opRenegotiate), answered the same way. opClose ends it.
const (
	opOffer byte = iota + 1
	opAccept
	opRefuse
	opCounter
	opConfirm
	opCancel
	opRenegotiate
	opClose
	opProbe    // a unit of a capacity probe (data follows in the payload)
	opProbeEnd // the probe is over
)

var opNames = [...]string{"", "offer", "accept", "refuse", "counter", "confirm", "cancel", "renegotiate", "close", "probe", "probe-end"}

func opName(op byte) string {
	if int(op) < len(opNames) && op != 0 {
		return opNames[op]
	}
	return fmt.Sprintf("op(%d)", op)
}

// control is a decoded control message: op, a value (the stream's media epoch in
// an offer, the number of units sent in a close), a flow spec.
type control struct {
	op    byte
	value int64
	spec  FlowSpec
}

const controlSize = 16 + specSize

// putControl writes c as a whole unit into b (at least HeaderSize+controlSize) and
// returns its length.
func putControl(b []byte, c control) int {
	h := header{kind: kindControl, len: controlSize, sent: Now()}
	h.put(b)
	p := b[HeaderSize:]
	clear(p[:16])
	p[0] = c.op
	binary.LittleEndian.PutUint64(p[8:], uint64(c.value))
	c.spec.put(p[16:])
	return HeaderSize + controlSize
}

// parseControl decodes a control unit's payload. Specs are checked only where they
// matter (offers and answers that carry one).
func parseControl(p []byte) (control, error) {
	var c control
	if len(p) != controlSize {
		return c, fmt.Errorf("%w: control message of %d bytes, want %d", ErrProtocol, len(p), controlSize)
	}
	c.op = p[0]
	c.value = int64(binary.LittleEndian.Uint64(p[8:]))
	switch c.op {
	case opOffer, opRenegotiate, opAccept, opCounter:
		if err := c.spec.parse(p[16:]); err != nil {
			return c, err
		}
	case opRefuse, opConfirm, opCancel, opClose, opProbe, opProbeEnd:
	default:
		return c, fmt.Errorf("%w: unknown control operation %d", ErrProtocol, c.op)
	}
	return c, nil
}

// sendControl sends c on conn using buf as scratch.
func sendControl(ctx context.Context, conn Conn, buf []byte, c control) error {
	n := putControl(buf, c)
	return conn.Send(ctx, buf[:n])
}

// recvControl reads the next unit, which must be a control message with one of the
// operations in want.
func recvControl(ctx context.Context, conn Conn, buf []byte, want ...byte) (control, error) {
	n, err := conn.Recv(ctx, buf)
	if err != nil {
		return control{}, err
	}
	var h header
	if err := h.parse(buf[:n]); err != nil {
		return control{}, err
	}
	if h.kind != kindControl || int(h.len) != n-HeaderSize {
		return control{}, fmt.Errorf("%w: a data unit where a control message was due", ErrProtocol)
	}
	c, err := parseControl(buf[HeaderSize:n])
	if err != nil {
		return c, err
	}
	for _, w := range want {
		if c.op == w {
			return c, nil
		}
	}
	return c, fmt.Errorf("%w: %s where %s was due", ErrProtocol, opName(c.op), opName(want[0]))
}

// wrapOp wraps a stream error as the package's OpError.
func wrapOp(op string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(*ipc.OpError); ok {
		return err
	}
	return ipc.Wrap(op, "stream", err)
}
