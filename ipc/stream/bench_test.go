package stream_test

import (
	"context"
	"testing"

	"github.com/ipclab/ipclab/ipc/stream"
	"github.com/ipclab/ipclab/sockets"
)

// BenchmarkUnit sends and receives units of 64 B over a seqpacket pair, unshaped
// and shaped at a rate above what the loop reaches, in the async and the sync mode:
// with the caller's buffers, a unit allocates nothing.
func BenchmarkUnit(b *testing.B) {
	for _, bc := range []struct {
		name string
		spec stream.FlowSpec
	}{
		{"async", stream.FlowSpec{Rate: 1e12, Depth: 1 << 20}},
		{"sync", stream.FlowSpec{Rate: 1e12, Depth: 1 << 20, Mode: stream.Sync, MaxDelay: 1e9}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			a, c, err := sockets.SeqpacketPair()
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			defer c.Close()
			ctx := context.Background()
			done := make(chan *stream.Source, 1)
			go func() {
				src, err := stream.Open(ctx, a, bc.spec)
				if err != nil {
					panic(err)
				}
				done <- src
			}()
			sink, err := stream.Accept(ctx, c)
			if err != nil {
				b.Fatal(err)
			}
			defer sink.Close()
			src := <-done
			payload, buf := make([]byte, 64), make([]byte, 64)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := src.Send(ctx, payload, 0); err != nil {
					b.Fatal(err)
				}
				if _, err := sink.Recv(ctx, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
