package doors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/wait"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/sockets"
)

// DefaultShmThreshold is the argument (and result) size from which a client sends
// data through its shared-memory region instead of the socket.
const DefaultShmThreshold = 64 << 10

// ClientOption configures Open and NewClient.
type ClientOption func(*clientConfig)

type clientConfig struct {
	wait      ipc.WaitStrategy
	maxResult int
	maxFds    int
	threshold int
}

// ClientWait sets how calls wait for their reply: ipc.WaitAuto (the default: a
// call with a context that cannot end sleeps in recvmsg while it is short, and
// moves to the Go runtime poller if it is not), ipc.WaitPoller or ipc.WaitKernel
// (the calling thread blocks in recvmsg).
func ClientWait(w ipc.WaitStrategy) ClientOption { return func(c *clientConfig) { c.wait = w } }

// MaxResult sets the largest result the client accepts (default DefaultMaxData);
// a handler returning more fails the call with ErrTooBig.
func MaxResult(n int) ClientOption { return func(c *clientConfig) { c.maxResult = n } }

// MaxResultFds sets the most descriptors a reply may carry (default
// DefaultMaxFds, at most 253).
func MaxResultFds(n int) ClientOption { return func(c *clientConfig) { c.maxFds = n } }

// ShmThreshold sets the data size from which arguments and results travel through
// shared memory (default DefaultShmThreshold); 0 keeps all data on the socket.
func ShmThreshold(n int) ClientOption { return func(c *clientConfig) { c.threshold = n } }

// Client is a door's client side: one connection to the door. Calls on a client
// are made one at a time (concurrent Calls wait their turn); open more clients, or
// Dup, for concurrent calls.
type Client struct {
	// What a call touches comes first, in two cache lines: after the server has
	// run, every extra line is a miss.
	sc *sock
	// turn serialises calls: a caller waiting for its turn honours its own
	// context and Close. mu guards the fields below; a call holds both.
	turn wait.Turn
	mu   sync.Mutex
	next uint64
	wbuf []byte // header + inline argument
	// fastMax is the largest argument a call sends inline in one message (below
	// the shared-memory threshold); fastFlags are the flags such a call carries.
	fastMax   int32
	fastFlags uint16
	revoked   bool
	gone      bool
	closed    bool

	rbuf []byte // header + inline result
	skip int    // body messages of an abandoned reply still to discard
	shm  *region
	cfg  clientConfig

	info Info
	name string
	cbuf [hdrSize]byte
}

// Open opens the door attached at path (door_open), waiting until ctx ends. A path
// that is no socket, a socket of another type, or a seqpacket server that does not
// answer as a door gives an error matching ErrNotDoor ("not a door (a regular
// file): connection refused"). A server that never answers holds Open until ctx
// ends.
func Open(ctx context.Context, path string, opts ...ClientOption) (*Client, error) {
	cfg, err := clientCfg(opts)
	if err != nil {
		return nil, err
	}
	sc, err := sockets.DialSeqpacket(ctx, path, cfg.sockOpts()...)
	if err != nil {
		return nil, dialError(path, err)
	}
	s, err := takeOver(sc, cfg.wait, max(cfg.maxFds, 1))
	if err != nil {
		return nil, err
	}
	return newClient(ctx, s, cfg, path)
}

// dialError names an object at path that cannot be a door (connect(2) answers
// ECONNREFUSED for a path that is no socket, EPROTOTYPE for a socket of another
// type); other failures, a door whose server has gone among them, keep their own
// error.
func dialError(path string, err error) error {
	var what string
	var errno unix.Errno
	switch {
	case errors.Is(err, unix.EPROTOTYPE):
		what, errno = "a socket of another type than seqpacket", unix.EPROTOTYPE
	case errors.Is(err, unix.ECONNREFUSED):
		fi, serr := os.Stat(path)
		if serr != nil || fi.Mode().Type() == fs.ModeSocket {
			return err
		}
		what, errno = fileKind(fi.Mode()), unix.ECONNREFUSED
	default:
		return err
	}
	return &ipc.OpError{Op: "door open", Object: path, Err: &notDoorError{what, errno}}
}

// fileKind describes a file that is not a socket.
func fileKind(m fs.FileMode) string {
	switch m.Type() {
	case 0:
		return "a regular file"
	case fs.ModeDir:
		return "a directory"
	case fs.ModeNamedPipe:
		return "a FIFO"
	case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
		return "a device"
	}
	return "not a socket"
}

// notDoorError says that an object is not a door: what it is instead, and the
// cause, the errno or protocol error that showed it (which errors.Is matches
// besides ErrNotDoor).
type notDoorError struct {
	what  string
	cause error
}

func (e *notDoorError) Error() string   { return "not a door (" + e.what + "): " + e.cause.Error() }
func (e *notDoorError) Unwrap() []error { return []error{ErrNotDoor, e.cause} }

// NewClient opens the door behind f, a door descriptor received from another
// process or made by Door.NewClientFile or Client.Dup. f stays the caller's (close
// it when it is no longer needed); the client uses a duplicate. A nil f is an error
// matching ipc.ErrInvalid; a descriptor that is no door one matching ErrNotDoor.
func NewClient(ctx context.Context, f *os.File, opts ...ClientOption) (*Client, error) {
	if f == nil {
		return nil, &ipc.OpError{Op: "door open", Err: fmt.Errorf("nil *os.File: %w", ipc.ErrInvalid)}
	}
	cfg, err := clientCfg(opts)
	if err != nil {
		return nil, err
	}
	sc, err := sockets.FileSeqpacketConn(f, cfg.sockOpts()...)
	if err != nil {
		// The options are valid, so ErrInvalid means a socket of another type.
		switch {
		case errors.Is(err, unix.ENOTSOCK):
			what := "not a socket"
			if fi, serr := f.Stat(); serr == nil {
				what = fileKind(fi.Mode())
			}
			err = &ipc.OpError{Op: "door open", Object: f.Name(), Err: &notDoorError{what, unix.ENOTSOCK}}
		case errors.Is(err, ipc.ErrInvalid):
			cause := err
			if oe := (*ipc.OpError)(nil); errors.As(err, &oe) {
				cause = oe.Err // "socket is ..., want ...: invalid argument"
			}
			err = &ipc.OpError{Op: "door open", Object: f.Name(), Err: &notDoorError{"a socket of another type", cause}}
		}
		return nil, err
	}
	s, err := takeOver(sc, cfg.wait, max(cfg.maxFds, 1))
	if err != nil {
		return nil, err
	}
	return newClient(ctx, s, cfg, f.Name())
}

func clientCfg(opts []ClientOption) (clientConfig, error) {
	c := clientConfig{maxResult: DefaultMaxData, maxFds: DefaultMaxFds, threshold: DefaultShmThreshold}
	for i, o := range opts {
		if o == nil {
			return c, &ipc.OpError{Op: "door open", Err: fmt.Errorf("client option %d is nil: %w", i, ipc.ErrInvalid)}
		}
		o(&c)
	}
	switch {
	case c.maxResult <= 0 || c.maxResult > 1<<30:
		return c, &ipc.OpError{Op: "door open", Err: fmt.Errorf("max result %d out of (0, 1 GiB]: %w", c.maxResult, ipc.ErrInvalid)}
	case c.maxFds < 0 || c.maxFds > maxWireFd:
		return c, &ipc.OpError{Op: "door open", Err: fmt.Errorf("max result fds %d out of [0, %d]: %w", c.maxFds, maxWireFd, ipc.ErrInvalid)}
	case c.threshold < 0:
		return c, &ipc.OpError{Op: "door open", Err: fmt.Errorf("shm threshold %d: %w", c.threshold, ipc.ErrInvalid)}
	}
	return c, nil
}

func (c clientConfig) sockOpts() []sockets.Option {
	// PassCred on our side makes the kernel attach our credentials to every frame we
	// send, even one sent before the server's socket had SO_PASSCRED.
	return []sockets.Option{sockets.WithWait(c.wait), sockets.WithMaxFds(max(c.maxFds, 1)), sockets.PassCred()}
}

func newClient(ctx context.Context, sc *sock, cfg clientConfig, name string) (*Client, error) {
	c := &Client{sc: sc, cfg: cfg, name: name}
	c.turn.Init()
	c.rbuf = make([]byte, hdrSize+max(defaultInline, maxErrMsg, infoSize))
	c.wbuf = make([]byte, hdrSize)
	var b [infoSize]byte
	res, _, err := c.roundTrip(ctx, kInfo, nil, nil, b[:], nil)
	if err == nil {
		c.info, err = decodeInfo(res)
	}
	if err == nil {
		// The server's socket has SO_PASSCRED now (it answered), so the kernel
		// attaches our credentials from here on; receiving the server's in every
		// reply would only cost time.
		err = sc.SetPassCred(false)
	}
	if err != nil {
		sc.Close()
		if errors.Is(err, ErrProtocol) {
			// A seqpacket server that does not answer as a door does.
			err = &notDoorError{"its server did not answer the door handshake", err}
		}
		return nil, c.wrap("door open", err)
	}
	c.wbuf = make([]byte, hdrSize+c.info.Inline)
	c.fastMax = int32(c.info.Inline) // at most 1 MiB (decodeInfo)
	if c.useShm() {
		c.fastMax = int32(min(c.info.Inline, c.cfg.threshold-1))
		c.fastFlags = fShmOK
	}
	return c, nil
}

// Info returns the door's description, as the server sent it when the client
// opened the door.
func (c *Client) Info() Info { return c.info }

// Call calls the door with data and descriptors fds (which stay the caller's) and
// returns the result and the descriptors passed back (close-on-exec, the
// caller's to close). It waits until the reply comes, ctx ends (the server's
// handler then sees its context cancelled) or the server goes away
// (ipc.ErrPeerGone).
func (c *Client) Call(ctx context.Context, data []byte, fds []int) ([]byte, []int, error) {
	rfds := make([]int, c.cfg.maxFds)
	res, n, err := c.CallBuf(ctx, data, fds, nil, rfds)
	return res, rfds[:n:n], err
}

// CallBuf is Call with caller-supplied result buffers: the result goes into buf when
// it fits, otherwise into a new buffer as large as it needs (the result buffer grows
// as needed); up to len(rfds) descriptors are stored in rfds and their count
// returned. With buffers that fit it allocates nothing. A call without descriptors
// either way (rfds empty), with an argument that goes inline (at most Info().Inline
// bytes, below the shared-memory threshold) and a ctx that cannot end, is the
// shortest: one Exchange of the descriptor engine.
func (c *Client) CallBuf(ctx context.Context, data []byte, fds []int, buf []byte, rfds []int) ([]byte, int, error) {
	if len(fds) != 0 || len(rfds) != 0 || len(data) > int(c.fastMax) || ctx.Done() != nil {
		return c.callBuf(ctx, data, fds, buf, rfds)
	}
	// The common call: the argument inline in one message, no descriptors either
	// way, a context that cannot end; the request and the reply's first message go
	// in one Exchange of the engine (internal/sockio). fastMax is at most
	// the door's MaxData: none of callBuf's checks applies.
	if err := c.turn.Take(ctx, nil, false); err != nil {
		return nil, 0, c.wrap("door call", err)
	}
	c.mu.Lock()
	if c.closed || c.revoked || c.gone || c.skip > 0 || c.fastFlags&fShmOK != 0 && c.shm == nil {
		c.mu.Unlock()
		c.turn.Give()
		return c.callBuf(ctx, data, fds, buf, rfds)
	}
	c.next++
	id := c.next
	h := header{kind: kCall, flags: c.fastFlags, id: id, length: uint64(len(data)),
		aux0: uint32(len(c.rbuf) - hdrSize), aux1: uint32(c.cfg.maxResult)}
	h.put(c.wbuf)
	n := copy(c.wbuf[hdrSize:], data)
	m, err := c.sc.Exchange(ctx, c.wbuf[:hdrSize+n], c.rbuf)
	if err == nil {
		if res, ok := quickReply(c.rbuf[:m], id, c.cfg.maxResult); ok {
			if cap(buf) < len(res) {
				buf = make([]byte, len(res))
			}
			buf = buf[:len(res)]
			copy(buf, res)
			c.mu.Unlock()
			c.turn.Give()
			return buf, 0, nil
		}
	}
	res, err := c.exchanged(ctx, id, m, err, buf)
	c.mu.Unlock()
	c.turn.Give()
	if err != nil {
		return nil, 0, c.wrap("door call", err)
	}
	return res, 0, nil
}

// exchanged finishes, under mu, a call of CallBuf's fast path whose exchange
// failed (err) or brought m bytes of something else than its plain reply, as
// roundTrip would.
func (c *Client) exchanged(ctx context.Context, id uint64, m int, err error, buf []byte) ([]byte, error) {
	if err != nil {
		if isSendError(err) {
			return nil, c.sendFailed(err)
		}
		return nil, c.recvFailed(ctx, id, err)
	}
	res, _, done, err := c.reply(ctx, kCall, id, m, 0, buf, nil)
	if !done {
		res, _, err = c.awaitReply(ctx, kCall, id, buf, nil)
	}
	return res, err
}

// callBuf is CallBuf's general path.
func (c *Client) callBuf(ctx context.Context, data []byte, fds []int, buf []byte, rfds []int) ([]byte, int, error) {
	switch {
	case len(fds) > 0 && c.info.Attr&AttrRefuseFds != 0:
		return nil, 0, c.wrap("door call", ErrFdsRefused)
	case len(data) > c.info.MaxData || len(fds) > c.info.MaxFds:
		return nil, 0, c.wrap("door call", fmt.Errorf("%d bytes and %d descriptors, the door takes %d and %d: %w",
			len(data), len(fds), c.info.MaxData, c.info.MaxFds, ErrTooBig))
	case len(rfds) > c.cfg.maxFds:
		return nil, 0, c.wrap("door call", fmt.Errorf("room for %d descriptors, more than MaxResultFds %d: %w", len(rfds), c.cfg.maxFds, ipc.ErrInvalid))
	}
	for _, fd := range fds {
		if fd < 0 {
			return nil, 0, c.wrap("door call", fmt.Errorf("descriptor %d: %w", fd, unix.EBADF))
		}
	}
	res, n, err := c.roundTrip(ctx, kCall, data, fds, buf, rfds)
	if err != nil {
		return nil, 0, c.wrap("door call", err)
	}
	return res, n, nil
}

// Dup returns a descriptor for a new connection to the same door, to hand to
// another process, which opens it with NewClient.
func (c *Client) Dup(ctx context.Context) (*os.File, error) {
	var fd [1]int
	_, n, err := c.roundTrip(ctx, kDup, nil, nil, nil, fd[:])
	if err == nil && n != 1 {
		err = fmt.Errorf("dup reply without a descriptor: %w", ErrProtocol)
	}
	if err != nil {
		return nil, c.wrap("door dup", err)
	}
	return os.NewFile(uintptr(fd[0]), "door:"+c.name), nil
}

// Close closes the connection; a call in flight returns an error matching
// os.ErrClosed. The server sees the client go (unreferenced notification when it
// was the last). Close is idempotent.
func (c *Client) Close() error {
	c.turn.Close() // callers waiting for their turn leave with os.ErrClosed
	err := c.sc.Close()
	c.mu.Lock()
	c.closed = true
	c.shm.close()
	c.shm = nil
	c.mu.Unlock()
	return err
}

func (c *Client) wrap(op string, err error) error {
	var oe *ipc.OpError
	if errors.As(err, &oe) {
		return err
	}
	return &ipc.OpError{Op: op, Object: c.name, Err: err}
}

// useShm reports whether calls may use the shared-memory region.
func (c *Client) useShm() bool { return c.cfg.threshold > 0 && c.info.Attr&AttrShm != 0 }

// roundTrip sends one request frame and waits for its reply.
func (c *Client) roundTrip(ctx context.Context, kind uint8, data []byte, fds []int, buf []byte, rfds []int) ([]byte, int, error) {
	if err := c.turn.Take(ctx, nil, false); err != nil {
		return nil, 0, err
	}
	defer c.turn.Give()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return nil, 0, os.ErrClosed
	case c.revoked:
		return nil, 0, ErrRevoked
	case c.gone:
		return nil, 0, errGone
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	if c.skip > 0 {
		if err := c.discard(ctx); err != nil {
			return nil, 0, err
		}
	}
	c.next++
	id := c.next
	h := header{kind: kind, id: id, nfds: uint16(len(fds)), rfds: uint16(len(rfds)), length: uint64(len(data)),
		aux0: uint32(len(c.rbuf) - hdrSize), aux1: uint32(c.cfg.maxResult)}
	if err := c.sendRequest(ctx, &h, data, fds); err != nil {
		return nil, 0, c.sendFailed(err)
	}
	return c.awaitReply(ctx, kind, id, buf, rfds)
}

// awaitReply receives messages until the reply to request id (of kind) has come.
func (c *Client) awaitReply(ctx context.Context, kind uint8, id uint64, buf []byte, rfds []int) ([]byte, int, error) {
	for {
		n, nfds, err := c.read(ctx, c.rbuf, rfds)
		if err != nil {
			return nil, 0, c.recvFailed(ctx, id, err)
		}
		if res, m, done, err := c.reply(ctx, kind, id, n, nfds, buf, rfds); done {
			return res, m, err
		}
	}
}

// reply takes a message of n bytes in c.rbuf, with nfds descriptors in rfds, that
// came while waiting for the reply to request id: done is false when it was
// something else (a late reply to an abandoned call), and the wait goes on.
func (c *Client) reply(ctx context.Context, kind uint8, id uint64, n, nfds int, buf []byte, rfds []int) (res []byte, m int, done bool, err error) {
	rh, body, err := decodeFrame(c.rbuf[:n], uint64(c.cfg.maxResult))
	if err == nil && int(rh.nfds) != nfds {
		err = errFrame("descriptor count mismatch")
	}
	if err != nil {
		closeFds(rfds[:nfds])
		c.gone = true
		c.sc.Close()
		return nil, 0, true, fmt.Errorf("%w: %w", ErrProtocol, err) // one line, unlike errors.Join
	}
	switch {
	case rh.kind == kRevoked:
		c.revoked = true
		return nil, 0, true, ErrRevoked
	case rh.kind == kError && rh.id == 0:
		c.gone = true
		return nil, 0, true, codeError(rh.aux0, body)
	case rh.id != id: // a late reply to an abandoned call
		closeFds(rfds[:nfds])
		if rh.flags&fSplit != 0 {
			c.skip = chunks(rh.length)
			if err := c.discard(ctx); err != nil {
				return nil, 0, true, err
			}
		}
		return nil, 0, false, nil
	case rh.kind == kError:
		return nil, 0, true, codeError(rh.aux0, body)
	case rh.kind != kind && rh.kind != kReply, rh.kind == kReply && kind == kInfo:
		closeFds(rfds[:nfds])
		return nil, 0, true, fmt.Errorf("reply of kind %d to a request of kind %d: %w", rh.kind, kind, ErrProtocol)
	}
	res, err = c.readResult(ctx, rh, body, buf)
	if err != nil {
		closeFds(rfds[:nfds])
		return nil, 0, true, err
	}
	return res, nfds, true, nil
}

func (c *Client) sendRequest(ctx context.Context, h *header, data []byte, fds []int) error {
	useShm := c.useShm() && h.kind == kCall
	if useShm && c.shm == nil {
		if err := c.sendRegion(ctx); err != nil {
			return err
		}
	}
	if useShm {
		h.flags |= fShmOK
	}
	switch {
	case useShm && len(data) >= c.cfg.threshold:
		if err := c.shm.ensure(len(data), true, c.info.MaxData); err != nil {
			return err
		}
		copyShared(c.shm.mem, data)
		h.flags |= fShm
		h.put(c.wbuf)
		return c.write(ctx, c.wbuf[:hdrSize], fds)
	case len(data) <= len(c.wbuf)-hdrSize:
		h.put(c.wbuf)
		n := copy(c.wbuf[hdrSize:], data)
		return c.write(ctx, c.wbuf[:hdrSize+n], fds)
	default:
		h.flags |= fSplit
		h.put(c.wbuf)
		if err := c.write(ctx, c.wbuf[:hdrSize], fds); err != nil {
			return err
		}
		// Once the header is out the body must follow whole, or the server would take
		// our next frame for body: it is sent without the context.
		for off := 0; off < len(data); off += chunkSize {
			if _, err := c.sc.WriteMsg(context.Background(), data[off:min(off+chunkSize, len(data))], nil); err != nil {
				c.gone = true
				return err
			}
		}
		return nil
	}
}

// sendRegion creates the connection's shared region and hands it to the server.
func (c *Client) sendRegion(ctx context.Context) error {
	r, err := newRegion()
	if err != nil {
		return err
	}
	h := header{kind: kShm, nfds: 1, aux0: uint32(c.cfg.threshold)}
	h.put(c.cbuf[:])
	if err := c.write(ctx, c.cbuf[:], []int{r.file()}); err != nil {
		r.close()
		return err
	}
	c.shm = r
	return nil
}

// readResult gathers a reply's data into buf (grown if needed).
func (c *Client) readResult(ctx context.Context, h header, body, buf []byte) ([]byte, error) {
	n := int(h.length)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	switch {
	case h.flags&fShm != 0:
		if c.shm == nil {
			return nil, fmt.Errorf("shm reply without a region: %w", ErrProtocol)
		}
		if err := c.shm.ensure(n, false, c.cfg.maxResult); err != nil {
			return nil, err
		}
		copyShared(buf, c.shm.mem[:n])
	case h.flags&fSplit != 0:
		c.skip = chunks(h.length)
		for off := 0; off < n; {
			want := min(chunkSize, n-off)
			m, _, err := c.read(ctx, buf[off:off+want], nil)
			if err != nil {
				return nil, c.recvFailed(ctx, 0, err)
			}
			c.skip--
			if m != want {
				c.gone = true
				c.sc.Close()
				return nil, fmt.Errorf("body message of %d bytes, want %d: %w", m, want, ErrProtocol)
			}
			off += m
		}
	default:
		copy(buf, body)
	}
	return buf, nil
}

// discard drops the body messages of an abandoned reply.
func (c *Client) discard(ctx context.Context) error {
	var b [1]byte
	for c.skip > 0 {
		if _, _, err := c.read(ctx, b[:], nil); err != nil && !errors.Is(err, ipc.ErrTruncated) {
			return c.recvFailed(ctx, 0, err)
		}
		c.skip--
	}
	return nil
}

// recvFailed turns a failed receive into the call's error; a cancelled call tells
// the server (a CANCEL frame), so the handler's context is cancelled too.
func (c *Client) recvFailed(ctx context.Context, id uint64, err error) error {
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		if id != 0 {
			h := header{kind: kCancel, id: id}
			h.put(c.cbuf[:])
			_ = c.sc.TrySend(c.cbuf[:]) // best effort: a full socket means a stuck server
		}
		return err
	}
	if err == io.EOF || errors.Is(err, ipc.ErrPeerGone) {
		c.gone = true
		return errGone
	}
	return err
}

// sendFailed maps a failed send; a server that went away may have left its reason
// (an error frame) in our receive queue.
func (c *Client) sendFailed(err error) error {
	if !errors.Is(err, ipc.ErrPeerGone) {
		return err
	}
	c.gone = true
	n, err2 := c.sc.TryRecv(c.rbuf)
	if err2 == nil {
		if h, body, err3 := decodeFrame(c.rbuf[:n], uint64(c.cfg.maxResult)); err3 == nil {
			if h.kind == kError {
				return codeError(h.aux0, body)
			}
			if h.kind == kRevoked {
				c.revoked = true
				return ErrRevoked
			}
		}
	}
	return errGone
}

// read is ReadMsg honouring ctx.
func (c *Client) read(ctx context.Context, p []byte, fds []int) (int, int, error) {
	if len(fds) == 0 {
		n, err := c.sc.Recv(ctx, p) // the engine's plain receive
		return n, 0, err
	}
	return c.sc.ReadMsg(ctx, p, fds)
}

// write is WriteMsg honouring ctx.
func (c *Client) write(ctx context.Context, p []byte, fds []int) error {
	if len(fds) == 0 && len(p) > 0 {
		return c.sc.Send(ctx, p)
	}
	_, err := c.sc.WriteMsg(ctx, p, fds)
	return err
}
