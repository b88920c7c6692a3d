// Package stream is stream-oriented communication with quality of service over any
// ipclab transport: a source and a sink in two processes, data units with sequence
// numbers, send timestamps and media times, and a contract between them.
//
// # Contract
//
// A FlowSpec is what a stream needs: a token rate and bucket depth (bytes per
// second and bytes, counting every byte of a unit on the wire, as tc's tbf counts
// packets), a transmission mode, delay bounds, the loss it tolerates, and the least
// rate it would accept. Open offers it; the sink's Admission (built on the capacity
// MeasureCapacity found the transport carries between the two processes) grants it,
// counter-offers what is left when the offer does not fit but what is left is at
// least MinRate, or refuses. The admitted total never exceeds the capacity. A
// source can Renegotiate the contract of an open stream.
//
// # Modes
//
//   - Async: no timing constraint; units are handed out as they arrive.
//   - Sync: a maximum delay; later units are counted late (and dropped with DropLate).
//   - Isochronous: a minimum and a maximum delay. The sink holds each unit until
//     MinDelay after it was sent and hands it out no later than MaxDelay, so the
//     delay varies by at most MaxDelay − MinDelay. With ByMediaTime the reference is
//     the stream's epoch plus the unit's media time, so the sub-streams of a complex
//     stream (audio, video, subtitles, each over its own transport, sharing an epoch)
//     play out in step.
//
// Waiting for a play-out or send time uses Go's timers while the time is far and the
// kernel's high-resolution timer (clock_nanosleep) for the last 2 ms: Go's timers
// fire up to a millisecond late on a loaded machine.
//
// # Shaping, policing, monitoring
//
// A Source shapes what it sends with a TokenBucket: bursts up to the depth, a long-run
// rate at most the token rate. A Sink polices what arrives with a bucket of the same
// rate, deeper by Tolerance × rate for the delay variation of the path, and counts,
// marks (PoliceMark) or drops (PoliceDrop) what is beyond it. Every interval (100 ms
// by default) it reports the rate, the delay p50 and p99, the jitter p99 (the change
// in delay between consecutive units), and the units lost, late, beyond the contract
// and dropped (Reports); a breach is delivered on Violations as soon as it is seen.
// A Fanout sends one stream to several sinks whose contracts differ (Every = 2: every
// other unit).
//
// # Proof
//
// Every guarantee has a checker that reads what really happened — a sink's Log, an
// Admission's Log, arrival times taken anywhere — and names the guarantee it checks:
// CheckBucket and MaxBurst (QOS-01, the token bucket), CheckIsochronous and Jitter
// (QOS-03), CheckAdmission (QOS-04), CheckSkew (QOS-05); policing (QOS-02) is checked
// by the sink itself. The package's tests hold the shaper against the kernel's own
// token bucket (tc qdisc tbf) on the same traffic, run every guarantee between real
// processes, show each checker catching a planted violation, and inject faults
// from a seed: loss, duplication and reordering (the sink's counts against the
// injector's), delay (the synchronous and complex-stream tests run through a
// delaying relay), and SIGSTOP and SIGKILL of the source.
//
// # Transports
//
// A Conn carries whole messages both ways: sockets.SeqpacketConn and a connected
// sockets.DgramConn are Conns; Framed makes one of byte streams (a pipe each way, a
// Unix stream socket, TCP); Duplex joins two one-way Conns (two sysv.Rings);
// Unconnected serves a sink on an unconnected datagram socket.
//
// Timestamps are CLOCK_MONOTONIC nanoseconds (Now), which all processes and network
// namespaces of one machine share; across machines delays would need synchronised
// clocks, which this package does not attempt.
package stream
