package ebpf_test

import (
	"math"
	"testing"

	"github.com/ipclab/ipclab/ebpf"
)

func TestFitCost(t *testing.T) {
	var pts []ebpf.CostPoint
	for _, size := range []float64{64, 256, 1024, 4096, 16384} {
		pts = append(pts, ebpf.CostPoint{Bytes: size, Ns: 300 + 0.05*size})
	}
	c, err := ebpf.FitCost(pts)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(c.FixedNs-300) > 1e-6 || math.Abs(c.PerByteNs-0.05) > 1e-9 || math.Abs(c.R2-1) > 1e-9 {
		t.Errorf("fit %+v, want 300 + 0.05·bytes, R2 1", c)
	}
	pts[2].Ns += 100 // noise lowers R2
	if c, _ := ebpf.FitCost(pts); c.R2 >= 1 {
		t.Errorf("noisy fit has R2 %v", c.R2)
	}
	for _, bad := range [][]ebpf.CostPoint{nil, {{Bytes: 64, Ns: 1}}, {{Bytes: 64, Ns: 1}, {Bytes: 64, Ns: 2}}, {{Bytes: math.NaN(), Ns: 1}, {Bytes: 1, Ns: 1}}} {
		if _, err := ebpf.FitCost(bad); err == nil {
			t.Errorf("FitCost(%v): no error", bad)
		}
	}
}
