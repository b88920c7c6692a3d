package stream_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/ipclab/ipclab/ipc/stream"
	"github.com/ipclab/ipclab/sockets"
)

func TestSmoke(t *testing.T) {
	a, b, err := sockets.SeqpacketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	spec := stream.FlowSpec{Rate: stream.RateFor(1000, 100), Depth: 10 * stream.WireSize(100), Mode: stream.Isochronous, MinDelay: 5 * time.Millisecond, MaxDelay: 20 * time.Millisecond}
	done := make(chan error, 1)
	go func() {
		src, err := stream.Open(ctx, a, spec)
		if err != nil {
			done <- err
			return
		}
		p := make([]byte, 100)
		for i := range 500 {
			if err := src.Send(ctx, p, time.Duration(i)*time.Millisecond); err != nil {
				done <- err
				return
			}
		}
		done <- src.Close()
	}()
	sink, err := stream.Accept(ctx, b, stream.WithLog(1000))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	buf := make([]byte, 200)
	start := time.Now()
	for {
		_, err := sink.Recv(ctx, buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	log := sink.Log()
	t.Logf("%d units in %v, stats %+v, jitter p99 %v", len(log), time.Since(start), sink.Stats(), stream.Jitter(log, 0.99))
	if br := stream.CheckIsochronous(log, spec.MinDelay, spec.MaxDelay, false, 0); len(br) > 0 {
		t.Errorf("%d breaches, first %v", len(br), br[0])
	}
	times, sizes := make([]int64, len(log)), make([]int, len(log))
	for i, u := range log {
		times[i], sizes[i] = u.Sent, stream.WireSize(u.Len)
	}
	t.Logf("rate %.0f (contract %.0f), max burst %.0f (depth %d)", stream.LongRunRate(times, sizes), spec.Rate, stream.MaxBurst(times, sizes, spec.Rate), spec.Depth)
	if br := stream.CheckBucket(times, sizes, spec.Rate, spec.Depth); len(br) > 0 {
		t.Errorf("%d bucket breaches, first %v", len(br), br[0])
	}
}
