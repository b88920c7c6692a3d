package ebpf_test

import (
	"fmt"
	"os"

	"github.com/ipclab/ipclab/ebpf"
)

// Trace this process's IPC for a while and print bcc-style histograms. Needs root (or
// CAP_BPF and CAP_PERFMON).
func ExampleLoad() {
	p, err := ebpf.Load(ebpf.Options{PIDs: []int{os.Getpid()}, FollowForks: true})
	if err != nil {
		fmt.Println(err) // e.g. "ebpf: loading the probes needs CAP_BPF and CAP_PERFMON ..."
		return
	}
	defer p.Close()

	// ... the workload ...

	r, err := p.Snapshot()
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = ebpf.WriteText(os.Stdout, r)
}

func ExampleBucketBounds() {
	for _, k := range []int{0, 1, 6, 10} {
		lo, hi := ebpf.BucketBounds(k)
		fmt.Printf("bucket %d: %d..%d\n", k, lo, hi)
	}
	// Output:
	// bucket 0: 0..1
	// bucket 1: 2..3
	// bucket 6: 64..127
	// bucket 10: 1024..2047
}

func ExampleWriteTable() {
	var row ebpf.Row
	row.Primitive, row.Op = "pipe", "write"
	row.Calls, row.Bytes = 4, 256
	for _, v := range []uint64{300, 310, 290, 2000} {
		h := &row.Hist[ebpf.MetricCall]
		k := 0
		for lo, _ := ebpf.BucketBounds(k + 1); lo <= v; lo, _ = ebpf.BucketBounds(k + 1) {
			k++
		}
		h.Buckets[k]++
		h.Sum += v
		row.Hist[ebpf.MetricOnCPU].Buckets[k]++
		row.Hist[ebpf.MetricOnCPU].Sum += v
		row.Hist[ebpf.MetricBytes].Buckets[6]++
		row.Hist[ebpf.MetricBytes].Sum += 64
	}
	_ = ebpf.WriteTable(os.Stdout, []ebpf.Row{row})
	// Output:
	//                  pipe write
	// calls                     4
	// errors                    0
	// EAGAIN                    0
	// bytes/call             64 B
	// call mean            725 ns
	// call p50           ≤ 511 ns
	// call p99          ≤ 2.05 µs
	// on-CPU mean          725 ns
	// on-CPU p99        ≤ 2.05 µs
	// blocked (calls)           -
	// peer wait mean            -
	// peer wait p99             -
	// switched out              -
	// CPU wait mean             -
	// CPU wait p99              -
	// ready wait mean           -
}
