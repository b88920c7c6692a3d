package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/posixmq"
)

// The posix-mq transport: two POSIX message queues, one per direction, created in the
// parent with the run's message size, unlinked at once (the descriptors keep them
// alive, so nothing is left behind whatever happens to either process) and handed to
// the peer as inherited descriptors. Impl "ipclab" uses ipc/posixmq (any wait
// strategy); "raw" uses blocking descriptors and bare mq_timedsend/mq_timedreceive.

type posixMQTransport struct{}

func init() { Register(posixMQTransport{}) }

func (posixMQTransport) Name() string { return "posix-mq" }

// Scenarios: a queue takes messages from any number of senders, so it does fan-in.
func (posixMQTransport) Scenarios() []string {
	return []string{ScenarioPingPong, ScenarioStream, ScenarioFanIn}
}

func (posixMQTransport) Waits() []ipc.WaitStrategy {
	return []ipc.WaitStrategy{ipc.WaitAuto, ipc.WaitPoller, ipc.WaitKernel}
}

// MaxSize is /proc/sys/fs/mqueue/msgsize_max (8192 unless raised).
func (posixMQTransport) MaxSize() int {
	if b, err := os.ReadFile("/proc/sys/fs/mqueue/msgsize_max"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return n
		}
	}
	return 8192
}

// Available creates and removes a queue.
func (posixMQTransport) Available() error {
	name := mqBenchName("probe")
	fd, err := sys.MqOpen(name[1:], unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_CLOEXEC, 0o600, nil)
	if err != nil {
		return fmt.Errorf("posix-mq: mq_open: %w", err)
	}
	unix.Close(fd)
	return sys.MqUnlink(name[1:])
}

// Cleanup has nothing to do: Setup unlinks the names as soon as the queues exist.
func (posixMQTransport) Cleanup(Params) error { return nil }

// mqDepth is each queue's capacity in messages: enough for a stream scenario to
// pipeline, small enough for RLIMIT_MSGQUEUE at the largest size.
const mqDepth = 8

var mqSeq atomic.Int64

func mqBenchName(what string) string {
	return fmt.Sprintf("/ipcbench-%d-%d-%s", os.Getpid(), mqSeq.Add(1), what)
}

func mqMsgSize(p *Params) int { return max(p.Size, 1) }

// Setup creates the two queues. The parent sends on the first and receives on the
// second; files[0] and files[1] are the same queues for the peer, which uses them the
// other way round.
func (t posixMQTransport) Setup(p *Params) (Endpoint, []*os.File, error) {
	size := mqMsgSize(p)
	if max := t.MaxSize(); size > max {
		return nil, nil, fmt.Errorf("posix-mq: size %d above msgsize_max %d", size, max)
	}
	if p.Impl == ImplRaw {
		return rawMQSetup(size)
	}
	var qs [2]*posixmq.Queue
	closeAll := func() {
		for _, q := range qs {
			if q != nil {
				q.Close()
			}
		}
	}
	for i, dir := range []string{"to-peer", "from-peer"} {
		name := mqBenchName(dir)
		q, err := posixmq.Create(name, posixmq.WithAttr(mqDepth, size), posixmq.WithWait(p.Wait))
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		qs[i] = q
		if err := q.Remove(); err != nil {
			closeAll()
			return nil, nil, err
		}
	}
	var files []*os.File
	for _, q := range qs {
		f, err := q.File()
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			closeAll()
			return nil, nil, err
		}
		files = append(files, f)
	}
	return newMQEndpoint(qs[0], qs[1], size), files, nil
}

// Open adopts the inherited queues: the peer receives on files[0] and sends on
// files[1].
func (posixMQTransport) Open(p Params, files []*os.File) (Endpoint, error) {
	if len(files) != 2 {
		return nil, fmt.Errorf("posix-mq: want 2 files, got %d", len(files))
	}
	size := mqMsgSize(&p)
	var fds [2]int
	for i, f := range files {
		fd, err := dupFile(f) // not f.Fd(): fan-in peers share these descriptions
		if err != nil {
			if i == 1 {
				unix.Close(fds[0])
			}
			return nil, err
		}
		fds[i] = fd
	}
	if p.Impl == ImplRaw {
		return &rawMQEndpoint{send: fds[1], recv: fds[0], buf: make([]byte, size)}, nil
	}
	in, err := posixmq.FromFd(fds[0], posixmq.WithWait(p.Wait))
	if err != nil {
		unix.Close(fds[1])
		return nil, err
	}
	out, err := posixmq.FromFd(fds[1], posixmq.WithWait(p.Wait))
	if err != nil {
		in.Close()
		return nil, err
	}
	return newMQEndpoint(out, in, size), nil
}

// mqEndpoint is the ipclab implementation.
type mqEndpoint struct {
	send, recv *posixmq.Queue
	// buf receives when the caller's buffer is shorter than the message size (the
	// kernel wants at least mq_msgsize bytes); with len(p) == size, p is used.
	buf []byte
}

func newMQEndpoint(send, recv *posixmq.Queue, size int) *mqEndpoint {
	return &mqEndpoint{send: send, recv: recv, buf: make([]byte, size)}
}

func (e *mqEndpoint) Send(p []byte) error {
	return e.send.Send(context.Background(), p, 0)
}

func (e *mqEndpoint) Recv(p []byte) error {
	dst := p
	if len(p) < len(e.buf) {
		dst = e.buf
	}
	n, _, err := e.recv.Recv(context.Background(), dst)
	if err != nil {
		return err
	}
	if n != len(p) {
		return fmt.Errorf("posix-mq: received %d bytes, want %d", n, len(p))
	}
	if len(p) < len(e.buf) {
		copy(p, dst[:n])
	}
	return nil
}

func (e *mqEndpoint) Close() error {
	err1 := e.send.Close()
	err2 := e.recv.Close()
	if err1 != nil {
		return err1
	}
	return err2
}
