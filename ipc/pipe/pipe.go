package pipe

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
)

// Reader is the read end of a pipe or FIFO.
type Reader struct{ end }

// Writer is the write end of a pipe or FIFO.
type Writer struct{ end }

// New creates a pipe (pipe2(2) with O_CLOEXEC, plus O_DIRECT on both ends for Packet)
// and returns its two ends.
func New(opts ...Option) (*Reader, *Writer, error) {
	c, err := buildConfig(opts)
	if err != nil {
		return nil, nil, &ipc.OpError{Op: "pipe2", Object: "pipe", Err: err}
	}
	flags := unix.O_CLOEXEC
	if c.packet {
		flags |= unix.O_DIRECT
	}
	var p [2]int
	if err := unix.Pipe2(p[:], flags); err != nil {
		return nil, nil, ipc.Wrap("pipe2", "pipe", err)
	}
	if c.packet {
		// pipe2 sets O_DIRECT on the write end only, where it makes packets. On the
		// read end it changes nothing in the kernel but marks the end as a packet
		// reader for a process that adopts it (ReaderFromFd, Reader.File).
		if err := setFlag(p[0], unix.O_DIRECT); err != nil {
			unix.Close(p[0])
			unix.Close(p[1])
			return nil, nil, ipc.Wrap("fcntl O_DIRECT", "pipe", err)
		}
	}
	if c.capacity > 0 {
		if _, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, c.capacity); err != nil {
			unix.Close(p[0])
			unix.Close(p[1])
			return nil, nil, ipc.Wrap("fcntl F_SETPIPE_SZ", "pipe", err)
		}
	}
	rc, wc := c, c
	if c.name != "" {
		rc.name, wc.name = c.name+" (read end)", c.name+" (write end)"
	}
	r, w := new(Reader), new(Writer)
	if err := initEnd(&r.end, p[0], rc); err != nil {
		unix.Close(p[1])
		return nil, nil, err
	}
	if c.packet {
		r.spill = spillArea()
	}
	if err := initEnd(&w.end, p[1], wc); err != nil {
		r.close()
		return nil, nil, err
	}
	closeWhenDropped(r, &r.end)
	closeWhenDropped(w, &w.end)
	return r, w, nil
}

// ReaderFromFd takes ownership of fd, the read end of a pipe or a FIFO (inherited from a
// parent, received over a socket, or opened by ipc/fifo), and returns it as a Reader
// that waits as the options say. It makes fd close-on-exec. A read end with O_DIRECT
// set (as New and Reader.File leave a packet pipe's) is read in packet mode, as with
// Packet. On error fd is closed.
func ReaderFromFd(fd int, opts ...Option) (*Reader, error) {
	r := new(Reader)
	packet, err := fromFd(&r.end, fd, unix.O_RDONLY, opts)
	if err != nil {
		return nil, err
	}
	if packet {
		r.spill = spillArea()
	}
	closeWhenDropped(r, &r.end)
	return r, nil
}

// WriterFromFd is ReaderFromFd for a write end.
func WriterFromFd(fd int, opts ...Option) (*Writer, error) {
	w := new(Writer)
	if _, err := fromFd(&w.end, fd, unix.O_WRONLY, opts); err != nil {
		return nil, err
	}
	closeWhenDropped(w, &w.end)
	return w, nil
}

// fromFd sets e up with fd, as ReaderFromFd and WriterFromFd describe, and reports
// whether the end is in packet mode (asked for, or O_DIRECT already set on fd).
func fromFd(e *end, fd, access int, opts []Option) (packet bool, err error) {
	c, err := buildConfig(opts)
	if err != nil {
		unix.Close(fd)
		return false, &ipc.OpError{Op: "adopt", Object: fmt.Sprintf("fd %d", fd), Err: err}
	}
	name := c.name
	if name == "" {
		name = describe(fd)
	}
	fl, err := checkPipe(fd, access)
	if err != nil {
		unix.Close(fd)
		return false, ipc.Wrap("adopt", name, err)
	}
	if c.packet && fl&unix.O_DIRECT == 0 {
		if err := setFlag(fd, unix.O_DIRECT); err != nil {
			unix.Close(fd)
			return false, ipc.Wrap("fcntl O_DIRECT", name, err)
		}
	}
	if c.capacity > 0 {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, c.capacity); err != nil {
			unix.Close(fd)
			return false, ipc.Wrap("fcntl F_SETPIPE_SZ", name, err)
		}
	}
	c.packet = c.packet || fl&unix.O_DIRECT != 0
	return c.packet, initEnd(e, fd, c)
}

func setFlag(fd, flag int) error {
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl|flag)
	return err
}

// Read reads up to len(p) bytes, waiting until at least one byte is there, the read
// deadline passes, or the end is closed. It returns io.EOF once every writer has closed
// and the pipe is drained. It implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	return r.ReadContext(context.Background(), p)
}

// ReadContext is Read that also returns when ctx ends, with an error wrapping ctx.Err().
func (r *Reader) ReadContext(ctx context.Context, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := r.fd.Do(ctx, false, p, r.read)
	if err != nil {
		return 0, r.wrap("read", err)
	}
	return r.readResult(n, p)
}

// readResult is what a read into p that returned n gives its caller: io.EOF for 0,
// ErrTruncated for a packet longer than p (n > len(p), see readErrno).
func (r *Reader) readResult(n int, p []byte) (int, error) {
	if n == 0 {
		return 0, io.EOF
	}
	if n > len(p) {
		return len(p), r.truncated(n, len(p))
	}
	return n, nil
}

// TryRead reads what is there without waiting. With nothing to read it returns an error
// matching ipc.ErrWouldBlock (and unix.EAGAIN); with every writer gone, io.EOF.
func (r *Reader) TryRead(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := r.fd.Try(p, r.read)
	if err != nil {
		return 0, r.wrap("read", err)
	}
	return r.readResult(n, p)
}

// ReadFull reads exactly len(p) bytes under ctx, returning io.ErrUnexpectedEOF if the
// writers close after some but not all of them.
func (r *Reader) ReadFull(ctx context.Context, p []byte) (int, error) {
	got := 0
	for got < len(p) {
		n, err := r.ReadContext(ctx, p[got:])
		got += n
		if err != nil {
			if err == io.EOF && got > 0 {
				err = io.ErrUnexpectedEOF
			}
			return got, err
		}
	}
	return got, nil
}

// WriteTo copies the pipe's content to w until EOF (io.WriterTo). In poller mode it
// lets the runtime splice into sockets and files where it can.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	if f := r.fd.File(); f != nil {
		n, err := f.WriteTo(w)
		return n, r.wrap("read", err)
	}
	return io.Copy(w, struct{ io.Reader }{r})
}

// SetReadDeadline sets the time after which blocked and future reads fail with an error
// matching os.ErrDeadlineExceeded. The zero time means no deadline.
func (r *Reader) SetReadDeadline(t time.Time) error { return r.setDeadline(t, true, false) }

// Close closes the read end. It is idempotent: calls after the first return nil. Calls
// blocked on this end return an error matching os.ErrClosed.
func (r *Reader) Close() error { return r.close() }

// File returns a new open file description of this read end: blocking, close-on-exec,
// independent of this Reader's flags, for exec.Cmd.ExtraFiles. The child adopts it with
// ReaderFromFd. The caller closes the returned file once the child has started.
func (r *Reader) File() (*os.File, error) { return r.reopen(unix.O_RDONLY) }

// Write writes all of p, waiting for room as needed, until done, the write deadline
// passes, or the end is closed. With every reader gone it returns an error matching
// ipc.ErrPeerGone and unix.EPIPE. It implements io.Writer.
func (w *Writer) Write(p []byte) (int, error) {
	return w.WriteContext(context.Background(), p)
}

// WriteContext is Write that also returns when ctx ends. It may then have written part
// of p; the count says how much.
func (w *Writer) WriteContext(ctx context.Context, p []byte) (int, error) {
	done := 0
	for {
		n, err := w.fd.Do(ctx, true, p[done:], w.write)
		done += n
		if err != nil {
			return done, w.wrap("write", err)
		}
		if done >= len(p) {
			return done, nil
		}
	}
}

// TryWrite writes what fits now without waiting. A write of at most PipeBuf bytes is
// all or nothing; a larger one may be short. With no room it returns an error matching
// ipc.ErrWouldBlock.
func (w *Writer) TryWrite(p []byte) (int, error) {
	n, err := w.fd.Try(p, w.write)
	return n, w.wrap("write", err)
}

// ReadFrom copies from r into the pipe until EOF (io.ReaderFrom). In poller mode it lets
// the runtime splice from files and sockets where it can.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	if f := w.fd.File(); f != nil {
		n, err := f.ReadFrom(r)
		return n, w.wrap("write", err)
	}
	return io.Copy(struct{ io.Writer }{w}, r)
}

// SetWriteDeadline sets the time after which blocked and future writes fail with an
// error matching os.ErrDeadlineExceeded. The zero time means no deadline.
func (w *Writer) SetWriteDeadline(t time.Time) error { return w.setDeadline(t, false, true) }

// Close closes the write end. It is idempotent. Once every write end is closed, readers
// see io.EOF. Calls blocked on this end return an error matching os.ErrClosed.
func (w *Writer) Close() error { return w.close() }

// File returns a new open file description of this write end for handing to another
// process, as Reader.File does.
func (w *Writer) File() (*os.File, error) { return w.reopen(unix.O_WRONLY) }
