package rpc

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
)

// The package's sentinels. Each reply status of RFC 5531 that is not SUCCESS has one;
// a call returns it inside an *ipc.OpError, so errors.Is(err, rpc.ErrProcUnavail)
// tells the caller what the server said. A handler may return ErrGarbageArgs or an
// *AuthError to make the server send that reply.
var (
	// ErrProgUnavail: the server does not export the program (PROG_UNAVAIL).
	ErrProgUnavail = ipc.NewSentinel("program unavailable", nil)
	// ErrProgMismatch: the server exports the program, not this version
	// (PROG_MISMATCH); the error is a *MismatchError with the versions it has.
	ErrProgMismatch = ipc.NewSentinel("program version mismatch", nil)
	// ErrProcUnavail: the program has no such procedure (PROC_UNAVAIL).
	ErrProcUnavail = ipc.NewSentinel("procedure unavailable", nil)
	// ErrGarbageArgs: the server could not decode the arguments (GARBAGE_ARGS).
	ErrGarbageArgs = ipc.NewSentinel("garbage arguments", nil)
	// ErrSystemErr: the server failed for another reason, a handler error or an
	// out-of-memory condition (SYSTEM_ERR).
	ErrSystemErr = ipc.NewSentinel("server system error", nil)
	// ErrRPCMismatch: the server does not speak RPC version 2 (RPC_MISMATCH); the
	// error is a *MismatchError.
	ErrRPCMismatch = ipc.NewSentinel("RPC version mismatch", nil)
	// ErrAuth: the server refused the credentials (AUTH_ERROR); the error is an
	// *AuthError with the reason. It matches unix.EACCES.
	ErrAuth = ipc.NewSentinel("authentication error", nil, unix.EACCES)
	// ErrProtocol: a malformed or oversized record or message, or a reply whose
	// results do not decode. It matches unix.EPROTO.
	ErrProtocol = ipc.NewSentinel("ONC RPC protocol violation", nil, unix.EPROTO)
	// ErrTooBig: a record over the configured maximum (WithMaxRecord). It matches
	// unix.EMSGSIZE and ErrProtocol.
	ErrTooBig = ipc.NewSentinel("RPC record over the size limit", ErrProtocol, unix.EMSGSIZE)
	// ErrNotRegistered: rpcbind has no address for the program, version and
	// transport asked for (GETPORT answered 0, GETADDR answered "").
	ErrNotRegistered = ipc.NewSentinel("program not registered with rpcbind", nil)
)

// MismatchError is PROG_MISMATCH or RPC_MISMATCH with the lowest and highest
// versions the server supports.
type MismatchError struct {
	Sentinel  *ipc.Sentinel // ErrProgMismatch or ErrRPCMismatch
	Low, High uint32
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("%s (server has versions %d to %d)", e.Sentinel.Error(), e.Low, e.High)
}

// Unwrap returns the sentinel.
func (e *MismatchError) Unwrap() error { return e.Sentinel }

// AuthStat is the reason of an AUTH_ERROR (RFC 5531 auth_stat).
type AuthStat uint32

// The auth_stat values of RFC 5531.
const (
	AuthOK           AuthStat = 0
	AuthBadCred      AuthStat = 1 // bad credential (seal broken)
	AuthRejectedCred AuthStat = 2 // client must begin new session
	AuthBadVerf      AuthStat = 3 // bad verifier (seal broken)
	AuthRejectedVerf AuthStat = 4 // verifier expired or replayed
	AuthTooWeak      AuthStat = 5 // rejected for security reasons
	AuthInvalidResp  AuthStat = 6 // bogus response verifier
	AuthFailed       AuthStat = 7 // reason unknown
)

var authStatNames = [...]string{"AUTH_OK", "AUTH_BADCRED", "AUTH_REJECTEDCRED", "AUTH_BADVERF",
	"AUTH_REJECTEDVERF", "AUTH_TOOWEAK", "AUTH_INVALIDRESP", "AUTH_FAILED"}

// String returns the RFC name, such as "AUTH_TOOWEAK".
func (s AuthStat) String() string {
	if int(s) < len(authStatNames) {
		return authStatNames[s]
	}
	return fmt.Sprintf("auth_stat(%d)", uint32(s))
}

// AuthError is an AUTH_ERROR reply. A handler or an auth policy returns one to refuse
// a call; a client gets one inside its *ipc.OpError. It matches ErrAuth.
type AuthError struct {
	Stat AuthStat
}

func (e *AuthError) Error() string { return "authentication error: " + e.Stat.String() }

// Is reports whether target is ErrAuth or what ErrAuth matches.
func (e *AuthError) Is(target error) bool { return target == ErrAuth || ErrAuth.Is(target) }

// opErr builds the package's *ipc.OpError.
func opErr(op, object string, err error) error {
	return &ipc.OpError{Op: op, Object: object, Err: err}
}

// invalid is bad input, reported before any system call.
func invalid(op, object, format string, args ...any) error {
	return opErr(op, object, fmt.Errorf(format+": %w", append(args, ipc.ErrInvalid)...))
}

// protoErr is a malformed message or record.
func protoErr(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, ErrProtocol)...)
}

// isAuth extracts an *AuthError from err.
func isAuth(err error) (*AuthError, bool) {
	var ae *AuthError
	ok := errors.As(err, &ae)
	return ae, ok
}
