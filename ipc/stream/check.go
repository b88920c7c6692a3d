package stream

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// A Breach is a broken guarantee that a checker found in what really happened (a
// sink's Log, an Admission's Log, arrival times taken elsewhere).
type Breach struct {
	// Rule is the guarantee's ID in the project's conformance list: QOS-01 token
	// bucket, QOS-02 policing, QOS-03 isochronous delay, QOS-04 admission, QOS-05
	// stream sync.
	Rule   string
	Index  int // which entry of the input
	Detail string
}

func (b Breach) String() string { return fmt.Sprintf("%s at #%d: %s", b.Rule, b.Index, b.Detail) }

// MaxBurst returns the largest number of bytes beyond the rate in any window of the
// units at times (nondecreasing, nanoseconds) with sizes: the maximum over i ≤ j of
// sizes[i..j] summed − rate × (times[j] − times[i]). Units that conform to a token
// bucket of this rate have a MaxBurst of at most its depth.
func MaxBurst(times []int64, sizes []int, rate float64) float64 {
	var burst, worst float64
	for j := range times {
		if j > 0 {
			burst = max(0, burst-rate*float64(times[j]-times[j-1])/1e9)
		}
		burst += float64(sizes[j])
		worst = max(worst, burst)
	}
	return worst
}

// LongRunRate returns the rate of the units at times with sizes, in bytes per
// second: the bytes after the first unit over the time from the first to the last.
func LongRunRate(times []int64, sizes []int) float64 {
	if len(times) < 2 || times[len(times)-1] <= times[0] {
		return 0
	}
	var bytes float64
	for _, s := range sizes[1:] {
		bytes += float64(s)
	}
	return bytes / (float64(times[len(times)-1]-times[0]) / 1e9)
}

// CheckBucket checks QOS-01 on units at times with sizes: replaying a token bucket
// of rate and depth, full at the first unit, every unit must find its tokens. It
// returns one breach per unit that does not (a burst beyond the depth, or a rate
// above the token rate), and an error-free result for a shaped stream.
func CheckBucket(times []int64, sizes []int, rate float64, depth int) []Breach {
	var out []Breach
	if len(times) != len(sizes) {
		return []Breach{{Rule: "QOS-01", Detail: fmt.Sprintf("%d times for %d sizes", len(times), len(sizes))}}
	}
	if len(times) == 0 {
		return nil
	}
	b := NewTokenBucket(rate, depth, times[0])
	for i, t := range times {
		if i > 0 && t < times[i-1] {
			out = append(out, Breach{Rule: "QOS-01", Index: i, Detail: "times go backwards"})
			continue
		}
		b.fill(t)
		// A millionth of a byte of slack for the float arithmetic.
		if b.tokens+1e-6 < float64(sizes[i]) {
			out = append(out, Breach{Rule: "QOS-01", Index: i, Detail: fmt.Sprintf("%d bytes at +%v with %.1f tokens", sizes[i], time.Duration(t-times[0]), b.tokens)})
		}
		b.tokens -= float64(sizes[i]) // it went out anyway: a debt stays
	}
	return out
}

// reference is the time a unit's delay counts from: its send time, or with media
// its epoch + media time.
func reference(u Unit, media bool, epoch int64) int64 {
	if media {
		return epoch + u.PTS
	}
	return u.Sent
}

// CheckIsochronous checks QOS-03 on a sink's log: every unit not marked late was
// released between min and max after its reference (send time, or epoch + media
// time when media), and every unit marked late really was: it arrived, or was
// released, after max. Late units are the sink's own report of a missed bound;
// count them against what the stream tolerates.
func CheckIsochronous(units []Unit, min, max time.Duration, media bool, epoch int64) []Breach {
	var out []Breach
	for i, u := range units {
		ref := reference(u, media, epoch)
		d := time.Duration(u.Released - ref)
		switch {
		case u.Late && d <= max:
			out = append(out, Breach{Rule: "QOS-03", Index: i, Detail: fmt.Sprintf("unit %d marked late but released %v after its reference, within %v", u.Seq, d, max)})
		case !u.Late && (d < min || d > max):
			out = append(out, Breach{Rule: "QOS-03", Index: i, Detail: fmt.Sprintf("unit %d released %v after its reference, outside [%v, %v]", u.Seq, d, min, max)})
		}
	}
	return out
}

// Jitter returns the quantile q of the change in delay between consecutive units of
// a log (|delay[i] − delay[i−1]|, RFC 3550's D(i−1, i)).
func Jitter(units []Unit, q float64) time.Duration {
	if len(units) < 2 {
		return 0
	}
	js := make([]int64, 0, len(units)-1)
	for i := 1; i < len(units); i++ {
		d := units[i].Delay() - units[i-1].Delay()
		js = append(js, max(d, -d))
	}
	return quantile(js, q)
}

// Delay returns the quantile q of the end-to-end delays (send to release) of a
// sink's log, by the rule a Report's DelayP50 and DelayP99 use.
func Delay(units []Unit, q float64) time.Duration {
	ds := make([]int64, len(units))
	for i, u := range units {
		ds[i] = u.Delay()
	}
	return quantile(ds, q)
}

// CheckSkew checks QOS-05 on the logs of the sub-streams of a complex stream that
// share epoch: each unit's offset is its release time minus epoch + media time; for
// every unit of every stream, the unit of each other stream nearest in media time
// must have an offset within bound of it. Units the sinks marked late (out of step,
// see ByMediaTime) are their own report of a miss and are left out; count them. It
// returns the largest skew seen among the rest and the breaches.
func CheckSkew(streams [][]Unit, epoch int64, bound time.Duration) (time.Duration, []Breach) {
	var worst time.Duration
	var out []Breach
	for a := range streams {
		for b := range streams {
			if a == b || len(streams[b]) == 0 {
				continue
			}
			var other []Unit
			for _, v := range streams[b] {
				if !v.Late {
					other = append(other, v)
				}
			}
			if len(other) == 0 {
				continue
			}
			for i, u := range streams[a] {
				if u.Late {
					continue
				}
				k := sort.Search(len(other), func(k int) bool { return other[k].PTS >= u.PTS })
				best := -1
				for _, c := range []int{k - 1, k} {
					if c >= 0 && c < len(other) && (best < 0 || abs64(other[c].PTS-u.PTS) < abs64(other[best].PTS-u.PTS)) {
						best = c
					}
				}
				v := other[best]
				skew := time.Duration(abs64((u.Released - (epoch + u.PTS)) - (v.Released - (epoch + v.PTS))))
				worst = max(worst, skew)
				if skew > bound {
					out = append(out, Breach{Rule: "QOS-05", Index: i, Detail: fmt.Sprintf("stream %d unit %d (media %v) and stream %d unit %d (media %v) %v apart in play-out, bound %v",
						a, u.Seq, time.Duration(u.PTS), b, v.Seq, time.Duration(v.PTS), skew, bound)})
				}
			}
		}
	}
	return worst, out
}

func abs64(v int64) int64 { return max(v, -v) }

// CheckAdmission checks QOS-04 on an admission controller's log: the admitted total
// never exceeds capacity, each event's total follows from the last one's, a grant
// gives what was offered, a counter-offer less, and a refusal nothing.
func CheckAdmission(log []AdmissionEvent, capacity float64) []Breach {
	var out []Breach
	eps := 1e-9 * math.Max(capacity, 1)
	held := 0.0
	bad := func(i int, format string, args ...any) {
		out = append(out, Breach{Rule: "QOS-04", Index: i, Detail: fmt.Sprintf(format, args...)})
	}
	for i, e := range log {
		switch e.Op {
		case "offer", "renegotiate":
			switch e.Verdict {
			case Grant:
				if math.Abs(e.Granted-e.Offered) > eps {
					bad(i, "granted %.0f of an offer of %.0f", e.Granted, e.Offered)
				}
			case Counter:
				if !(e.Granted < e.Offered) || e.Granted <= 0 {
					bad(i, "counter-offer of %.0f to an offer of %.0f", e.Granted, e.Offered)
				}
			case Refuse:
				if e.Granted != 0 {
					bad(i, "refused but granted %.0f", e.Granted)
				}
			default:
				bad(i, "no verdict")
			}
			if e.Op == "renegotiate" && e.Verdict == Counter {
				bad(i, "a renegotiation countered (it is granted or refused)")
			}
			if e.Op == "offer" {
				held += e.Granted
			} else {
				held = e.Admitted // a renegotiation swaps an unknown old rate: take the total
			}
		case "release", "cancel":
			held -= e.Offered
		default:
			bad(i, "unknown op %q", e.Op)
		}
		if math.Abs(held-e.Admitted) > eps {
			bad(i, "total admitted %.0f, the log's own events give %.0f", e.Admitted, held)
			held = e.Admitted
		}
		if e.Admitted > capacity+eps {
			bad(i, "admitted %.0f bytes/s, more than the capacity %.0f", e.Admitted, capacity)
		}
	}
	return out
}
