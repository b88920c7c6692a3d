package ipctest

import (
	"fmt"

	"github.com/ipclab/ipclab/ipc"
)

// SeqReport is what CheckSeq read from a receiver's log of sequence numbers.
type SeqReport struct {
	Sent       uint64 // messages numbered 0 … Sent-1 were sent
	Received   int    // entries in the log
	Lost       int    // numbers sent and never received
	Duplicated int    // receptions of a number already received
	Created    int    // numbers that were never sent
	OutOfOrder int    // receptions of a number lower than one received before
	FirstLost  int64  // the lowest lost number, -1 if none
}

// CheckSeq reads a delivery log: got holds the sequence numbers a receiver delivered
// to its application, in delivery order, of messages numbered 0 … sent-1.
func CheckSeq(sent uint64, got []uint64) SeqReport {
	r := SeqReport{Sent: sent, Received: len(got), FirstLost: -1}
	seen := make([]bool, sent)
	var high uint64
	for i, s := range got {
		if s >= sent {
			r.Created++
			continue
		}
		if seen[s] {
			r.Duplicated++
			continue
		}
		seen[s] = true
		if i > 0 && s < high {
			r.OutOfOrder++
		}
		high = max(high, s)
	}
	for s, ok := range seen {
		if !ok {
			r.Lost++
			if r.FirstLost < 0 {
				r.FirstLost = int64(s)
			}
		}
	}
	return r
}

// Prefix reports whether what was delivered is exactly 0 … k-1 for some k, in order,
// each once: the guarantee of a stream whose sender may die (nothing after a gap).
func (r SeqReport) Prefix() bool {
	return r.Duplicated == 0 && r.Created == 0 && r.OutOfOrder == 0 &&
		(r.Lost == 0 || uint64(r.FirstLost)+uint64(r.Lost) == r.Sent)
}

// ExactlyOnce returns an error naming every violation of "each message delivered
// exactly once, none made up" (and of order, when ordered is true), or nil.
func (r SeqReport) ExactlyOnce(ordered bool) error {
	var errs []error
	if r.Lost > 0 {
		errs = append(errs, fmt.Errorf("%d of %d lost (first %d)", r.Lost, r.Sent, r.FirstLost))
	}
	if r.Duplicated > 0 {
		errs = append(errs, fmt.Errorf("%d duplicated", r.Duplicated))
	}
	if r.Created > 0 {
		errs = append(errs, fmt.Errorf("%d never sent", r.Created))
	}
	if ordered && r.OutOfOrder > 0 {
		errs = append(errs, fmt.Errorf("%d out of order", r.OutOfOrder))
	}
	return ipc.Join(errs...)
}

// String gives the report in one line.
func (r SeqReport) String() string {
	return fmt.Sprintf("%d sent, %d received: %d lost, %d duplicated, %d never sent, %d out of order",
		r.Sent, r.Received, r.Lost, r.Duplicated, r.Created, r.OutOfOrder)
}
