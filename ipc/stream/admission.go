package stream

import (
	"fmt"
	"sync"
)

// Verdict is an admission decision.
type Verdict uint8

const (
	// Grant admits the stream as offered.
	Grant Verdict = iota + 1
	// Counter admits a lower rate than offered (Decision.Spec), if the source takes it.
	Counter
	// Refuse admits nothing.
	Refuse
)

func (v Verdict) String() string {
	switch v {
	case Grant:
		return "grant"
	case Counter:
		return "counter"
	case Refuse:
		return "refuse"
	}
	return fmt.Sprintf("Verdict(%d)", uint8(v))
}

// A Decision is an admission controller's answer to an offer.
type Decision struct {
	Verdict Verdict
	// Spec is the contract admitted: the offer, or for Counter the offer at the rate
	// that is free.
	Spec FlowSpec
	// Free is the capacity that was free before the decision, in bytes per second.
	Free float64
}

// An AdmissionEvent is one entry of an admission controller's log.
type AdmissionEvent struct {
	// Op is "offer", "renegotiate", "release" or "cancel".
	Op      string
	Offered float64 // bytes/s offered (offer, renegotiate) or given back (release, cancel)
	Verdict Verdict // for offer and renegotiate
	Granted float64 // bytes/s reserved by the decision
	// Admitted is the total reserved after the event.
	Admitted float64
}

// An Admission is an admission controller for one transport: it admits streams
// while the sum of their rates stays within the transport's measured capacity
// (MeasureCapacity), counter-offers what is left when an offer does not fit but
// what is left is at least the offer's MinRate, and refuses otherwise. It is safe
// for concurrent use.
type Admission struct {
	mu       sync.Mutex
	capacity float64
	admitted float64
	log      []AdmissionEvent
}

// NewAdmission returns a controller for a transport that carries capacity bytes per
// second. A capacity that is not positive (or NaN) admits nothing: every offer is
// refused.
func NewAdmission(capacity float64) *Admission { return &Admission{capacity: capacity} }

// Capacity returns the capacity the controller admits up to.
func (a *Admission) Capacity() float64 { return a.capacity }

// Admitted returns the sum of the rates admitted and not released.
func (a *Admission) Admitted() float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.admitted
}

// Log returns a copy of every decision and release so far, in order.
func (a *Admission) Log() []AdmissionEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]AdmissionEvent(nil), a.log...)
}

// Decide decides on an offer and reserves what it grants.
func (a *Admission) Decide(offer FlowSpec) Decision {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.decide("offer", offer)
}

func (a *Admission) decide(op string, offer FlowSpec) Decision {
	free := a.capacity - a.admitted
	d := Decision{Verdict: Refuse, Free: free}
	switch {
	case offer.Rate <= free:
		d.Verdict, d.Spec = Grant, offer
	case free >= offer.minRate() && free > 0:
		d.Verdict, d.Spec = Counter, offer
		d.Spec.Rate = free
	}
	granted := 0.0
	if d.Verdict != Refuse {
		granted = d.Spec.Rate
		a.admitted += granted
	}
	a.log = append(a.log, AdmissionEvent{Op: op, Offered: offer.Rate, Verdict: d.Verdict, Granted: granted, Admitted: a.admitted})
	return d
}

// Renegotiate decides on a new offer for a stream that holds old: old's rate is
// given back first, and kept if the new offer is refused. A renegotiation is granted
// as offered or refused, never countered: the stream is running, and its answer must
// not wait for another round of the protocol.
func (a *Admission) Renegotiate(old, offer FlowSpec) Decision {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.admitted -= old.Rate
	free := a.capacity - a.admitted
	d := Decision{Verdict: Refuse, Free: free}
	granted := 0.0
	if offer.Rate <= free {
		d.Verdict, d.Spec, granted = Grant, offer, offer.Rate
		a.admitted += offer.Rate
	} else {
		a.admitted += old.Rate
	}
	a.log = append(a.log, AdmissionEvent{Op: "renegotiate", Offered: offer.Rate, Verdict: d.Verdict, Granted: granted, Admitted: a.admitted})
	return d
}

// Release gives back a stream's rate when it ends (op "release") or when the source
// turns a counter-offer down (op "cancel").
func (a *Admission) Release(op string, spec FlowSpec) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.admitted -= spec.Rate
	a.log = append(a.log, AdmissionEvent{Op: op, Offered: spec.Rate, Admitted: a.admitted})
}
