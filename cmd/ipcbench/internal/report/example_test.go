package report_test

import (
	"fmt"
	"os"
	"strings"

	"github.com/ipclab/ipclab/cmd/ipcbench/internal/report"
)

// machine returns a made-up run with one ping-pong result for the pipe.
func machine(name, kernel string, p50 float64) report.Run {
	return report.Run{Name: name, File: report.File{
		Machine: report.Machine{Hostname: name, Kernel: kernel, OS: "Linux", CPUs: 2, Virtualization: "kvm", GoVersion: "go1.26.0"},
		Results: []report.Result{{
			Primitive: "pipe", Impl: "ipclab", Scenario: "pingpong", Size: 64, Wait: "kernel", Pin: "same",
			Iterations: 100000, RTT: report.Latency{P50: p50, P99: 2 * p50, Mean: 1.05 * p50}, MsgsPerSec: 1e9 / p50,
		}},
	}}
}

func ExampleCompare() {
	runs := []report.Run{machine("old", "5.15.0", 5200), machine("new", "6.8.0", 4680)}
	if err := report.Compare(os.Stdout, runs, report.FormatText); err != nil {
		fmt.Println(err)
	}
	// Output:
	// machines (ratios are against old):
	//   old  kernel 5.15.0  Linux  2 CPUs  kvm  go1.26.0
	//   new  kernel 6.8.0   Linux  2 CPUs  kvm  go1.26.0
	//
	// pingpong, 64 B: round-trip time p50 (lower is better)
	// primitive  impl    wait    pin      old     new  ratio
	// pipe       ipclab  kernel  same  5.20µs  4.68µs  0.90x
}

func ExampleWriteBench() {
	if err := report.WriteBench(os.Stdout, machine("old", "5.15.0", 5200)); err != nil {
		fmt.Println(err)
	}
	// Output:
	// # ipcbench results for old: kernel 5.15.0; os Linux; cpu -; cpus 2; virtualization kvm; go go1.26.0; ipclab -
	// BenchmarkPingpong/prim=pipe/impl=ipclab/wait=kernel/pin=same/size=64 	100000 	5460 ns/op 	5200 p50-ns/op 	10400 p99-ns/op 	192308 msgs/s
}

func ExampleHTML() {
	var page strings.Builder
	runs := []report.Run{machine("old", "5.15.0", 5200), machine("new", "6.8.0", 4680)}
	if err := report.HTML(&page, runs); err != nil {
		fmt.Println(err)
	}
	fmt.Println(strings.Count(page.String(), `<svg class="chart"`), "charts")
	// Output: 3 charts
}

func ExamplePage_WriteHTML() {
	// testdata/inspect-deadlock.json was written by ipcbench inspect -json.
	snap, err := report.LoadSnapshot("testdata/inspect-deadlock.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	var page strings.Builder
	p := report.Page{Runs: []report.Run{machine("new", "6.8.0", 4680)}, Snapshots: []report.Snapshot{snap}}
	if err := p.WriteHTML(&page); err != nil {
		fmt.Println(err)
	}
	fmt.Println(strings.Count(page.String(), `class="chart waitfor"`), "wait-for graph,", len(snap.Deadlocks), "deadlock")
	// Output: 1 wait-for graph, 1 deadlock
}
