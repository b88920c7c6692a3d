package inspect_test

import (
	"os"

	"github.com/ipclab/ipclab/inspect"
)

// Two processes, each blocked reading a pipe whose write end only the other
// holds: a deadlock, drawn in red.
func ExampleWriteDOT() {
	s := &inspect.Snapshot{
		Processes: []inspect.Process{{PID: 101, Comm: "left"}, {PID: 102, Comm: "right"}},
		Objects:   []inspect.Object{{ID: "pipe:7001", Kind: inspect.KindPipe}, {ID: "pipe:7002", Kind: inspect.KindPipe}},
		Waits: []inspect.Wait{
			{PID: 101, TID: 101, Comm: "left", Syscall: "read", FD: 3, Object: "pipe:7001", For: "data", State: "empty", Wakers: []int{102}},
			{PID: 102, TID: 102, Comm: "right", Syscall: "read", FD: 3, Object: "pipe:7002", For: "data", State: "empty", Wakers: []int{101}},
		},
		Deadlocks: []inspect.Deadlock{{Path: []inspect.Step{
			{PID: 101, TID: 101, Comm: "left", Syscall: "read", Object: "pipe:7001"},
			{PID: 102, TID: 102, Comm: "right", Syscall: "read", Object: "pipe:7002"},
		}}},
	}
	if err := inspect.WriteDOT(os.Stdout, s); err != nil {
		panic(err)
	}
	// Output:
	// // wait-for graph: 2 blocked threads, 1 deadlock
	// digraph "waitfor" {
	// 	label="wait-for graph: 2 blocked threads, 1 deadlock";
	// 	labelloc="t";
	// 	node [fontname="Helvetica", fontsize=11];
	// 	edge [fontname="Helvetica", fontsize=10];
	// 	"p:101" [shape=box, label="left\npid 101", color="red", fontcolor="red", penwidth=2];
	// 	"p:102" [shape=box, label="right\npid 102", color="red", fontcolor="red", penwidth=2];
	// 	"o:pipe:7001" [shape=ellipse, label="pipe:7001\nempty", color="red", fontcolor="red", penwidth=2];
	// 	"o:pipe:7002" [shape=ellipse, label="pipe:7002\nempty", color="red", fontcolor="red", penwidth=2];
	// 	"p:101" -> "o:pipe:7001" [label="read (data)", color="red", fontcolor="red", penwidth=2];
	// 	"p:102" -> "o:pipe:7002" [label="read (data)", color="red", fontcolor="red", penwidth=2];
	// 	"o:pipe:7001" -> "p:102" [label="can wake", style="dashed", color="red", fontcolor="red", penwidth=2];
	// 	"o:pipe:7002" -> "p:101" [label="can wake", style="dashed", color="red", fontcolor="red", penwidth=2];
	// }
}
