package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/mailbox"
)

// The mailbox-* transports price ipc/mailbox's send disciplines on one backend (POSIX
// message queues): "mailbox-async" (Bsend), "mailbox-receipt" (Send),
// "mailbox-delivery" (Ssend) and "mailbox-response" (Sendrecv). Setup creates a
// namespace in a private temporary directory with two transient mailboxes, "to-peer"
// and "from-peer"; the peer opens them by name. In pingpong each leg is one send of the
// discipline, except for response, where one Sendrecv is the whole round trip (the
// peer's Send is its Reply). In stream the parent sends each message with the
// discipline (response: the peer replies at once with an empty reply) and the peer
// acknowledges the batch.
//
// Impl "raw" is the floor the disciplines are priced against: the posix-mq
// transport's bare mq_timedsend/mq_timedreceive exchange of the same payload, with no
// framing and no answers.

type mailboxTransport struct {
	d mailbox.Discipline
}

func init() {
	for _, d := range []mailbox.Discipline{mailbox.Buffered, mailbox.Receipt, mailbox.Delivery, mailbox.Response} {
		Register(mailboxTransport{d})
	}
}

func (t mailboxTransport) Name() string {
	if t.d == mailbox.Buffered {
		return "mailbox-async"
	}
	return "mailbox-" + t.d.String()
}

func (mailboxTransport) Waits() []ipc.WaitStrategy {
	return []ipc.WaitStrategy{ipc.WaitAuto, ipc.WaitPoller, ipc.WaitKernel}
}

func (mailboxTransport) Scenarios() []string {
	return []string{ScenarioPingPong, ScenarioStream, ScenarioFanIn}
}

// MaxSize leaves room for the frame header and a reply address in a POSIX message.
func (mailboxTransport) MaxSize() int {
	return posixMQTransport{}.MaxSize() - mailbox.FrameOverhead
}

func (mailboxTransport) Available() error { return posixMQTransport{}.Available() }

// mailboxDepth is each mailbox's capacity in messages.
const mailboxDepth = 8

func (t mailboxTransport) Setup(p *Params) (Endpoint, []*os.File, error) {
	if p.Impl == ImplRaw {
		return rawMQSetup(mqMsgSize(p))
	}
	dir, err := os.MkdirTemp("", "ipcbench-mailbox-")
	if err != nil {
		return nil, nil, err
	}
	p.Args = []string{dir}
	ns, err := mailbox.Open(filepath.Join(dir, "ns"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	opts := []mailbox.Option{mailbox.WithCapacity(mailboxDepth, max(p.Size, 1)), mailbox.WithWait(p.Wait)}
	out, err := ns.CreateMailbox("to-peer", opts...)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	in, err := ns.CreateMailbox("from-peer", opts...)
	if err != nil {
		out.Close()
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return newMailboxEndpoint(t.d, *p, out, in, true), nil, nil
}

func (t mailboxTransport) Open(p Params, files []*os.File) (Endpoint, error) {
	if p.Impl == ImplRaw {
		return posixMQTransport{}.Open(p, files)
	}
	if len(p.Args) != 1 {
		return nil, fmt.Errorf("%s: want the namespace directory", t.Name())
	}
	ns, err := mailbox.Open(filepath.Join(p.Args[0], "ns"))
	if err != nil {
		return nil, err
	}
	opt := mailbox.WithWait(p.Wait)
	in, err := ns.OpenMailbox("to-peer", opt)
	if err != nil {
		return nil, err
	}
	out, err := ns.OpenMailbox("from-peer", opt)
	if err != nil {
		in.Close()
		return nil, err
	}
	return newMailboxEndpoint(t.d, p, out, in, false), nil
}

// Cleanup removes what a crashed peer may have left (Reap) and the directory.
func (mailboxTransport) Cleanup(p Params) error {
	if p.Impl == ImplRaw || len(p.Args) != 1 {
		return nil
	}
	if ns, err := mailbox.Open(filepath.Join(p.Args[0], "ns")); err == nil {
		_, _ = ns.Reap()
	}
	return os.RemoveAll(p.Args[0])
}

type mailboxEndpoint struct {
	d       mailbox.Discipline
	stream  bool // stream or fan-in: the parent only receives
	fanin   bool // several peers send with the discipline
	parent  bool
	out, in *mailbox.Mailbox
	ctx     context.Context

	reply     []byte // parent, response pingpong: the reply Sendrecv received
	replyLen  int
	haveReply bool
	req       mailbox.Message // peer, response pingpong: the request to answer
	haveReq   bool
}

func newMailboxEndpoint(d mailbox.Discipline, p Params, out, in *mailbox.Mailbox, parent bool) *mailboxEndpoint {
	return &mailboxEndpoint{d: d, stream: p.Scenario == ScenarioStream || p.Scenario == ScenarioFanIn,
		fanin: p.Scenario == ScenarioFanIn, parent: parent, out: out, in: in,
		ctx: context.Background(), reply: make([]byte, max(p.Size, 1))}
}

func (e *mailboxEndpoint) Send(p []byte) error {
	if e.haveReq {
		e.haveReq = false
		return e.in.Reply(e.ctx, e.req, p)
	}
	if e.d == mailbox.Response && !e.parent && !e.fanin {
		// The peer's batch acknowledgement in stream: a plain message.
		return e.out.Send(e.ctx, p)
	}
	n, err := e.out.SendWith(e.ctx, e.d, p, e.reply)
	if err == nil && e.d == mailbox.Response && !e.stream {
		e.replyLen, e.haveReply = n, true
	}
	return err
}

func (e *mailboxEndpoint) Recv(p []byte) error {
	if e.haveReply {
		e.haveReply = false
		if e.replyLen != len(p) {
			return fmt.Errorf("mailbox: reply of %d bytes, want %d", e.replyLen, len(p))
		}
		copy(p, e.reply[:e.replyLen])
		return nil
	}
	m, err := e.in.Recv(e.ctx, p)
	if err != nil {
		return err
	}
	if m.N != len(p) {
		return fmt.Errorf("mailbox: received %d bytes, want %d", m.N, len(p))
	}
	if m.Discipline == mailbox.Response {
		if e.stream {
			return e.in.Reply(e.ctx, m, nil)
		}
		e.req, e.haveReq = m, true
	}
	return nil
}

func (e *mailboxEndpoint) Close() error {
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	err1 := e.out.Flush(ctx)
	err2 := e.out.Close()
	err3 := e.in.Close()
	if err1 != nil {
		return err1
	}
	if err2 != nil {
		return err2
	}
	return err3
}
