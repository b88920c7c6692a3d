package ebpf

import (
	"errors"
	"math"
)

// CostPoint is one measurement of a size sweep: the mean on-CPU time per call (say
// Row.Hist[MetricOnCPU].Mean()) at a message size.
type CostPoint struct {
	Bytes float64
	Ns    float64
}

// Cost is the linear model ns = FixedNs + PerByteNs·bytes fitted to a size sweep:
// PerByteNs is the copy cost per byte, FixedNs the cost of a call that moves nothing.
// R2 is the coefficient of determination of the fit (1 is a perfect line).
type Cost struct {
	FixedNs, PerByteNs, R2 float64
}

// FitCost fits Cost to points by ordinary least squares. It needs at least two
// distinct sizes.
func FitCost(points []CostPoint) (Cost, error) {
	n := float64(len(points))
	var sx, sy, sxx, sxy float64
	for _, p := range points {
		if math.IsNaN(p.Bytes) || math.IsNaN(p.Ns) || math.IsInf(p.Bytes, 0) || math.IsInf(p.Ns, 0) {
			return Cost{}, errors.New("ebpf: fit: not a number")
		}
		sx += p.Bytes
		sy += p.Ns
		sxx += p.Bytes * p.Bytes
		sxy += p.Bytes * p.Ns
	}
	den := n*sxx - sx*sx
	if len(points) < 2 || den == 0 {
		return Cost{}, errors.New("ebpf: fit: need at least two distinct sizes")
	}
	b := (n*sxy - sx*sy) / den
	a := (sy - b*sx) / n
	mean := sy / n
	var ssTot, ssRes float64
	for _, p := range points {
		d := p.Ns - mean
		r := p.Ns - (a + b*p.Bytes)
		ssTot += d * d
		ssRes += r * r
	}
	r2 := 1.0
	if ssTot > 0 {
		r2 = 1 - ssRes/ssTot
	}
	return Cost{FixedNs: a, PerByteNs: b, R2: r2}, nil
}
