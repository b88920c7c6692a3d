package pipe_test

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/pipe"
)

var _ = ipctest.Helper("write-pattern", func(args []string) int {
	n, _ := strconv.Atoi(args[0])
	w, err := pipe.WriterFromFd(ipctest.Fd(0))
	if err != nil {
		return 1
	}
	buf := make([]byte, n)
	for i := range buf {
		buf[i] = byte(i % 251)
	}
	if _, err := w.Write(buf); err != nil {
		return 1
	}
	return 0
})

func TestSpliceAcrossProcesses(t *testing.T) {
	for _, ws := range strategies {
		t.Run(ws.String(), func(t *testing.T) {
			const n = 200_000
			srcR, srcW := newPipe(t, pipe.WithWait(ws))
			dstR, dstW := newPipe(t, pipe.WithWait(ws))
			p := ipctest.Start(t, "write-pattern", ipctest.WithArgs(strconv.Itoa(n)), ipctest.Handover(writerFile(t, srcW)))
			require.NoError(t, srcW.Close())

			got := make(chan []byte, 1)
			go func() {
				data, _ := io.ReadAll(dstR)
				got <- data
			}()
			var moved int64
			for {
				m, err := srcR.SpliceTo(context.Background(), dstW, 1<<16)
				if err == io.EOF {
					break
				}
				require.NoError(t, err)
				moved += m
			}
			require.NoError(t, dstW.Close())
			p.MustSucceed()
			data := <-got
			assert.Equal(t, int64(n), moved)
			require.Len(t, data, n)
			for i, b := range data {
				if b != byte(i%251) {
					t.Fatalf("byte %d = %d", i, b)
				}
			}
		})
	}
}

func TestSpliceToFileAndBack(t *testing.T) {
	r, w := newPipe(t)
	f, err := os.CreateTemp(t.TempDir(), "splice")
	require.NoError(t, err)
	defer f.Close()
	_, err = w.Write([]byte("through the page cache"))
	require.NoError(t, err)
	n, err := r.SpliceTo(context.Background(), f, 100)
	require.NoError(t, err)
	assert.EqualValues(t, 22, n)

	_, err = f.Seek(0, io.SeekStart)
	require.NoError(t, err)
	n, err = w.SpliceFrom(context.Background(), f, 100)
	require.NoError(t, err)
	assert.EqualValues(t, 22, n)
	buf := make([]byte, 22)
	_, err = r.ReadFull(context.Background(), buf)
	require.NoError(t, err)
	assert.Equal(t, "through the page cache", string(buf))
}

func TestTee(t *testing.T) {
	r, w := newPipe(t)
	r2, w2 := newPipe(t)
	_, err := w.Write([]byte("twice"))
	require.NoError(t, err)
	n, err := r.TeeTo(context.Background(), w2, 100)
	require.NoError(t, err)
	assert.EqualValues(t, 5, n)
	buf := make([]byte, 5)
	_, err = r.ReadFull(context.Background(), buf)
	require.NoError(t, err)
	assert.Equal(t, "twice", string(buf), "tee does not consume")
	_, err = r2.ReadFull(context.Background(), buf)
	require.NoError(t, err)
	assert.Equal(t, "twice", string(buf))

	// SPL (tee02): tee onto the same pipe is EINVAL.
	_, err = w.Write([]byte("x"))
	require.NoError(t, err)
	_, err = r.TeeTo(context.Background(), w, 1)
	assert.ErrorIs(t, err, unix.EINVAL)
	_, err = r.TeeTo(context.Background(), w2, 0)
	assert.ErrorIs(t, err, ipc.ErrInvalid)
}

func TestVmsplice(t *testing.T) {
	r, w := newPipe(t)
	n, err := w.Vmsplice(context.Background(), []byte("gifted? no, copied"))
	require.NoError(t, err)
	assert.Equal(t, 18, n)
	buf := make([]byte, n)
	_, err = r.ReadFull(context.Background(), buf)
	require.NoError(t, err)
	assert.Equal(t, "gifted? no, copied", string(buf))

	// SPL (vmsplice04): into a full pipe with SPLICE_F_NONBLOCK → EAGAIN; the
	// blocking call waits until its context ends.
	c, _ := w.Capacity()
	_, err = w.TryWrite(make([]byte, c))
	require.NoError(t, err)
	_, err = sys.Vmsplice(w.Fd(), []byte("x"), unix.SPLICE_F_NONBLOCK)
	assert.ErrorIs(t, err, unix.EAGAIN)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err = w.Vmsplice(ctx, []byte("x"))
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

// TestSpliceWaitingOnOtherSide: a SpliceFrom whose pipe has room but whose source is
// empty waits on the source, and that wait still ends on the call's context and on
// the writer's Close, in every mode (it used to wait on the source's own poller
// registration, deaf to both).
func TestSpliceWaitingOnOtherSide(t *testing.T) {
	for _, mode := range strategies {
		t.Run(mode.String(), func(t *testing.T) {
			for _, how := range []string{"cancel", "close"} {
				sr, sw, err := pipe.New(pipe.WithWait(mode))
				if err != nil {
					t.Fatal(err)
				}
				r, w, err := pipe.New(pipe.WithWait(mode))
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { _, err := w.SpliceFrom(ctx, sr, 10); done <- err }()
				time.Sleep(50 * time.Millisecond)
				want := context.Canceled
				if how == "cancel" {
					cancel()
				} else {
					w.Close()
					want = os.ErrClosed
				}
				select {
				case err := <-done:
					if !errors.Is(err, want) {
						t.Errorf("%s: SpliceFrom returned %v, want %v", how, err, want)
					}
				case <-time.After(ipctest.Slack):
					t.Errorf("%s: SpliceFrom waiting on an empty source did not return", how)
					sw.Write([]byte("x"))
					<-done
				}
				cancel()
				for _, c := range []interface{ Close() error }{sr, sw, r, w} {
					c.Close()
				}
			}
		})
	}
}

// TestVmspliceIntoFullSlots: a pipe whose slots are all taken by one-byte buffers is
// full although it holds 16 bytes of 64 KiB; a Vmsplice into it waits for a slot (it
// returned EAGAIN, counting bytes, not slots) and goes in once a read frees one.
func TestVmspliceIntoFullSlots(t *testing.T) {
	for _, mode := range strategies {
		t.Run(mode.String(), func(t *testing.T) {
			r, w, err := pipe.New(pipe.WithWait(mode))
			require.NoError(t, err)
			defer r.Close()
			defer w.Close()
			for { // vmsplice'd buffers are never merged: one slot each
				if _, err := sys.Vmsplice(w.Fd(), []byte("x"), unix.SPLICE_F_NONBLOCK); err != nil {
					require.ErrorIs(t, err, unix.EAGAIN)
					break
				}
			}
			if q, _ := r.Buffered(); q >= 1024 {
				t.Fatalf("%d bytes queued: the slots are not one byte each", q)
			}
			ctx, cancel := context.WithTimeout(context.Background(), ipctest.Slack)
			defer cancel()
			done := make(chan error, 1)
			go func() { _, err := w.Vmsplice(ctx, []byte("y")); done <- err }()
			select {
			case err := <-done:
				t.Fatalf("Vmsplice into a pipe with no free slot returned %v at once", err)
			case <-time.After(50 * time.Millisecond):
			}
			_, err = r.Read(make([]byte, 1))
			require.NoError(t, err)
			require.NoError(t, <-done)
		})
	}
}
