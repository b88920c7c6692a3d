package posixmq_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/posixmq"
)

// endpoint is one side of a ping-pong: the library in any wait strategy, or bare
// system calls on blocking descriptors.
type endpoint struct {
	in, out   *posixmq.Queue
	rin, rout int
}

func (e *endpoint) send(p []byte) error {
	if e.out != nil {
		return e.out.Send(context.Background(), p, 0)
	}
	for {
		if err := sys.MqTimedsend(e.rout, p, 0, nil); err != unix.EINTR {
			return err
		}
	}
}

func (e *endpoint) recv(p []byte) error {
	if e.in != nil {
		_, _, err := e.in.Recv(context.Background(), p)
		return err
	}
	for {
		if _, _, err := sys.MqTimedreceive(e.rin, p, nil); err != unix.EINTR {
			return err
		}
	}
}

// adopt builds an endpoint of kind ("auto", "poller", "kernel", "raw") from two blocking
// descriptors it takes over.
func adopt(kind string, in, out int) (*endpoint, error) {
	if kind == "raw" {
		return &endpoint{rin: in, rout: out}, nil
	}
	w, err := ipc.ParseWaitStrategy(kind)
	if err != nil {
		return nil, err
	}
	qi, err := posixmq.FromFd(in, posixmq.WithWait(w))
	if err != nil {
		unix.Close(out)
		return nil, err
	}
	qo, err := posixmq.FromFd(out, posixmq.WithWait(w))
	if err != nil {
		qi.Close()
		return nil, err
	}
	return &endpoint{in: qi, out: qo}, nil
}

func (e *endpoint) close() {
	if e.in != nil {
		e.in.Close()
		e.out.Close()
		return
	}
	unix.Close(e.rin)
	unix.Close(e.rout)
}

// mq-echo: receive on File(0) and send back on File(1), args[1] times.
var _ = ipctest.Helper("mq-echo", func(args []string) int {
	n, _ := strconv.Atoi(args[1])
	e, err := adopt(args[0], ipctest.Fd(0), ipctest.Fd(1))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer e.close()
	buf := make([]byte, 64)
	for i := 0; i < n; i++ {
		if err := e.recv(buf); err != nil {
			fmt.Println(err)
			return 1
		}
		if err := e.send(buf); err != nil {
			fmt.Println(err)
			return 1
		}
	}
	return 0
})

// BenchmarkPingPongProcess is a round trip of a 64-byte message between this process
// and an echoing peer process, over two queues, with the library (every wait
// strategies) and with bare system calls on both sides: the library's overhead where
// it matters, against the raw baseline.
func BenchmarkPingPongProcess(b *testing.B) {
	for _, kind := range []string{"raw", "auto", "kernel", "poller"} {
		b.Run(kind, func(b *testing.B) {
			ping := newQueue(b, posixmq.WithAttr(4, 64))
			pong := newQueue(b, posixmq.WithAttr(4, 64))
			var files []*os.File
			for _, q := range []*posixmq.Queue{ping, pong} {
				f, err := q.File()
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				files = append(files, f)
			}
			p := start(b, "mq-echo", ipctest.WithArgs(kind, strconv.Itoa(b.N)), ipctest.WithFiles(files...))
			var fds [2]int
			for i, f := range files {
				fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
				if err != nil {
					b.Fatal(err)
				}
				fds[i] = fd
			}
			e, err := adopt(kind, fds[1], fds[0])
			if err != nil {
				b.Fatal(err)
			}
			defer e.close()
			msg, buf := make([]byte, 64), make([]byte, 64)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := e.send(msg); err != nil {
					b.Fatal(err)
				}
				if err := e.recv(buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			p.MustSucceed()
		})
	}
}
