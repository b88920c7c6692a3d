// Package sockets makes the textbook socket primitives — socket, bind, listen,
// accept, connect, send, receive, close — plain to see and safe to use, for Unix
// stream, datagram and seqpacket sockets, descriptor and credential passing, and TCP
// and UDP on loopback.
//
// # Types
//
//   - StreamConn: Unix SOCK_STREAM or TCP; a net.Conn. StreamListener accepts them.
//   - SeqpacketConn: Unix SOCK_SEQPACKET, messages with boundaries (doors build on it).
//     SeqpacketListener accepts them.
//   - DgramConn: Unix SOCK_DGRAM or UDP, connected or not; multicast on loopback.
//
// Constructors: Listen*/Dial* by path (or loopback address), *Pair (socketpair),
// File* (an inherited descriptor). Socketpair is the raw layer.
//
// # Safety defaults
//
//   - Paths: a socket file is bound only inside a directory owned by the caller that
//     nobody else can write to (ipc.ErrUntrustedObject otherwise), gets mode 0600, and
//     is removed by the listener's Close. A stale socket file (a crashed run) is
//     replaced only when it lstat's as a socket owned by us and a connect to it is
//     refused; otherwise bind fails with unix.EADDRINUSE.
//   - Abstract names ("@name") and autobind are refused unless AllowAbstract is given,
//     and then a PeerPolicy vets every peer (the server a client dialled included), as
//     abstract names have no permissions and the first binder wins.
//   - Descriptors: every descriptor the package creates or receives is close-on-exec
//     (SOCK_CLOEXEC, MSG_CMSG_CLOEXEC, F_DUPFD_CLOEXEC). ReadMsg sizes its control
//     buffer for exactly the descriptors the caller can take (capped by WithMaxFds),
//     walks every control message and, when descriptors were truncated (MSG_CTRUNC) or
//     more arrived than expected, closes every one of them, shuts the connection down
//     and returns ErrControlTruncated or ErrUnexpectedFds.
//   - Credentials: PeerCred (SO_PEERCRED), PeerPidfd (SO_PEERPIDFD), and per-message
//     SCM_CREDENTIALS (PassCred, ReadMsgCred, WriteMsgCred); the kernel refuses forged
//     credentials from an unprivileged sender with unix.EPERM.
//   - Every send uses MSG_NOSIGNAL: a gone peer is ipc.ErrPeerGone, never SIGPIPE.
//     (Writes to descriptors 1 and 2 are another matter: Go lets SIGPIPE kill the
//     process there.)
//   - TCP and UDP accept only 127.0.0.0/8 addresses, unless the caller names a private
//     (RFC 1918) prefix of a network it made with AllowInetPrefix; TCP sets TCP_NODELAY; multicast
//     stays on the loopback interface with TTL 0.
//
// # Waiting
//
// Blocking calls take a context (or honour the net.Conn deadlines) and wait according
// to the socket's ipc.WaitStrategy (WithWait), through ipclab's one descriptor engine
// (internal/fdio): ipc.WaitAuto (the default) lets a call with nothing to honour
// sleep in the system call while it is short, as in C, and moves one that stays
// blocked to the Go runtime poller, so that idle sockets hold no thread; calls with
// a context that can end or a deadline try once without waiting (MSG_DONTWAIT) and
// then wait in the poller. ipc.WaitPoller parks every waiting goroutine in the
// poller; ipc.WaitKernel blocks the thread inside the system call, where eBPF probes
// see it, and interrupts it with a signal on cancellation, a deadline or Close (one
// OS thread per blocked call). Try* calls never wait and return ipc.ErrWouldBlock.
// Close unblocks every call in flight with an error matching os.ErrClosed and
// net.ErrClosed, in every mode; so does every call made after it.
//
// Hot-path calls with caller buffers (Read, Write, Send, Recv, ReadMsg, WriteMsg,
// SendTo) allocate nothing when their context cannot end and no deadline is set (what
// the per-method "does not allocate" notes mean); a cancellable context or a deadline
// costs a few allocations per call for the machinery that honours it.
package sockets
