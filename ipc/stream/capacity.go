package stream

import (
	"context"
	"fmt"
	"time"

	"github.com/ipclab/ipclab/ipc"
)

// Probe sends units of payload bytes back to back on conn for d, unshaped, then
// tells the other end the probe is over: the other end's MeasureCapacity measures
// what the transport carried. It returns the bytes sent.
func Probe(ctx context.Context, conn Conn, d time.Duration, payload int) (uint64, error) {
	if d <= 0 || payload < controlSize || payload > MaxPayload {
		return 0, ipc.Wrap("probe", "stream", fmt.Errorf("%w: duration %v, payload %d (want %d..%d)", ipc.ErrInvalid, d, payload, controlSize, MaxPayload))
	}
	b := make([]byte, WireSize(payload))
	end := Now() + int64(d)
	var sent uint64
	for Now() < end {
		// A probe unit is a control unit whose payload starts with opProbe: the
		// sink reads it as such and counts it.
		h := header{kind: kindControl, len: uint32(payload), sent: Now()}
		h.put(b)
		b[HeaderSize] = opProbe
		if err := conn.Send(ctx, b); err != nil {
			return sent, wrapOp("probe", err)
		}
		sent += uint64(len(b))
	}
	return sent, wrapOp("probe", sendControl(ctx, conn, b, control{op: opProbeEnd}))
}

// MeasureCapacity receives a Probe on conn and returns the rate it arrived at, in
// bytes per second, from the first unit to the last: what the transport carries
// between these two processes, to build an Admission on. buf must hold a probe unit.
func MeasureCapacity(ctx context.Context, conn Conn, buf []byte) (float64, error) {
	var first, last int64
	var bytes uint64 // after the first unit
	for {
		n, err := conn.Recv(ctx, buf)
		if err != nil {
			return 0, wrapOp("measure", err)
		}
		now := Now()
		var h header
		if err := h.parse(buf[:n]); err != nil {
			return 0, wrapOp("measure", err)
		}
		if h.kind != kindControl || n <= HeaderSize {
			return 0, wrapOp("measure", fmt.Errorf("%w: a data unit in a capacity probe", ErrProtocol))
		}
		switch buf[HeaderSize] {
		case opProbe:
			if first == 0 {
				first = now
			} else {
				bytes += uint64(n)
			}
			last = now
		case opProbeEnd:
			if last <= first {
				return 0, wrapOp("measure", fmt.Errorf("%w: the probe carried fewer than two units", ErrProtocol))
			}
			return float64(bytes) / (float64(last-first) / 1e9), nil
		default:
			return 0, wrapOp("measure", fmt.Errorf("%w: %s in a capacity probe", ErrProtocol, opName(buf[HeaderSize])))
		}
	}
}
