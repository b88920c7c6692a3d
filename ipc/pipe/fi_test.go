package pipe

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
)

// The sender writes 1000-byte frames (a 4-byte length, then the body) numbered 0, 1,
// 2, …, each in two writes; FaultAt kills it between the two.
var _ = ipctest.Helper("fi01-pipe-sender", func(args []string) int {
	w, err := WriterFromFd(ipctest.Fd(0))
	if err != nil {
		return 2
	}
	f := make([]byte, 4+996)
	binary.BigEndian.PutUint32(f, 996)
	for i := 0; ; i++ {
		binary.BigEndian.PutUint64(f[4:], uint64(i))
		if _, err := w.Write(f[:300]); err != nil {
			return 3
		}
		ipctest.Point("mid-frame")
		if _, err := w.Write(f[300:]); err != nil {
			return 3
		}
	}
})

// TestSenderKilledMidFrame is FI-01 for pipes: the reader of a writer SIGKILLed inside
// a frame reads a gap-free prefix of whole frames, then ReadFull reports
// io.ErrUnexpectedEOF for the cut one, so no part of it is taken for a whole frame;
// a new pipe afterwards is clean.
func TestSenderKilledMidFrame(t *testing.T) {
	t.Run("FI-01", func(t *testing.T) {
		for _, w := range []ipc.WaitStrategy{ipc.WaitAuto, ipc.WaitPoller, ipc.WaitKernel} {
			t.Run(w.String(), func(t *testing.T) {
				killAt := 1 + int(ipctest.Seed(t)%40)
				r, wr, err := New(WithWait(w))
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				f, err := wr.File()
				wr.Close()
				if err != nil {
					t.Fatal(err)
				}
				ipctest.Start(t, "fi01-pipe-sender", ipctest.Handover(f), ipctest.FaultAt("mid-frame", killAt, unix.SIGKILL))
				ctx := context.Background()
				var got []uint64
				hdr, body := make([]byte, 4), make([]byte, 996)
				for {
					if _, err := r.ReadFull(ctx, hdr); err != nil {
						t.Fatalf("header after %d frames: %v (a frame is cut after its header)", len(got), err)
					}
					n, err := r.ReadFull(ctx, body[:binary.BigEndian.Uint32(hdr)])
					if err != nil {
						if !errors.Is(err, io.ErrUnexpectedEOF) || n != 296 {
							t.Fatalf("cut frame: %d bytes, %v; want 296 and io.ErrUnexpectedEOF", n, err)
						}
						break
					}
					got = append(got, binary.BigEndian.Uint64(body))
				}
				if rep := ipctest.CheckSeq(uint64(killAt), got); !rep.Prefix() || rep.Lost != 1 {
					t.Fatalf("killed in frame %d: %v", killAt-1, rep)
				}
				r2, w2, err := New(WithWait(w))
				if err != nil {
					t.Fatal(err)
				}
				defer r2.Close()
				defer w2.Close()
				if _, err := w2.Write([]byte("fresh")); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 5)
				if _, err := r2.ReadFull(ctx, buf); err != nil || string(buf) != "fresh" {
					t.Fatalf("new pipe: %q %v", buf, err)
				}
			})
		}
	})
}

// TestPacketWriterRefusesNonPackets: splice, vmsplice and tee from a plain pipe would
// put bytes into a packet pipe that are not packets, which a packet reader could only
// report as truncated; a packet Writer refuses them before any system call.
func TestPacketWriterRefusesNonPackets(t *testing.T) {
	r, w, err := New(Packet())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	pr, pw, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	ctx := context.Background()
	if _, err := w.Vmsplice(ctx, []byte("x")); !errors.Is(err, ipc.ErrInvalid) {
		t.Errorf("Vmsplice into a packet pipe: %v, want ErrInvalid", err)
	}
	if _, err := w.SpliceFrom(ctx, pr, 1); !errors.Is(err, ipc.ErrInvalid) {
		t.Errorf("SpliceFrom into a packet pipe: %v, want ErrInvalid", err)
	}
	if _, err := pr.TeeTo(ctx, w, 1); !errors.Is(err, ipc.ErrInvalid) {
		t.Errorf("TeeTo from a plain pipe into a packet pipe: %v, want ErrInvalid", err)
	}
}
