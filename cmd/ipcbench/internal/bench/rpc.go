package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	netrpc "net/rpc"
	"os"
	"path/filepath"
	"time"

	"github.com/xdrpp/goxdr/xdr"
	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/rpc"
	"github.com/ipclab/ipclab/sockets"
)

// Scenario rpc (ScenarioRPC) times one remote call per round trip, argument and
// result of --size bytes, through:
//
//   - "rpc-door": an ONC RPC call (package ipc/rpc) over the door transport;
//   - "rpc-tcp": an ONC RPC call over TCP (record marking), one connection;
//   - "netrpc-unix": Go's net/rpc (gob) over a Unix stream socket (impl std);
//   - and, as baselines, "door" (a plain door call, and raw seqpacket) and
//     "tcp" (its ipclab, std and raw ping-pong over a loopback connection).
//
// The ONC RPC procedure echoes an opaque<> argument; the server is the peer
// process, whose engine loop has nothing to do (the server's goroutines answer).

const (
	rpcBenchProg = 0x20000abc
	rpcBenchMax  = 1 << 20
)

type rpcTransport struct{ name string }

func init() {
	Register(rpcTransport{"rpc-door"})
	Register(rpcTransport{"rpc-tcp"})
	Register(netrpcTransport{})
}

func (t rpcTransport) Name() string                   { return t.name }
func (t rpcTransport) Waits() []ipc.WaitStrategy      { return []ipc.WaitStrategy{ipc.WaitAuto} }
func (t rpcTransport) MaxSize() int                   { return rpcBenchMax - 1024 }
func (t rpcTransport) Available() error               { return nil }
func (t rpcTransport) Scenarios() []string            { return []string{ScenarioRPC} }
func (t rpcTransport) Impls(scenario string) []string { return []string{ImplIpclab} }

func (t rpcTransport) Cleanup(p Params) error {
	if t.name == "rpc-door" && len(p.Args) == 1 {
		return os.RemoveAll(p.Args[0])
	}
	return nil
}

func (t rpcTransport) Setup(p *Params) (Endpoint, []*os.File, error) {
	ep := &rpcClientEP{}
	ep.arg = xdr.XdrVecOpaque{Bytes: &ep.msg, Bound: rpcBenchMax}
	ep.res = xdr.XdrVecOpaque{Bytes: &ep.out, Bound: rpcBenchMax}
	if t.name == "rpc-door" {
		dir, err := os.MkdirTemp("", "ipcbench-rpc-")
		if err != nil {
			return nil, nil, err
		}
		p.Args = []string{dir}
		ep.door = filepath.Join(dir, "door")
		return ep, nil, nil
	}
	l, err := sockets.ListenTCP("127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	f, err := l.File()
	ep.addr = l.Addr().String()
	l.Close()
	if err != nil {
		return nil, nil, err
	}
	return ep, []*os.File{f}, nil
}

func (t rpcTransport) Open(p Params, files []*os.File) (Endpoint, error) {
	s, err := rpc.NewServer(rpc.WithMaxRecord(rpcBenchMax))
	if err != nil {
		return nil, err
	}
	err = s.Register(rpcBenchProg, 1, map[uint32]rpc.ProcFunc{1: func(_ context.Context, c *rpc.Call) error {
		var b []byte
		v := xdr.XdrVecOpaque{Bytes: &b, Bound: rpcBenchMax}
		if err := c.Args(v); err != nil {
			return err
		}
		return c.Result(v)
	}})
	if err == nil {
		if t.name == "rpc-door" {
			if len(p.Args) != 1 {
				err = fmt.Errorf("%s: want the door's directory", t.name)
			} else {
				err = s.ListenDoor(filepath.Join(p.Args[0], "door"))
			}
		} else if len(files) != 1 {
			err = fmt.Errorf("%s: want 1 file, got %d", t.name, len(files))
		} else {
			var l *sockets.StreamListener
			if l, err = sockets.FileStreamListener(files[0]); err == nil {
				_, err = s.ServeTCP(l)
			}
		}
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return rpcServerEP{s}, nil
}

// rpcClientEP is the parent: Send keeps the argument, Recv makes the call.
type rpcClientEP struct {
	door, addr string
	c          *rpc.Client
	msg, out   []byte
	arg, res   rpc.Value
}

// Connect dials the peer's server; a door appears when the peer attaches it.
func (e *rpcClientEP) Connect(ctx context.Context) error {
	opts := []rpc.ClientOption{rpc.WithClientMaxRecord(rpcBenchMax)}
	if e.door == "" {
		c, err := rpc.Dial(ctx, "tcp", e.addr, rpcBenchProg, 1, opts...)
		e.c = c
		return err
	}
	for {
		c, err := rpc.DialDoor(ctx, e.door, rpcBenchProg, 1, opts...)
		if err == nil {
			e.c = c
			return nil
		}
		if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ECONNREFUSED) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Millisecond):
		}
	}
}

func (e *rpcClientEP) Send(p []byte) error {
	e.msg = p
	return nil
}

func (e *rpcClientEP) Recv(p []byte) error {
	e.out = p[:0]
	if err := e.c.Call(context.Background(), 1, e.arg, e.res); err != nil {
		return err
	}
	if len(e.out) != len(p) {
		return fmt.Errorf("rpc result of %d bytes, want %d", len(e.out), len(p))
	}
	if len(p) > 0 && &e.out[0] != &p[0] {
		copy(p, e.out)
	}
	return nil
}

func (e *rpcClientEP) Close() error {
	if e.c != nil {
		return e.c.Close()
	}
	return nil
}

// rpcServerEP is the peer: the server's goroutines answer the calls.
type rpcServerEP struct{ s *rpc.Server }

func (e rpcServerEP) Send([]byte) error { return nil }
func (e rpcServerEP) Recv([]byte) error { return nil }
func (e rpcServerEP) Close() error      { return e.s.Close() }

// netrpcTransport is Go's net/rpc over a Unix stream socketpair.
type netrpcTransport struct{}

func (netrpcTransport) Name() string                   { return "netrpc-unix" }
func (netrpcTransport) Waits() []ipc.WaitStrategy      { return []ipc.WaitStrategy{ipc.WaitPoller} }
func (netrpcTransport) MaxSize() int                   { return rpcBenchMax }
func (netrpcTransport) Available() error               { return nil }
func (netrpcTransport) Scenarios() []string            { return []string{ScenarioRPC} }
func (netrpcTransport) Impls(scenario string) []string { return []string{ImplStd} }
func (netrpcTransport) Cleanup(Params) error           { return nil }

// Echo is the net/rpc service of the peer.
type Echo struct{}

// Echo returns its argument.
func (Echo) Echo(arg []byte, res *[]byte) error {
	*res = arg
	return nil
}

func (netrpcTransport) Setup(p *Params) (Endpoint, []*os.File, error) {
	fds, err := sockets.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		return nil, nil, err
	}
	ours := os.NewFile(uintptr(fds[0]), "netrpc")
	conn, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	return &netrpcEP{c: netrpc.NewClient(conn)}, []*os.File{os.NewFile(uintptr(fds[1]), "netrpc")}, nil
}

func (netrpcTransport) Open(p Params, files []*os.File) (Endpoint, error) {
	if len(files) != 1 {
		return nil, fmt.Errorf("netrpc-unix: want 1 file, got %d", len(files))
	}
	conn, err := net.FileConn(files[0])
	if err != nil {
		return nil, err
	}
	s := netrpc.NewServer()
	if err := s.Register(Echo{}); err != nil {
		conn.Close()
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.ServeConn(conn)
	}()
	return netrpcServerEP{conn: conn, done: done}, nil
}

type netrpcEP struct {
	c   *netrpc.Client
	msg []byte
	out []byte
}

func (e *netrpcEP) Send(p []byte) error {
	e.msg = p
	return nil
}

func (e *netrpcEP) Recv(p []byte) error {
	e.out = p[:0]
	if err := e.c.Call("Echo.Echo", e.msg, &e.out); err != nil {
		return err
	}
	if len(e.out) != len(p) {
		return fmt.Errorf("net/rpc result of %d bytes, want %d", len(e.out), len(p))
	}
	if len(p) > 0 && &e.out[0] != &p[0] {
		copy(p, e.out)
	}
	return nil
}

func (e *netrpcEP) Close() error { return e.c.Close() }

type netrpcServerEP struct {
	conn net.Conn
	done chan struct{}
}

func (e netrpcServerEP) Send([]byte) error { return nil }
func (e netrpcServerEP) Recv([]byte) error { return nil }
func (e netrpcServerEP) Close() error {
	err := e.conn.Close()
	<-e.done
	return err
}
