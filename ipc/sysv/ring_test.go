package sysv

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
)

var _ = ipctest.Helper("ring-echo", func(args []string) int {
	// args: inbound ring id, outbound ring id, wait strategy, count
	w, _ := ipc.ParseWaitStrategy(args[2])
	in, err := OpenRing(atoi(args[0]), WithRingWait(w))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer in.Close()
	out, err := OpenRing(atoi(args[1]), WithRingWait(w))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer out.Close()
	ipctest.Signal() // attached
	buf := make([]byte, 4096)
	ctx := context.Background()
	for range atoi(args[3]) {
		n, err := in.Recv(ctx, buf)
		if err != nil {
			fmt.Println("recv:", err)
			return 1
		}
		if err := out.Send(ctx, buf[:n]); err != nil {
			fmt.Println("send:", err)
			return 1
		}
	}
	return 0
})

func tmpRing(t testing.TB, capacity int, opts ...RingOption) *Ring {
	t.Helper()
	r, err := CreateRing(capacity, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Remove(); r.Close() })
	return r
}

func TestRingLocal(t *testing.T) {
	for _, sig := range []Signal{SignalFutex, SignalSemaphore} {
		t.Run(sig.String(), func(t *testing.T) {
			r := tmpRing(t, 256, WithSignal(sig))
			ctx := context.Background()
			buf := make([]byte, 128)
			// sizes chosen to wrap around the 256-byte data area many times
			for i := range 500 {
				msg := bytes.Repeat([]byte{byte(i)}, i%100)
				must(t, r.Send(ctx, msg))
				n, err := r.Recv(ctx, buf)
				must(t, err)
				if !bytes.Equal(buf[:n], msg) {
					t.Fatalf("message %d: got %d bytes", i, n)
				}
			}
			// truncation is reported
			must(t, r.Send(ctx, []byte("0123456789")))
			n, err := r.Recv(ctx, buf[:4])
			wantErr(t, err, ipc.ErrTruncated)
			if n != 4 || string(buf[:4]) != "0123" {
				t.Fatalf("truncated: %q", buf[:n])
			}
			wantErr(t, r.Send(ctx, make([]byte, r.MaxMessage()+1)), ipc.ErrInvalid)
		})
	}
}

func TestRingCorrupt(t *testing.T) {
	r := tmpRing(t, 256)
	ctx := context.Background()
	m := r.seg.Bytes()
	buf := make([]byte, 64)
	// a head beyond the capacity
	binary.NativeEndian.PutUint64(m[offHead:], 1<<20)
	_, err := r.Recv(ctx, buf)
	wantErr(t, err, ipc.ErrInvalid)
	// a length word pointing past the published data
	binary.NativeEndian.PutUint64(m[offHead:], 8)
	binary.NativeEndian.PutUint32(m[ringHeader:], 200)
	_, err = r.Recv(ctx, buf)
	wantErr(t, err, ipc.ErrInvalid)
	// a tail ahead of the head, seen by the producer
	binary.NativeEndian.PutUint64(m[offTail:], 1<<30)
	wantErr(t, r.Send(ctx, []byte("x")), ipc.ErrInvalid)
	// a header that is not a ring
	s := tmpSegment(t, 4096)
	_, err = OpenRing(s.ID())
	wantErr(t, err, ipc.ErrInvalid)
}

func TestRingCancel(t *testing.T) {
	for _, sig := range []Signal{SignalFutex, SignalSemaphore} {
		t.Run(sig.String(), func(t *testing.T) {
			r := tmpRing(t, 256, WithSignal(sig))
			const hold = 100 * time.Millisecond
			var lats []latency
			for range 5 {
				lats = append(lats, cancelLatency(t, hold, func(ctx context.Context) error {
					_, err := r.Recv(ctx, make([]byte, 8))
					return err
				}))
			}
			checkLatencies(t, hold, lats)
			// Close interrupts a blocked receiver
			peer, err := OpenRing(r.SegmentID())
			must(t, err)
			done := make(chan error, 1)
			go func() {
				_, err := peer.Recv(context.Background(), make([]byte, 8))
				done <- err
			}()
			waitBlocked(t, done)
			must(t, peer.Close())
			must(t, peer.Close())
			wantErr(t, <-done, os.ErrClosed)
		})
	}
}

// TestRingCrossProcess echoes messages through a pair of rings with a peer process,
// for each signalling and wait strategy, then checks nothing is left behind once
// both sides have attached and the rings are removed.
func TestRingCrossProcess(t *testing.T) {
	for _, sig := range []Signal{SignalFutex, SignalSemaphore} {
		for _, w := range []ipc.WaitStrategy{ipc.WaitKernel, ipc.WaitSpin} {
			t.Run(sig.String()+"-"+w.String(), func(t *testing.T) {
				out := tmpRing(t, 1024, WithSignal(sig), WithRingWait(w))
				in := tmpRing(t, 1024, WithSignal(sig), WithRingWait(w))
				const count = 2000
				p := ipctest.Start(t, "ring-echo", ipctest.WithArgs(strconv.Itoa(out.SegmentID()), strconv.Itoa(in.SegmentID()), w.String(), strconv.Itoa(count)))
				p.Await()
				must(t, out.Remove()) // attach-then-remove
				must(t, in.Remove())
				ctx := context.Background()
				msg, buf := make([]byte, 300), make([]byte, 300)
				// keep several messages in flight so both sides sleep and wake
				const window = 3
				for i := range count + window {
					if i < count {
						fill(msg[:i%300], i)
						must(t, out.Send(ctx, msg[:i%300]))
					}
					if j := i - window; j >= 0 {
						n, err := in.Recv(ctx, buf)
						must(t, err)
						fill(msg[:j%300], j)
						if n != j%300 || !bytes.Equal(buf[:n], msg[:n]) {
							t.Fatalf("echo %d: %d bytes", j, n)
						}
					}
				}
				p.MustSucceed()
			})
		}
	}
}

// TestRingTry: TryRecv on an empty ring and TrySend on a full one fail at once with
// ipc.ErrWouldBlock (unix.EAGAIN) and change nothing; so does a Try call while another
// goroutine of this process holds that direction's turn; after Close both match
// os.ErrClosed.
func TestRingTry(t *testing.T) {
	for _, sig := range []Signal{SignalFutex, SignalSemaphore} {
		t.Run(sig.String(), func(t *testing.T) {
			r, err := CreateRing(256, WithSignal(sig))
			must(t, err)
			h, err := OpenRing(r.SegmentID()) // removes the ring in cleanup
			must(t, err)
			t.Cleanup(func() { h.Remove(); h.Close() })
			buf := make([]byte, 64)
			_, err = r.TryRecv(buf)
			wantErr(t, err, ipc.ErrWouldBlock, unix.EAGAIN)
			msg := make([]byte, 40) // 48 bytes a record: five fill the 256-byte area
			sent := 0
			for ; sent < 10; sent++ {
				if err = r.TrySend(msg); err != nil {
					break
				}
			}
			wantErr(t, err, ipc.ErrWouldBlock, unix.EAGAIN)
			if sent != 5 {
				t.Fatalf("TrySend queued %d 40-byte messages in 256 bytes, want 5", sent)
			}
			for i := range sent {
				n, err := r.TryRecv(buf)
				if err != nil || n != len(msg) {
					t.Fatalf("TryRecv %d: %d bytes, %v", i, n, err)
				}
			}
			_, err = r.TryRecv(buf)
			wantErr(t, err, ipc.ErrWouldBlock)

			// a Recv waiting in another goroutine holds the turn
			got := make(chan error, 1)
			go func() { _, err := r.Recv(context.Background(), make([]byte, 64)); got <- err }()
			time.Sleep(50 * time.Millisecond)
			_, err = r.TryRecv(buf)
			wantErr(t, err, ipc.ErrWouldBlock)
			must(t, r.Send(context.Background(), []byte("x"))) // r is the one producer
			must(t, <-got)

			must(t, r.Close())
			_, err = r.TryRecv(buf)
			wantErr(t, err, os.ErrClosed)
			wantErr(t, r.TrySend(msg), os.ErrClosed)
		})
	}
}
