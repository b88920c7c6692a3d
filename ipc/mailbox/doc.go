// Package mailbox names message-passing endpoints and makes the send discipline an
// explicit choice, over kernel queues and sockets.
//
// The textbook model names an endpoint by process, link, mailbox or port, and asks
// how long a sender waits and how long a message lives. Here each is a real object:
//
//   - Namespace: a private directory (DefaultDir, or any directory the user owns,
//     mode 0700) mapping names to kernel objects, with an owner record (pid and
//     process start time) per name. Reap finds and removes what crashed processes
//     left behind. Nothing in it is trusted unless owned by the effective uid.
//   - Mailbox: many senders, many receivers. Transient (goes with its last user) or
//     Persistent (the kernel queue outlives every process until Remove). Backed by a
//     POSIX message queue (default) or a System V queue (WithBackend).
//   - Port: many senders, one receiver owning the right to receive, which Handover
//     passes to another process over a Unix socket.
//   - Link: unidirectional, between exactly two processes, named while it is being
//     set up (ListenLink, DialLink), over a connected seqpacket socket. Several
//     links may join the same pair.
//
// # Disciplines
//
// Every send names its discipline (see Discipline): TrySend (non-blocking), Bsend
// (buffered in this process), Send (receipt: stored by the kernel object), Ssend
// (delivery: taken by a receiver), Sendrecv (response: the receiver replied). Put
// uses the handle's default (WithDiscipline). Receives block (Recv, Get), do not
// (TryRecv, Poll) or wait until a context's deadline; Notify runs a handler per
// message. Isend, Issend and Irecv return a Request with Wait and Test, as in MPI.
//
// The textbook's six combinations of persistence and synchronicity:
//
//	persistent asynchronous        persistent Mailbox + Bsend or TrySend
//	persistent synchronous         persistent Mailbox + Send (receipt)
//	transient asynchronous         transient Mailbox or Link + Bsend or TrySend
//	receipt-based transient sync   transient Mailbox or Link + Send
//	delivery-based transient sync  transient Mailbox, Port or Link + Ssend
//	response-based transient sync  transient Mailbox, Port or Link + Sendrecv
//
// # Frames
//
// Each message carries a 20-byte header: sequence number, discipline, and for
// delivery- and response-based sends the name of the sender's reply port, where the
// receiver's acknowledgement or reply goes (on a link they come back along the link);
// FrameOverhead bounds what the frame adds to a payload. The format is internal
// (internal/wire). Every field is checked against the message's real size; a
// malformed message is reported as a *FrameError and skipped, and the next receive
// returns the next message.
//
// # Costs and caveats
//
//   - Delivery and Response cost a frame back: the first such send of a Sender
//     creates its reply port (a queue and a namespace entry), removed by Close.
//   - Bsend stores a message in the kernel object at once when it has room and
//     nothing is buffered; the others live in this process until flushed, and a crash
//     loses them.
//   - A blocked System V call holds an OS thread (see ipc/sysv).
//   - systemd-logind's RemoveIPC= removes a user's System V and POSIX objects at
//     logout, and $XDG_RUNTIME_DIR goes with the last session: "persistent" means
//     until then, or until reboot. Use a system user for long-lived mailboxes.
//   - Kernel objects are per IPC namespace; the namespace directory is per mount
//     namespace. Processes must share both.
package mailbox
