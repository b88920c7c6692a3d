package stream_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ipclab/ipclab/ipc/pipe"
	"github.com/ipclab/ipclab/ipc/stream"
)

// An isochronous stream over a pair of pipes: 50 units a second of 100 bytes, each
// played out between 20 and 60 ms after it was sent. (Here both ends are in one
// process; in a program they are in two, each with one end of each pipe.)
func Example() {
	toSink, fromSource, _ := pipe.New()
	toSource, fromSink, _ := pipe.New()
	defer func() {
		for _, c := range []io.Closer{toSink, fromSource, toSource, fromSink} {
			c.Close()
		}
	}()
	ctx := context.Background()
	spec := stream.FlowSpec{
		Rate:     stream.RateFor(50, 100), // bytes per second, headers included
		Depth:    4 * stream.WireSize(100),
		Mode:     stream.Isochronous,
		MinDelay: 20 * time.Millisecond,
		MaxDelay: 60 * time.Millisecond,
	}
	go func() {
		src, err := stream.Open(ctx, stream.Framed(toSource, fromSource), spec)
		if err != nil {
			panic(err)
		}
		defer src.Close()
		for i := range 10 {
			src.Send(ctx, make([]byte, 100), time.Duration(i)*20*time.Millisecond)
		}
	}()
	sink, err := stream.Accept(ctx, stream.Framed(toSink, fromSink))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sink.Close()
	buf := make([]byte, 100)
	inBounds := 0
	for {
		u, err := sink.Recv(ctx, buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if d := time.Duration(u.Delay()); d >= spec.MinDelay && (d <= spec.MaxDelay || u.Late) {
			inBounds++
		}
	}
	fmt.Println(sink.Stats().Units, "units,", inBounds, "played out in bounds or reported late")
	// Output: 10 units, 10 played out in bounds or reported late
}

// A token bucket of 1 000 bytes a second and 500 bytes deep, as a shaper uses it:
// wait until the tokens are there, then take them.
func ExampleTokenBucket() {
	b := stream.NewTokenBucket(1000, 500, 0)
	fmt.Println(b.Take(500, 0), b.Wait(250, 0))
	// Output: true 250.000001ms
}

// Admission control counter-offers what is left of a transport's capacity.
func ExampleAdmission() {
	a := stream.NewAdmission(1e6) // bytes per second the transport carries
	first := a.Decide(stream.FlowSpec{Rate: 800e3, Depth: 1 << 16})
	second := a.Decide(stream.FlowSpec{Rate: 400e3, MinRate: 100e3, Depth: 1 << 16})
	third := a.Decide(stream.FlowSpec{Rate: 100e3, Depth: 1 << 16})
	fmt.Println(first.Verdict, second.Verdict, second.Spec.Rate, third.Verdict)
	// Output: grant counter 200000 refuse
}
