package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/fifo"
	"github.com/ipclab/ipclab/ipc/pipe"
)

func init() {
	Register(pipeTransport{})
	Register(fifoTransport{})
}

// streamEndpoint sends and receives over a pair of ipclab pipe ends.
type streamEndpoint struct {
	r *pipe.Reader
	w *pipe.Writer
}

func (e *streamEndpoint) Send(p []byte) error {
	_, err := e.w.Write(p)
	return err
}

func (e *streamEndpoint) Recv(p []byte) error {
	_, err := e.r.ReadFull(context.Background(), p)
	return err
}

func (e *streamEndpoint) Close() error {
	var errs []error
	if e.r != nil {
		errs = append(errs, e.r.Close())
	}
	if e.w != nil {
		errs = append(errs, e.w.Close())
	}
	return ipc.Join(errs...)
}

// rawStream is the baseline: read(2) and write(2) on blocking descriptors, nothing else.
type rawStream struct{ rfd, wfd int }

func (e *rawStream) Send(p []byte) error {
	for len(p) > 0 {
		n, err := unix.Write(e.wfd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

func (e *rawStream) Recv(p []byte) error {
	for len(p) > 0 {
		n, err := unix.Read(e.rfd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		p = p[n:]
	}
	return nil
}

func (e *rawStream) Close() error {
	if e.rfd >= 0 {
		unix.Close(e.rfd)
		e.rfd = -1
	}
	if e.wfd >= 0 {
		unix.Close(e.wfd)
		e.wfd = -1
	}
	return nil
}

// stdEndpoint is what a Go program writes without ipclab: Read and Write on an
// *os.File or a net.Conn, waiting in the runtime's poller. Byte streams read until p
// is full; a message socket must deliver exactly len(p) bytes in one Read.
type stdEndpoint struct {
	r      io.Reader
	w      io.Writer
	stream bool
	closer []io.Closer
}

func (e *stdEndpoint) Send(p []byte) error {
	_, err := e.w.Write(p) // os.File and net.Conn write all of p or fail
	return err
}

func (e *stdEndpoint) Recv(p []byte) error {
	if e.stream {
		_, err := io.ReadFull(e.r, p)
		return err
	}
	n, err := e.r.Read(p)
	if err == nil && n != len(p) {
		err = fmt.Errorf("short message: %d of %d bytes", n, len(p))
	}
	return err
}

func (e *stdEndpoint) Close() error {
	var errs []error
	for _, c := range e.closer {
		errs = append(errs, c.Close())
	}
	e.closer = nil
	return ipc.Join(errs...)
}

// pollableFile returns a new *os.File for a duplicate of an inherited descriptor,
// made non-blocking first so that os.NewFile puts it in the runtime's poller, as
// os.Pipe's ends are (an inherited descriptor is blocking, and os.NewFile would leave
// it out of the poller: every Read would then hold a thread).
func pollableFile(f *os.File) (*os.File, error) {
	fd, err := dupFile(f)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// pipeTransport: two anonymous pipes, one each way, handed to the peer by inheritance.
type pipeTransport struct{}

// Impls: pipes also run as std (os.Pipe), in every scenario.
func (pipeTransport) Impls(string) []string { return Impls }

func (pipeTransport) Name() string { return "pipe" }
func (pipeTransport) Waits() []ipc.WaitStrategy {
	return []ipc.WaitStrategy{ipc.WaitAuto, ipc.WaitPoller, ipc.WaitKernel}
}
func (pipeTransport) MaxSize() int         { return 0 }
func (pipeTransport) Available() error     { return nil }
func (pipeTransport) Cleanup(Params) error { return nil }

// Scenarios: every peer of a fan-in inherits the same write end; writes of up to
// PIPE_BUF bytes stay whole. A stream with quality of service frames its units on the
// pair of pipes (stream.Framed).
func (pipeTransport) Scenarios() []string {
	return []string{ScenarioPingPong, ScenarioStream, ScenarioFanIn, ScenarioQoS}
}

func (pipeTransport) Setup(p *Params) (Endpoint, []*os.File, error) {
	if p.Impl == ImplStd {
		toR, toW, err := os.Pipe()
		if err != nil {
			return nil, nil, err
		}
		fromR, fromW, err := os.Pipe()
		if err != nil {
			toR.Close()
			toW.Close()
			return nil, nil, err
		}
		return &stdEndpoint{r: fromR, w: toW, stream: true, closer: []io.Closer{fromR, toW}},
			[]*os.File{toR, fromW}, nil
	}
	if p.Impl == ImplRaw {
		var to, from [2]int
		if err := unix.Pipe2(to[:], unix.O_CLOEXEC); err != nil {
			return nil, nil, err
		}
		if err := unix.Pipe2(from[:], unix.O_CLOEXEC); err != nil {
			unix.Close(to[0])
			unix.Close(to[1])
			return nil, nil, err
		}
		files := []*os.File{os.NewFile(uintptr(to[0]), "to-peer"), os.NewFile(uintptr(from[1]), "from-peer")}
		return &rawStream{rfd: from[0], wfd: to[1]}, files, nil
	}
	opt := pipe.WithWait(p.Wait)
	toR, toW, err := pipe.New(opt)
	if err != nil {
		return nil, nil, err
	}
	fromR, fromW, err := pipe.New(opt)
	if err != nil {
		toR.Close()
		toW.Close()
		return nil, nil, err
	}
	defer toR.Close()
	defer fromW.Close()
	f0, err := toR.File()
	if err != nil {
		return nil, nil, err
	}
	f1, err := fromW.File()
	if err != nil {
		f0.Close()
		return nil, nil, err
	}
	return &streamEndpoint{r: fromR, w: toW}, []*os.File{f0, f1}, nil
}

func (pipeTransport) Open(p Params, files []*os.File) (Endpoint, error) {
	if len(files) != 2 {
		return nil, fmt.Errorf("pipe peer needs 2 files, got %d", len(files))
	}
	if p.Impl == ImplStd {
		r, err := pollableFile(files[0])
		if err != nil {
			return nil, err
		}
		w, err := pollableFile(files[1])
		if err != nil {
			r.Close()
			return nil, err
		}
		return &stdEndpoint{r: r, w: w, stream: true, closer: []io.Closer{r, w}}, nil
	}
	rfd, err := dupFile(files[0])
	if err != nil {
		return nil, err
	}
	wfd, err := dupFile(files[1])
	if err != nil {
		unix.Close(rfd)
		return nil, err
	}
	if p.Impl == ImplRaw {
		return &rawStream{rfd: rfd, wfd: wfd}, nil
	}
	opt := pipe.WithWait(p.Wait)
	r, err := pipe.ReaderFromFd(rfd, opt)
	if err != nil {
		unix.Close(wfd)
		return nil, err
	}
	w, err := pipe.WriterFromFd(wfd, opt)
	if err != nil {
		r.Close()
		return nil, err
	}
	return &streamEndpoint{r: r, w: w}, nil
}

// dupFile returns a close-on-exec duplicate of f's descriptor, for the caller to own.
// It reaches the descriptor through SyscallConn rather than Fd, which would switch the
// open file description to blocking mode under every other process sharing it (the
// peers of a fan-in do).
func dupFile(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(raw uintptr) { fd, derr = unix.FcntlInt(raw, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	return fd, derr
}

// fifoTransport: two FIFOs in a private directory, found by path.
type fifoTransport struct{}

func (fifoTransport) Name() string { return "fifo" }
func (fifoTransport) Waits() []ipc.WaitStrategy {
	return []ipc.WaitStrategy{ipc.WaitAuto, ipc.WaitPoller, ipc.WaitKernel}
}
func (fifoTransport) MaxSize() int     { return 0 }
func (fifoTransport) Available() error { return nil }

func (fifoTransport) Setup(p *Params) (Endpoint, []*os.File, error) {
	dir, err := os.MkdirTemp("", "ipcbench-fifo-")
	if err != nil {
		return nil, nil, err
	}
	req, rep := filepath.Join(dir, "req"), filepath.Join(dir, "rep")
	p.Args = []string{dir, req, rep}
	e := &fifoEndpoint{params: *p, parent: true}
	for _, path := range []string{req, rep} {
		if p.Impl == ImplRaw {
			err = unix.Mkfifo(path, 0o600)
		} else {
			var f *fifo.FIFO
			if f, err = fifo.Create(path); err == nil {
				e.owned = append(e.owned, f)
			}
		}
		if err != nil {
			e.Close()
			os.RemoveAll(dir)
			return nil, nil, err
		}
	}
	return e, nil, nil
}

func (fifoTransport) Open(p Params, _ []*os.File) (Endpoint, error) {
	e := &fifoEndpoint{params: p}
	if err := e.Connect(context.Background()); err != nil {
		return nil, err
	}
	return e, nil
}

func (fifoTransport) Cleanup(p Params) error {
	if len(p.Args) > 0 {
		return os.RemoveAll(p.Args[0])
	}
	return nil
}

// fifoEndpoint opens its FIFOs in Connect: the parent writes requests and reads
// replies, the peer the reverse, both in the order request then reply so that the
// blocking opens pair up.
type fifoEndpoint struct {
	params Params
	parent bool
	owned  []*fifo.FIFO // created by Setup; Close removes and closes them
	Endpoint
}

func (e *fifoEndpoint) Connect(ctx context.Context) error {
	req, rep := e.params.Args[1], e.params.Args[2]
	if e.params.Impl == ImplRaw {
		first, second := unix.O_WRONLY, unix.O_RDONLY
		if !e.parent {
			first, second = unix.O_RDONLY, unix.O_WRONLY
		}
		a, err := unix.Open(req, first|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		b, err := unix.Open(rep, second|unix.O_CLOEXEC, 0)
		if err != nil {
			unix.Close(a)
			return err
		}
		if e.parent {
			e.Endpoint = &rawStream{rfd: b, wfd: a}
		} else {
			e.Endpoint = &rawStream{rfd: a, wfd: b}
		}
		return nil
	}
	opt := fifo.WithPipeOptions(pipe.WithWait(e.params.Wait))
	fq, err := fifo.Open(req)
	if err != nil {
		return err
	}
	defer fq.Close()
	fp, err := fifo.Open(rep)
	if err != nil {
		return err
	}
	defer fp.Close()
	s := &streamEndpoint{}
	if e.parent {
		if s.w, err = fq.OpenWriter(ctx, opt); err == nil {
			s.r, err = fp.OpenReader(ctx, opt)
		}
	} else {
		if s.r, err = fq.OpenReader(ctx, opt); err == nil {
			s.w, err = fp.OpenWriter(ctx, opt)
		}
	}
	if err != nil {
		s.Close()
		return err
	}
	e.Endpoint = s
	return nil
}

func (e *fifoEndpoint) Close() error {
	var errs []error
	for _, f := range e.owned {
		errs = append(errs, f.Remove(), f.Close())
	}
	if e.Endpoint != nil {
		errs = append(errs, e.Endpoint.Close())
	}
	return ipc.Join(errs...)
}
