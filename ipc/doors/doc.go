// Package doors brings Solaris/illumos doors to Linux in pure Go: same-host,
// synchronous calls into a server process, with data and descriptors passed both
// ways and the caller's credentials known to the server, over SOCK_SEQPACKET Unix
// sockets with SCM_RIGHTS (package sockets).
//
// # Model
//
// A server makes a door from a Handler (New, door_create), names it in the file
// system (Attach, fattach; Detach, fdetach) or hands out door descriptors
// (NewClientFile; a client's Dup). A client opens the door by path (Open) or from
// a received descriptor (NewClient) and calls it (Call, CallBuf: door_call). The
// handler gets the data, the descriptors and the caller's uid, gid and pid for that
// very call (SCM_CREDENTIALS), and a pidfd where one can be had race-free
// (Call.Pidfd). Info describes the door: server pid, attributes, a unique id.
//
// Policy: by default only processes with the server's effective uid may call
// (sockets.SameUser); WithPolicy or AllowUsers widen that. The policy vets the
// connecting process (SO_PEERCRED, when the door is opened by path: a refused
// client's Open fails with ErrPermission) and the sender of every frame
// (SCM_CREDENTIALS), because a connection handed to another process keeps its
// connector's SO_PEERCRED (S8).
//
// Server goroutines (Pool): the goroutine that reads a call runs its handler, so a
// short call costs no hand-off between goroutines, and sends its reply in the same
// engine call as its wait for the next call (door_return(3C): the descriptor
// engine's SendRecvMsg, internal/sockio); if the handler is still running
// after a short while, another goroutine takes over reading that connection, which
// is how concurrent calls and cancellations get through. Handlers run in a pool
// that grows on demand up to a limit, shared between doors by default or private to
// one (PrivatePool); calls beyond the limit wait in a queue.
//
// Cancellation: when a call's context ends, the client sends a CANCEL frame and
// returns ctx.Err(); the server cancels the handler's context (also when the
// client's connection closes, and when the door is revoked). A reply that comes
// anyway carries the abandoned call's id; the client drops it (with its
// descriptors and body) when it reads it, so it never reaches another call. A
// server that dies makes the kernel close its sockets: the client's pending call
// returns ipc.ErrPeerGone at once.
//
// Attributes: RefuseFds, WithMaxData and WithMaxFds (limits checked from the frame
// header before anything is allocated), OnUnref (called when the last client
// connection closes), Revoke (calls in flight fail with ErrRevoked and their
// handlers' contexts are cancelled; later calls fail with ErrRevoked).
//
// Large data: from a threshold (ShmThreshold, default 64 KiB) arguments and results
// travel through shared memory instead of the socket: the client creates a memfd
// (MFD_CLOEXEC|MFD_ALLOW_SEALING) sealed against shrinking, hands it to the server
// once per connection, and either side grows it with ftruncate when data does not
// fit. Each side copies data out of the region before using it (no double fetch,
// S12), and never maps past the sealed file's end (no SIGBUS).
//
// # Wire protocol
//
// Every message on the socket is one frame, or one body message of a split frame.
// A frame starts with a 32-byte header in native byte order:
//
//	offset size field
//	0      1    version (1)
//	1      1    kind: 1 INFO, 2 CALL, 3 REPLY, 4 ERROR, 5 CANCEL, 6 DUP, 7 SHM, 8 REVOKED
//	2      2    flags: 1 SPLIT, 2 SHM, 4 SHM-OK (CALL only)
//	4      2    nfds: descriptors attached to this message (SCM_RIGHTS)
//	6      2    rfds: CALL: descriptors the caller accepts in the reply
//	8      8    id: call id, chosen by the client (non-zero for CALL); 0 for
//	            connection-wide frames (REVOKED, an ERROR refusing the connection)
//	16     8    length: data length
//	24     4    aux0: CALL: inline reply capacity; ERROR: code; SHM: threshold
//	28     4    aux1: CALL: largest result accepted
//
// Data follows the header in the same message (inline) when it fits the
// receiver's inline capacity (the server's is Info.Inline, the client's is aux0
// of its CALL). Otherwise, with SPLIT, the header travels alone and the data
// follows in ceil(length/65536) body messages of 65536 bytes (the last one
// shorter), with no header of their own; or, with SHM, the data lies at offset 0 of
// the connection's shared region. The receiver thus always knows, from a header it
// has checked against its limits, how long the next message is: it never reads a
// message it did not size a buffer for, and needs no MSG_PEEK (a message longer than
// announced is MSG_TRUNC and a protocol error; a seqpacket message cannot be
// partially read). A frame is read once into private memory, validated as a whole
// (kind, flags, counts, length against the limit and against the bytes that
// arrived), and never re-read.
//
// Exchanges: the client opens with INFO (the reply carries the 40-byte Info:
// pid u32, uid u32, id u64, attr u32, maxfds u32, maxdata u64, inline u64); then
// CALL → REPLY or ERROR (code 1 handler, 2 permission, 3 revoked, 4 too big, 5
// descriptors refused, 6 protocol; data: text up to 1 KiB); CANCEL(id) asks the
// server to cancel a call; DUP → REPLY with one descriptor, a new connection; SHM
// (one memfd) hands over the shared region before the first call that may use it;
// REVOKED tells the client the door is gone. A malformed frame, a descriptor count
// that does not match the header, or a truncated message closes the connection.
package doors
