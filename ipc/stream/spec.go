package stream

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/ipclab/ipclab/ipc"
)

// Mode is a stream's transmission mode.
type Mode uint8

const (
	// Async streams have no timing constraint: units are handed out as they arrive.
	Async Mode = iota
	// Sync streams have a maximum end-to-end delay per unit: a unit later than
	// FlowSpec.MaxDelay is counted late, and dropped if FlowSpec.DropLate.
	Sync
	// Isochronous streams have a minimum and a maximum delay: the sink's play-out
	// buffer holds each unit until MinDelay after it was sent (or, in a SyncGroup,
	// after its media time) and hands it out no later than MaxDelay, so the delay
	// varies by at most MaxDelay − MinDelay. A unit that arrives after MaxDelay is
	// late.
	Isochronous
)

func (m Mode) String() string {
	switch m {
	case Async:
		return "async"
	case Sync:
		return "sync"
	case Isochronous:
		return "isochronous"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Policing is what the sink does with a unit beyond the contract.
type Policing uint8

const (
	// PoliceCount only counts units beyond the contract (and reports a Violation).
	PoliceCount Policing = iota
	// PoliceMark hands them out with Unit.Marked set.
	PoliceMark
	// PoliceDrop drops them.
	PoliceDrop
)

func (p Policing) String() string {
	switch p {
	case PoliceCount:
		return "count"
	case PoliceMark:
		return "mark"
	case PoliceDrop:
		return "drop"
	}
	return fmt.Sprintf("Policing(%d)", uint8(p))
}

// A FlowSpec is what a stream needs and may use: its contract once admitted.
// Rates and depths count every byte of a unit on the wire, header included (see
// WireSize), plus Overhead per unit.
type FlowSpec struct {
	// Rate is the token rate in bytes per second: the long-run rate the source may
	// send at. Depth is the bucket depth in bytes: the largest burst. Both > 0; a
	// unit larger than Depth can never be sent.
	Rate  float64
	Depth int
	// MinRate is the least rate the source accepts when the sink counter-offers;
	// 0 means Rate (no counter-offer is acceptable).
	MinRate float64
	// Overhead is added to each unit's size when the shaper and policer count it: 42
	// makes them count what tc's tbf counts for a UDP unit over IPv4 on a link with an
	// Ethernet-sized header.
	Overhead int
	// Mode, and its delays: MaxDelay for Sync and Isochronous, MinDelay for
	// Isochronous (0 ≤ MinDelay < MaxDelay).
	Mode     Mode
	MinDelay time.Duration
	MaxDelay time.Duration
	// DropLate drops units later than MaxDelay instead of handing them out.
	DropLate bool
	// MaxLoss is the fraction of units the stream tolerates losing, in [0, 1].
	MaxLoss float64
	// Every makes the sink want only every Every-th unit (by sequence number): a
	// receiver of lower capability in a Fanout. 0 means 1.
	Every int
	// Police is what the sink does with units beyond Rate and Depth.
	Police Policing
	// Tolerance is how much earlier than the contract a unit may arrive before the
	// policer calls it beyond the contract: the delay variation the path adds
	// (units that queued in the transport, or while the sink was descheduled,
	// arrive together). 0 means 5 ms. The policer's bucket is deeper by Tolerance ×
	// Rate, so a cheater is caught that much later.
	Tolerance time.Duration
}

// RateFor returns the rate in bytes per second of units per second units of
// payload bytes each, headers included.
func RateFor(unitsPerSecond float64, payload int) float64 {
	return unitsPerSecond * float64(WireSize(payload))
}

// WireSize is the size of a unit with payload bytes on the wire.
func WireSize(payload int) int { return HeaderSize + payload }

// every returns Every, 1 when unset.
func (f FlowSpec) every() int { return max(f.Every, 1) }

// minRate returns MinRate, Rate when unset.
func (f FlowSpec) minRate() float64 {
	if f.MinRate == 0 {
		return f.Rate
	}
	return f.MinRate
}

// tolerance returns Tolerance, 5 ms when unset.
func (f FlowSpec) tolerance() time.Duration {
	if f.Tolerance == 0 {
		return 5 * time.Millisecond
	}
	return f.Tolerance
}

// Validate reports the first field out of range.
func (f FlowSpec) Validate() error {
	bad := func(format string, args ...any) error {
		return ipc.Wrap("flowspec", "", fmt.Errorf("%w: "+format, append([]any{ipc.ErrInvalid}, args...)...))
	}
	switch {
	case !(f.Rate > 0) || math.IsInf(f.Rate, 0):
		return bad("Rate %v bytes/s, want > 0", f.Rate)
	case f.Depth <= 0:
		return bad("Depth %d bytes, want > 0", f.Depth)
	case f.Depth < WireSize(0)+f.Overhead:
		return bad("Depth %d bytes holds no unit (a unit is at least %d)", f.Depth, WireSize(0)+f.Overhead)
	case f.MinRate < 0 || f.MinRate > f.Rate || math.IsNaN(f.MinRate):
		return bad("MinRate %v, want in [0, Rate %v]", f.MinRate, f.Rate)
	case f.Overhead < 0:
		return bad("Overhead %d, want ≥ 0", f.Overhead)
	case f.Mode > Isochronous:
		return bad("unknown Mode %d", f.Mode)
	case f.MinDelay < 0 || f.MaxDelay < 0:
		return bad("negative delay")
	case f.Mode == Sync && f.MaxDelay == 0:
		return bad("Sync needs MaxDelay")
	case f.Mode == Isochronous && !(f.MinDelay < f.MaxDelay):
		return bad("Isochronous needs MinDelay %v < MaxDelay %v", f.MinDelay, f.MaxDelay)
	case f.Mode == Async && (f.MinDelay != 0 || f.MaxDelay != 0):
		return bad("Async takes no delays")
	case !(f.MaxLoss >= 0 && f.MaxLoss <= 1):
		return bad("MaxLoss %v, want in [0, 1]", f.MaxLoss)
	case f.Every < 0:
		return bad("Every %d, want ≥ 0", f.Every)
	case f.Police > PoliceDrop:
		return bad("unknown Police %d", f.Police)
	case f.Tolerance < 0:
		return bad("negative Tolerance")
	}
	return nil
}

// specSize is the size of an encoded FlowSpec.
const specSize = 8*6 + 8 + 4 + 4 + 4

func (f FlowSpec) put(b []byte) {
	le := binary.LittleEndian
	le.PutUint64(b[0:], math.Float64bits(f.Rate))
	le.PutUint64(b[8:], uint64(f.Depth))
	le.PutUint64(b[16:], math.Float64bits(f.MinRate))
	le.PutUint64(b[24:], uint64(f.MinDelay))
	le.PutUint64(b[32:], uint64(f.MaxDelay))
	le.PutUint64(b[40:], math.Float64bits(f.MaxLoss))
	le.PutUint64(b[48:], uint64(f.Tolerance))
	le.PutUint32(b[56:], uint32(f.Overhead))
	le.PutUint32(b[60:], uint32(f.Every))
	b[64], b[65], b[66], b[67] = byte(f.Mode), byte(f.Police), boolByte(f.DropLate), 0
}

func (f *FlowSpec) parse(b []byte) error {
	if len(b) < specSize {
		return fmt.Errorf("%w: flow spec of %d bytes, want %d", ErrProtocol, len(b), specSize)
	}
	le := binary.LittleEndian
	*f = FlowSpec{
		Rate:      math.Float64frombits(le.Uint64(b[0:])),
		Depth:     int(int64(le.Uint64(b[8:]))),
		MinRate:   math.Float64frombits(le.Uint64(b[16:])),
		MinDelay:  time.Duration(le.Uint64(b[24:])),
		MaxDelay:  time.Duration(le.Uint64(b[32:])),
		MaxLoss:   math.Float64frombits(le.Uint64(b[40:])),
		Tolerance: time.Duration(le.Uint64(b[48:])),
		Overhead:  int(int32(le.Uint32(b[56:]))),
		Every:     int(int32(le.Uint32(b[60:]))),
		Mode:      Mode(b[64]),
		Police:    Policing(b[65]),
		DropLate:  b[66] != 0,
	}
	if err := f.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	return nil
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}
