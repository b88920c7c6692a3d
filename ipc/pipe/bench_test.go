package pipe_test

import (
	"context"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/pipe"
)

// BenchmarkWriteRead writes and reads one 64-byte message per iteration into caller
// buffers: it must allocate nothing.
func BenchmarkWriteRead(b *testing.B) { benchWriteRead(b) }

// benchWriteRead is a 64-byte write and read through one pipe made with opts, in each
// wait strategy.
func benchWriteRead(b *testing.B, opts ...pipe.Option) {
	for _, ws := range strategies {
		b.Run(ws.String(), func(b *testing.B) {
			r, w, err := pipe.New(append([]pipe.Option{pipe.WithWait(ws)}, opts...)...)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			defer w.Close()
			msg := make([]byte, 64)
			buf := make([]byte, 64)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(64)
			for b.Loop() {
				if _, err := w.WriteContext(ctx, msg); err != nil {
					b.Fatal(err)
				}
				if _, err := r.ReadContext(ctx, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTryWriteRead is the non-blocking pair; it must allocate nothing either.
func BenchmarkTryWriteRead(b *testing.B) {
	for _, ws := range []ipc.WaitStrategy{ipc.WaitAuto, ipc.WaitPoller, ipc.WaitKernel} {
		b.Run(ws.String(), func(b *testing.B) {
			r, w, err := pipe.New(pipe.WithWait(ws))
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			defer w.Close()
			msg := make([]byte, 64)
			buf := make([]byte, 64)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := w.TryWrite(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := r.TryRead(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRawWriteRead is the same exchange with bare system calls, for comparison.
func BenchmarkRawWriteRead(b *testing.B) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		b.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	msg := make([]byte, 64)
	buf := make([]byte, 64)
	b.ReportAllocs()
	b.SetBytes(64)
	for b.Loop() {
		if _, err := unix.Write(p[1], msg); err != nil {
			b.Fatal(err)
		}
		if _, err := unix.Read(p[0], buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPacketWriteRead is BenchmarkWriteRead on a packet pipe: a 64-byte buffer is
// shorter than a page, so every read goes through the truncation check (readv with
// the spill area). It must allocate nothing either.
func BenchmarkPacketWriteRead(b *testing.B) { benchWriteRead(b, pipe.Packet()) }
