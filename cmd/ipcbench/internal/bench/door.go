package bench

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/sys"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/doors"
	"github.com/ipclab/ipclab/sockets"
)

// The door transports run the call scenario: the peer process is a door server
// whose handler echoes its argument, the parent calls it. "door" uses the library's
// defaults (data from doors.DefaultShmThreshold on travels through shared memory);
// "door-socket" keeps all data on the socket, for the large-argument comparison;
// "door-inplace" is "door" with doors.ShmInPlace (the handler reads the argument in
// the shared region and the echo goes back without a copy).
// Impl "raw" is the bare SOCK_SEQPACKET ping-pong over a socketpair with blocking
// sendmsg/recvmsg (messages above 64 KiB in 64 KiB pieces, as a seqpacket message
// cannot exceed the socket buffer).

const doorBenchMax = 64 << 20

type doorTransport struct {
	name    string
	shm     bool
	inPlace bool
}

func init() {
	Register(doorTransport{name: "door", shm: true})
	Register(doorTransport{name: "door-socket"})
	Register(doorTransport{name: "door-inplace", shm: true, inPlace: true})
}

func (t doorTransport) Name() string { return t.name }

func (t doorTransport) Waits() []ipc.WaitStrategy {
	return []ipc.WaitStrategy{ipc.WaitAuto, ipc.WaitPoller, ipc.WaitKernel}
}

func (t doorTransport) MaxSize() int { return doorBenchMax }

func (t doorTransport) Available() error { return nil }

// Scenarios: a door is called, it does not stream; "door" is also the plain-call
// baseline of scenario rpc.
func (t doorTransport) Scenarios() []string {
	if t.name == "door" {
		return []string{ScenarioCall, ScenarioRPC}
	}
	return []string{ScenarioCall}
}

func (t doorTransport) Cleanup(Params) error { return nil }

func (t doorTransport) Setup(p *Params) (Endpoint, []*os.File, error) {
	fds, err := sockets.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET, 0)
	if err != nil {
		return nil, nil, err
	}
	peer := os.NewFile(uintptr(fds[1]), t.name)
	if p.Impl == ImplRaw {
		return &rawDoorEP{fd: fds[0]}, []*os.File{peer}, nil
	}
	return &doorClientEP{f: os.NewFile(uintptr(fds[0]), t.name), t: t, wait: p.Wait}, []*os.File{peer}, nil
}

func (t doorTransport) Open(p Params, files []*os.File) (Endpoint, error) {
	if len(files) != 1 {
		return nil, fmt.Errorf("%s: want 1 file, got %d", t.name, len(files))
	}
	if p.Impl == ImplRaw {
		fd, err := unix.FcntlInt(files[0].Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		return &rawDoorEP{fd: fd}, nil
	}
	opts := []doors.Option{doors.WithWait(p.Wait), doors.WithMaxData(doorBenchMax)}
	if t.inPlace {
		opts = append(opts, doors.ShmInPlace())
	}
	d, err := doors.New(func(_ context.Context, c *doors.Call) (*doors.Reply, error) {
		return c.Return(c.Data, nil), nil
	}, opts...)
	if err != nil {
		return nil, err
	}
	if err := d.Serve(files[0]); err != nil {
		d.Close()
		return nil, err
	}
	return doorServerEP{d}, nil
}

// doorClientEP is the parent: Send keeps the argument, Recv makes the call.
type doorClientEP struct {
	f    *os.File
	t    doorTransport
	wait ipc.WaitStrategy
	c    *doors.Client
	msg  []byte
}

// Connect opens the door once the peer serves it.
func (e *doorClientEP) Connect(ctx context.Context) error {
	opts := []doors.ClientOption{doors.ClientWait(e.wait), doors.MaxResult(doorBenchMax)}
	if !e.t.shm {
		opts = append(opts, doors.ShmThreshold(0))
	}
	c, err := doors.NewClient(ctx, e.f, opts...)
	e.f.Close()
	e.f = nil
	if err != nil {
		return err
	}
	e.c = c
	return nil
}

func (e *doorClientEP) Send(p []byte) error {
	e.msg = p
	return nil
}

func (e *doorClientEP) Recv(p []byte) error {
	res, _, err := e.c.CallBuf(context.Background(), e.msg, nil, p, nil)
	if err != nil {
		return err
	}
	if len(res) != len(p) || (len(p) > 0 && &res[0] != &p[0]) {
		return fmt.Errorf("door reply of %d bytes, want %d", len(res), len(p))
	}
	return nil
}

func (e *doorClientEP) Close() error {
	if e.f != nil {
		e.f.Close()
	}
	if e.c != nil {
		return e.c.Close()
	}
	return nil
}

// doorServerEP is the peer: the door's own goroutines answer the calls (that is
// the point of a door), so the engine's per-message Recv and Send have nothing
// to do; the peer's loop only keeps the process alive between phases.
type doorServerEP struct{ d *doors.Door }

func (e doorServerEP) Send([]byte) error { return nil }
func (e doorServerEP) Recv([]byte) error { return nil }
func (e doorServerEP) Close() error      { return e.d.Close() }

// rawDoorEP is the raw baseline: one blocking SOCK_SEQPACKET descriptor,
// sendmsg/recvmsg with MSG_NOSIGNAL, messages of at most 64 KiB.
type rawDoorEP struct{ fd int }

const rawDoorChunk = 64 << 10

func (e *rawDoorEP) Send(p []byte) error {
	for off := 0; off < len(p) || off == 0; off += rawDoorChunk {
		end := min(off+rawDoorChunk, len(p))
		for {
			_, err := sys.Sendmsg(e.fd, p[off:end], nil, nil, unix.MSG_NOSIGNAL)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return err
			}
			break
		}
		if end == len(p) {
			break
		}
	}
	return nil
}

func (e *rawDoorEP) Recv(p []byte) error {
	for off := 0; off < len(p) || off == 0; {
		end := min(off+rawDoorChunk, len(p))
		n, _, flags, err := sys.Recvmsg(e.fd, p[off:end], nil, nil, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if flags&unix.MSG_TRUNC != 0 || n != end-off {
			return fmt.Errorf("recvmsg: %d bytes (flags %#x), want %d", n, flags, end-off)
		}
		off = end
		if end == len(p) {
			break
		}
	}
	return nil
}

func (e *rawDoorEP) Close() error { return unix.Close(e.fd) }
