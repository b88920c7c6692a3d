package doors

import (
	"context"
	"strconv"
	"testing"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
)

// door-bench-server serves an echo door on the descriptor it inherited until the
// test signals.
var _ = ipctest.Helper("door-bench-server", func(args []string) int {
	var w ipc.WaitStrategy // auto
	switch args[0] {
	case "poller":
		w = ipc.WaitPoller
	case "kernel":
		w = ipc.WaitKernel
	}
	d, err := New(func(_ context.Context, c *Call) (*Reply, error) { return &Reply{Data: c.Data}, nil },
		WithWait(w))
	if err != nil {
		return helperFail("new: %v", err)
	}
	if err := d.Serve(ipctest.File(0)); err != nil {
		return helperFail("serve: %v", err)
	}
	ipctest.Await()
	d.Close()
	return 0
})

// BenchmarkCall measures a door call to a server in another process; the
// allocations are the client's (none with CallBuf and buffers that fit).
func BenchmarkCall(b *testing.B) {
	for _, w := range []ipc.WaitStrategy{ipc.WaitAuto, ipc.WaitPoller, ipc.WaitKernel} {
		for _, size := range []int{64, 4096, 1 << 20} {
			for _, shm := range []int{0, DefaultShmThreshold} {
				if size < DefaultShmThreshold && shm != 0 {
					continue
				}
				name := w.String() + "/" + sizeName(size)
				if size >= DefaultShmThreshold {
					name += map[bool]string{true: "/shm", false: "/socket"}[shm != 0]
				}
				b.Run(name, func(b *testing.B) { benchCall(b, w, size, shm) })
			}
		}
	}
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return strconv.Itoa(n>>20) + "M"
	case n >= 1<<10:
		return strconv.Itoa(n>>10) + "K"
	}
	return strconv.Itoa(n)
}

func benchCall(b *testing.B, w ipc.WaitStrategy, size, shm int) {
	srv, cli, err := socketpairFiles()
	if err != nil {
		b.Fatal(err)
	}
	p := ipctest.Start(b, "door-bench-server", ipctest.Handover(srv), ipctest.WithArgs(w.String()))
	c, err := NewClient(bg, cli, ClientWait(w), ShmThreshold(shm))
	cli.Close()
	if err != nil {
		b.Fatal(err)
	}
	msg, buf := make([]byte, size), make([]byte, size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.CallBuf(bg, msg, nil, buf, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	c.Close()
	p.Signal()
	p.MustSucceed()
}
