package ipc

import (
	"context"
	"errors"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Sentinel is an error value for a state a caller acts on. It matches, with errors.Is,
// the errno values the kernel uses for that state, so callers may test either.
type Sentinel struct {
	msg    string
	errnos []unix.Errno
	also   error
}

// NewSentinel returns a sentinel for a package's own state (doors' ErrRevoked, for
// one) with the text msg, matching with errors.Is each of errnos and, if not nil,
// also (an error such as os.ErrClosed or os.ErrPermission that a caller may test
// for instead). A package declares its sentinels once, as package variables, and
// returns them inside an *OpError like ipc's own.
func NewSentinel(msg string, also error, errnos ...unix.Errno) *Sentinel {
	return &Sentinel{msg: msg, errnos: errnos, also: also}
}

// Error returns the sentinel's message.
func (s *Sentinel) Error() string { return s.msg }

// Is reports whether target is one of the errnos (or the other error) the sentinel
// stands for.
func (s *Sentinel) Is(target error) bool {
	if target == nil {
		return false
	}
	if errno, ok := target.(unix.Errno); ok {
		for _, e := range s.errnos {
			if e == errno {
				return true
			}
		}
		return false
	}
	return s.also != nil && target == s.also
}

var (
	// ErrWouldBlock is returned by Try calls (and non-blocking objects) when the call
	// would have to wait. It matches unix.EAGAIN.
	ErrWouldBlock = &Sentinel{msg: "operation would block", errnos: []unix.Errno{unix.EAGAIN}}

	// ErrPeerGone is returned when the other side has gone: a write to a pipe or socket
	// nobody reads any more (EPIPE, never a SIGPIPE death), or a reset connection. It
	// matches unix.EPIPE and unix.ECONNRESET.
	ErrPeerGone = &Sentinel{msg: "peer has gone", errnos: []unix.Errno{unix.EPIPE, unix.ECONNRESET}}

	// ErrNoReader is returned when a FIFO is opened for writing without blocking and no
	// process has it open for reading. It matches unix.ENXIO.
	ErrNoReader = &Sentinel{msg: "no reader on the other end", errnos: []unix.Errno{unix.ENXIO}}

	// ErrRemoved is returned when a kernel object was removed while in use or before
	// the call (System V IPC_RMID). It matches unix.EIDRM and os.ErrClosed.
	ErrRemoved = &Sentinel{msg: "object removed", errnos: []unix.Errno{unix.EIDRM}, also: os.ErrClosed}

	// ErrTruncated is returned when a message was longer than the buffer and the rest
	// of it was lost (the kernel reports such a receive as a success: MSG_NOERROR,
	// MSG_TRUNC, a short read of an O_DIRECT pipe). Truncation is a loss the caller
	// must see, so ipclab never hides it.
	ErrTruncated = &Sentinel{msg: "message truncated"}

	// ErrInvalid is returned, before any system call, for input the kernel would
	// reject or that cannot be expressed safely (negative sizes, empty buffers where
	// one is required, out-of-range values). It matches unix.EINVAL.
	ErrInvalid = &Sentinel{msg: "invalid argument", errnos: []unix.Errno{unix.EINVAL}}

	// ErrUntrustedObject is returned when an existing object found by name or key is
	// not owned by the expected user or has a wider mode than requested (squatting).
	ErrUntrustedObject = &Sentinel{msg: "existing object has an unexpected owner or mode"}
)

// OpError is the error every ipclab call returns: the operation, the object it was
// applied to, and the cause.
type OpError struct {
	// Op is the operation, usually the system call's name ("read", "msgrcv", "open").
	Op string
	// Object names the object: a path, a "pipe:[inode]" style description, a key or id.
	Object string
	// Err is the cause: a unix.Errno, a Sentinel, or a context/os error.
	Err error
}

// Error formats the error as "op object: cause".
func (e *OpError) Error() string {
	if e == nil {
		return "<nil>"
	}
	s := e.Op
	if e.Object != "" {
		s += " " + e.Object
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *OpError) Unwrap() error { return e.Err }

// Timeout reports whether the error is a timeout, as net.Error does.
func (e *OpError) Timeout() bool {
	return errors.Is(e.Err, os.ErrDeadlineExceeded) || errors.Is(e.Err, context.DeadlineExceeded) ||
		errors.Is(e.Err, unix.ETIMEDOUT)
}

// Temporary reports the same as Timeout. It exists so that *OpError satisfies
// net.Error (whose Temporary method is deprecated): net.Conn implementations return
// it from Read and Write.
func (e *OpError) Temporary() bool { return e.Timeout() }

// Wrap builds an *OpError for op on object from a system-call error, mapping the errnos
// that have a sentinel to that sentinel (which still matches the errno). It returns nil
// for a nil err.
func Wrap(op, object string, err error) error {
	if err == nil {
		return nil
	}
	if errno, ok := err.(unix.Errno); ok {
		err = MapErrno(errno)
	}
	return &OpError{Op: op, Object: object, Err: err}
}

// MapErrno returns the sentinel standing for errno, or errno itself.
func MapErrno(errno unix.Errno) error {
	switch errno {
	case unix.EAGAIN:
		return ErrWouldBlock
	case unix.EPIPE, unix.ECONNRESET:
		return &errnoSentinel{ErrPeerGone, errno}
	case unix.ENXIO:
		return ErrNoReader
	case unix.EIDRM:
		return ErrRemoved
	}
	return errno
}

// errnoSentinel keeps the exact errno beside a sentinel that stands for several, so
// both errors.Is(err, ErrPeerGone) and the message name the real errno.
type errnoSentinel struct {
	s     *Sentinel
	errno unix.Errno
}

func (e *errnoSentinel) Error() string        { return e.s.msg + " (" + e.errno.Error() + ")" }
func (e *errnoSentinel) Is(target error) bool { return target == e.s || target == e.errno }
func (e *errnoSentinel) Unwrap() error        { return e.errno }

// Join returns an error that wraps every non-nil error of errs, or nil if there is
// none, like errors.Join, but its text is one line: the texts joined with "; ". Use it
// where a call has several steps that can each fail (Close, cleanup), so errors.Is and
// errors.As see every one and no error text holds a newline.
func Join(errs ...error) error {
	n := 0
	for _, err := range errs {
		if err != nil {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	j := &joinError{errs: make([]error, 0, n)}
	for _, err := range errs {
		if err != nil {
			j.errs = append(j.errs, err)
		}
	}
	return j
}

type joinError struct{ errs []error }

func (e *joinError) Error() string {
	var b strings.Builder
	for i, err := range e.errs {
		if i > 0 {
			b.WriteString("; ")
		}
		// An error joined elsewhere with errors.Join has lines: keep it one line.
		b.WriteString(strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return b.String()
}

func (e *joinError) Unwrap() []error { return e.errs }
