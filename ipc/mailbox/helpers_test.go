package mailbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc/mailbox"
	"github.com/ipclab/ipclab/sockets"
)

// Helper processes. Arguments start with the namespace directory.

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	check(err)
	return n
}

func parseBackend(s string) mailbox.Backend {
	b, err := mailbox.ParseBackend(s)
	check(err)
	return b
}

func parseDisc(s string) mailbox.Discipline {
	d, err := mailbox.ParseDiscipline(s)
	check(err)
	return d
}

// create-and-send: dir name backend persistent(0/1) count. Creates a mailbox, Sends
// count messages "msg-I", signals, waits for the test, and exits without Remove.
var _ = ipctest.Helper("create-and-send", func(args []string) int {
	ns := helperNS(args)
	opts := []mailbox.Option{mailbox.WithBackend(parseBackend(args[2]))}
	if args[3] == "1" {
		opts = append(opts, mailbox.Persistent())
	}
	mb, err := ns.CreateMailbox(args[1], opts...)
	check(err)
	for i := 0; i < atoi(args[4]); i++ {
		check(mb.Send(hctx(), []byte(fmt.Sprintf("msg-%d", i))))
	}
	ipctest.Signal()
	ipctest.Await()
	check(mb.Close())
	return 0
})

// send: dir name discipline count id. Opens a mailbox (or, with kind "port", a port)
// and sends count messages "ID-I" with the discipline; for Response, checks the reply.
// Signals when done. With a sixth argument "wait" it waits for the test first.
var _ = ipctest.Helper("send", func(args []string) int {
	ns := helperNS(args)
	var s *mailbox.Sender
	if len(args) > 6 && args[6] == "port" {
		var err error
		s, err = ns.OpenPort(args[1])
		check(err)
	} else {
		mb, err := ns.OpenMailbox(args[1])
		check(err)
		defer mb.Close()
		s = mb.Sender
	}
	defer s.Close()
	if len(args) > 5 && args[5] == "wait" {
		ipctest.Signal()
		ipctest.Await()
	}
	d := parseDisc(args[2])
	reply := make([]byte, 64)
	for i := 0; i < atoi(args[3]); i++ {
		msg := []byte(fmt.Sprintf("%s-%d", args[4], i))
		n, err := s.SendWith(hctx(), d, msg, reply)
		check(err)
		if d == mailbox.Response && !bytes.Equal(reply[:n], bytes.ToUpper(msg)) {
			panic(fmt.Sprintf("reply %q to %q", reply[:n], msg))
		}
	}
	check(s.Flush(hctx()))
	ipctest.Signal()
	return 0
})

// recv: dir name count. Opens a mailbox, signals, waits for the test, then receives
// count messages (replying in upper case to Response messages), printing each, and
// signals.
var _ = ipctest.Helper("recv", func(args []string) int {
	ns := helperNS(args)
	mb, err := ns.OpenMailbox(args[1])
	check(err)
	defer mb.Close()
	ipctest.Signal()
	ipctest.Await()
	buf := make([]byte, 8192)
	for i := 0; i < atoi(args[2]); i++ {
		m, err := mb.Recv(hctx(), buf)
		check(err)
		if m.Discipline == mailbox.Response {
			check(mb.Reply(hctx(), m, bytes.ToUpper(buf[:m.N])))
		}
		fmt.Printf("%s\n", buf[:m.N])
	}
	ipctest.Signal()
	return 0
})

// own-and-hang: dir. Creates a transient mailbox "mbx", a port "prt", a listening
// link "lnk" and a reply port, signals, and waits to be killed.
var _ = ipctest.Helper("own-and-hang", func(args []string) int {
	ns := helperNS(args)
	mb, err := ns.CreateMailbox("mbx")
	check(err)
	p, err := ns.CreatePort("prt", mailbox.WithBackend(mailbox.SysV))
	check(err)
	l, err := ns.ListenLink("lnk", mailbox.RecvEnd)
	check(err)
	// A call nobody answers leaves this process's reply port in the namespace. On a
	// busy machine a short deadline can pass before the port exists: try again with
	// a longer one until it is there.
	for d := time.Millisecond; !hasReplyPort(ns); d *= 2 {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		_, err = mb.Sendrecv(ctx, []byte("anyone?"), nil)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			panic(fmt.Sprint("unanswered call: ", err))
		}
	}
	ipctest.Signal()
	ipctest.Await()
	mb.Close()
	p.Close()
	l.Close()
	return 0
})

// hasReplyPort reports whether ns lists a reply port.
func hasReplyPort(ns *mailbox.Namespace) bool {
	recs, err := ns.Entries()
	check(err)
	for _, r := range recs {
		if r.Kind == "reply" {
			return true
		}
	}
	return false
}

// port-owner: dir name backend count. Creates a port, signals, receives count
// messages (printing them), signals.
var _ = ipctest.Helper("port-owner", func(args []string) int {
	ns := helperNS(args)
	p, err := ns.CreatePort(args[1], mailbox.WithBackend(parseBackend(args[2])))
	check(err)
	defer p.Close()
	ipctest.Signal()
	buf := make([]byte, 8192)
	for i := 0; i < atoi(args[3]); i++ {
		m, err := p.Recv(hctx(), buf)
		check(err)
		fmt.Printf("%s\n", buf[:m.N])
	}
	ipctest.Signal()
	ipctest.Await()
	return 0
})

// port-give: dir name backend. Creates a port, takes one message, signals, then hands
// the port over on the seqpacket socket File(0) and exits.
var _ = ipctest.Helper("port-give", func(args []string) int {
	ns := helperNS(args)
	p, err := ns.CreatePort(args[1], mailbox.WithBackend(parseBackend(args[2])))
	check(err)
	conn, err := sockets.FileSeqpacketConn(ipctest.File(0))
	check(err)
	defer conn.Close()
	ipctest.Signal()
	buf := make([]byte, 8192)
	m, err := p.Recv(hctx(), buf)
	check(err)
	fmt.Printf("old owner got %s\n", buf[:m.N])
	check(p.Handover(hctx(), conn))
	if _, err := p.TryRecv(buf); err == nil {
		panic("old owner still receives")
	}
	check(p.Close())
	return 0
})

// port-take: dir count. Accepts a port on File(0), signals, receives count messages
// (printing them), checks it is the recorded owner, waits for the test.
var _ = ipctest.Helper("port-take", func(args []string) int {
	ns := helperNS(args)
	conn, err := sockets.FileSeqpacketConn(ipctest.File(0))
	check(err)
	defer conn.Close()
	p, err := ns.AcceptPort(hctx(), conn)
	check(err)
	defer p.Close()
	if p.Record().Owner.PID != os.Getpid() {
		panic("owner record not updated")
	}
	ipctest.Signal()
	buf := make([]byte, 8192)
	for i := 0; i < atoi(args[1]); i++ {
		m, err := p.Recv(hctx(), buf)
		check(err)
		fmt.Printf("new owner got %s\n", buf[:m.N])
	}
	ipctest.Signal()
	ipctest.Await()
	return 0
})

// link-dial: dir name count discipline. Dials a link; at the sending end sends count
// messages with the discipline; at the receiving end receives count (replying in
// upper case) and prints them. Signals when done and waits for the test.
var _ = ipctest.Helper("link-dial", func(args []string) int {
	ns := helperNS(args)
	l, err := ns.DialLink(hctx(), args[1])
	check(err)
	defer l.Close()
	n := atoi(args[2])
	if l.Tx != nil {
		d := parseDisc(args[3])
		reply := make([]byte, 64)
		for i := 0; i < n; i++ {
			msg := []byte(fmt.Sprintf("%s-%d", args[1], i))
			k, err := l.Tx.SendWith(hctx(), d, msg, reply)
			check(err)
			if d == mailbox.Response && !bytes.Equal(reply[:k], bytes.ToUpper(msg)) {
				panic("bad reply")
			}
		}
		check(l.Tx.Flush(hctx()))
	} else {
		buf := make([]byte, 8192)
		for i := 0; i < n; i++ {
			m, err := l.Rx.Recv(hctx(), buf)
			check(err)
			if m.Discipline == mailbox.Response {
				check(l.Rx.Reply(hctx(), m, bytes.ToUpper(buf[:m.N])))
			}
			fmt.Printf("%s\n", buf[:m.N])
		}
	}
	ipctest.Signal()
	ipctest.Await()
	return 0
})

// bsend-and-hang: dir name count. Bsends count messages to a mailbox nobody reads,
// signals once every Bsend has returned, and waits to be killed.
var _ = ipctest.Helper("bsend-and-hang", func(args []string) int {
	ns := helperNS(args)
	mb, err := ns.OpenMailbox(args[1], mailbox.WithSendBuffer(64))
	check(err)
	for i := 0; i < atoi(args[2]); i++ {
		// Large enough that a System V queue (capacity in bytes) fills too.
		check(mb.Bsend(hctx(), []byte(fmt.Sprintf("b-%d%3000s", i, ""))))
	}
	ipctest.Signal()
	time.Sleep(time.Hour)
	return 0
})
