package bench

import (
	"math"
	"math/bits"
	"time"

	"github.com/ipclab/ipclab/cmd/ipcbench/internal/report"
)

// subBits sets the histogram's resolution: 2^subBits linear sub-buckets per power of
// two, so a recorded value is off by at most 1/2^subBits (0.8%) of itself: finer than
// the 5% differences ipcbench is asked to resolve.
const subBits = 7

// Histogram is a log-linear latency histogram with a fixed array of buckets: Record
// allocates nothing, so it can sit in a timed loop. The zero value is ready to use.
type Histogram struct {
	counts [64 << subBits]uint64
	n      uint64
	sum    float64
	min    uint64
	max    uint64
}

func bucketOf(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	e := bits.Len64(v) - subBits - 1 // shift that leaves subBits+1 significant bits
	return (e+1)<<subBits | int(v>>uint(e))&(1<<subBits-1)
}

// bucketLow returns the smallest value that falls in bucket b.
func bucketLow(b int) uint64 {
	if b < 1<<subBits {
		return uint64(b)
	}
	e := b>>subBits - 1
	return (uint64(1)<<subBits | uint64(b&(1<<subBits-1))) << uint(e)
}

// Record adds one duration.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Merge adds the values recorded in o.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Reset empties the histogram.
func (h *Histogram) Reset() { *h = Histogram{} }

// Quantile returns the value below which a fraction q of the recorded values fall,
// as the midpoint of its bucket (clamped to the exact minimum and maximum).
func (h *Histogram) Quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			lo := bucketLow(b)
			hi := bucketLow(b + 1)
			mid := float64(lo+hi-1) / 2
			return math.Min(math.Max(mid, float64(h.min)), float64(h.max))
		}
	}
	return float64(h.max)
}

// Latency summarises the histogram in nanoseconds.
func (h *Histogram) Latency() report.Latency {
	if h.n == 0 {
		return report.Latency{}
	}
	return report.Latency{
		Min:  float64(h.min),
		P50:  h.Quantile(0.50),
		P90:  h.Quantile(0.90),
		P99:  h.Quantile(0.99),
		P999: h.Quantile(0.999),
		Max:  float64(h.max),
		Mean: h.sum / float64(h.n),
	}
}
