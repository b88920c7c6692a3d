// Package rpc is ONC RPC version 2 (RFC 5531) with XDR (RFC 4506) stubs generated
// from a .x interface file, binding through the machine's rpcbind (RFC 1833), and
// declared call semantics: the remote procedure call as the textbooks describe it,
// interoperable with rpcgen and libtirpc programs.
//
// # Wire
//
// Calls and replies are RFC 5531 messages: accepted replies (SUCCESS, PROG_UNAVAIL,
// PROG_MISMATCH with the server's version range, PROC_UNAVAIL, GARBAGE_ARGS,
// SYSTEM_ERR) and rejected ones (RPC_MISMATCH, AUTH_ERROR with its auth_stat), with
// AUTH_NONE or AUTH_SYS credentials. Over TCP every message is a record of
// fragments, each behind a 4-byte mark (record marking); over UDP a message is one
// datagram. A client sees a reply status that is not SUCCESS as an *ipc.OpError
// matching the status's sentinel (ErrProcUnavail, ...); a *MismatchError carries
// version ranges, an *AuthError the auth_stat.
//
// Transports go through package sockets: TCP and UDP on loopback addresses
// (127.0.0.0/8), close-on-exec, MSG_NOSIGNAL; a client or server given
// WithInetPrefix / WithServerInetPrefix also uses addresses of a private (RFC 1918)
// prefix of a network its caller made (two network namespaces joined by a veth pair,
// in the tests), and never any other address.
//
// # Door transport and binder
//
// On one host a server also serves its programs on a door (package doors:
// ListenDoor): each RPC call is one door call carrying the call message, its
// result the reply message. One Server serves TCP, UDP and doors at once. The door
// gives the server the caller's uid, gid and pid as the kernel vouches for them:
// over a door Call.AuthSys returns that identity (not what the client claims) and
// Call.PeerCred the full credentials, so an auth policy written against AUTH_SYS
// is meaningful there. A Binder (a 0700 directory of 0600 entry files, one per
// program version) maps <program, version> to a door path on the host
// (AdvertiseDoor, Binder.Lookup, Binder.Dial); the server's Close removes its
// entries, and an entry left by a server that died is reported as ErrStale at
// once, from the entry's pid and process start time.
//
// # Limits and bad input
//
// A record's announced length is checked, fragment by fragment, against the
// receiver's limit (WithMaxRecord, WithClientMaxRecord; DefaultMaxRecord, 1 MiB)
// before a byte of it is read or any room is made for it; a record of more than
// 1024 fragments is refused too, and either closes the TCP connection. Message
// headers are decoded in place, without allocating; an opaque_auth body over 400
// bytes, an AUTH_SYS machine name over 255 bytes or more than 16 gids, non-zero
// padding, or a length that overruns the message is a protocol error (the server
// drops the message; a client skips a bad datagram and fails on a bad TCP record).
// XDR values are decoded by this package's decoder, which checks each string,
// opaque and vector length against its declared bound and against the bytes left
// before allocating for it, refuses undeclared enum and union values, and requires
// the arguments (or results) to use up the message. FuzzRecordReader and
// FuzzMessage exercise these decoders.
//
// # Servers and clients
//
// A Server serves any number of program versions (Register, or the generated
// Register_* of a .x file) on any number of TCP listeners and UDP sockets at once
// (ListenTCP, ListenUDP). One goroutine per TCP connection and one per UDP socket
// read calls and run their handlers (ProcFunc) in turn. Procedure 0 answers with
// void unless registered. A handler panic answers SYSTEM_ERR.
//
// A Client calls one program version on one server over TCP or UDP; Call is
// synchronous, takes a context and is serialised per client; Go starts a call and
// returns a Pending at once (the calls of one client still go out one at a time). Over TCP with a
// context that cannot end, a call with caller buffers of fixed-size XDR types
// allocates nothing (BenchmarkCall shows 0 allocs/op); a deadline costs a few
// allocations for the machinery that honours it.
//
// # Call semantics
//
// Each client declares a Semantics (WithSemantics), which each call may override
// (CallSemantics):
//
//   - Maybe: one transmission, no retry; the handler runs at most once if the
//     server drops duplicates the network makes (a reply cache, below).
//
//   - AtLeastOnce: over UDP, retransmit the same xid (first after WithRetransmit's
//     interval, then doubling) until a reply or the deadline; a call that returns
//     nil ran at least once, possibly more.
//
//   - AtMostOnce: retransmit like AtLeastOnce, against a server with a duplicate
//     request cache (WithReplyCache): keyed by (transport and client address, xid,
//     program, version, procedure), it answers a retransmission from the cached
//     reply, drops it while the first copy is running, and never runs the handler
//     twice while the server lives. The cache holds at most its configured number
//     of entries; when full, the oldest completed entry is evicted if it is older
//     than the configured minimum age, otherwise the new call is dropped unanswered
//     (the client retransmits), so an entry is never evicted while a client that
//     gives up within the minimum age may still retransmit it.
//
//   - Exactly-once: AtMostOnce against a server whose reply cache is durable
//     (WithDurableReplies): each completed call is a record (key, the handler's
//     effect, the reply) appended to a file in one write and fdatasync'ed before
//     the reply is sent; a server restarted after a crash (SIGKILL included) loads
//     the records, answers a retransmission from them without running the handler,
//     and hands each record's effect to a replay function so the application
//     rebuilds its state. The key holds the client's address, so a retransmission
//     must come from the same socket (a UDP client, or a door client's process).
//
// What exactly-once cannot cover by itself: a crash after the handler made a side
// effect and before the record is durable. The reply was never sent, the
// retransmission finds no record and runs the handler again, so an effect the
// handler made elsewhere (a file, another server) happens twice. The handler API
// closes that window for effects made through it: Call.Effect puts the effect in
// the same record as the reply, so the effect and the record are one atomic step
// (both or neither survive a crash), and the replay function applies committed
// effects at start. A handler that makes effects any other way has at-least-once
// effects across crashes. The log grows by one record per call (RemoveLog deletes
// it); a record torn by a crash mid-write fails its CRC-32C and is truncated.
// TestExactlyOnceCrashes kills a server 20 times at each of three points.
//
// Over TCP a call is sent once per connection (the transport retransmits); a broken
// connection fails the call and the next call connects again.
//
// # One-way, batched and deferred-synchronous calls
//
// These use the control program (ControlProg), which every Server serves: its
// procedures carry an inner call message that the server checks and runs like any
// other call. Client.Send makes a one-way call: the server sends no reply and the
// client never waits for the server (over TCP it writes what the socket takes
// without waiting and keeps the rest, up to WithBatchLimit, after which Send
// fails with ipc.ErrWouldBlock). Client.Batch queues one-way calls that the next
// two-way call (or Flush) writes ahead of itself, ONC RPC's batching. Client.Defer
// makes a deferred-synchronous call: the server acknowledges it at once with a
// Ticket and runs it in the background; Client.Collect fetches the result later,
// from any client of the server (after a reconnection, say). One-way calls have
// maybe semantics; over a door (synchronous) they are refused.
//
// # Authentication
//
// AUTH_SYS (WithCred with AuthSys.Encode) carries a uid, gids and a machine name
// that the client asserts and nothing verifies: any process that can reach the
// port can claim uid 0. WithAuthPolicy lets a server refuse calls by credential
// (the caller gets AUTH_ERROR), which is meaningful only for callers whose
// credentials something else vouches for. Never authorise by AUTH_SYS alone over
// TCP or UDP from another host.
package rpc
