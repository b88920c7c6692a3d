package mailbox_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ipclab/ipclab/ipc/mailbox"
)

// exampleNS opens a namespace in a fresh directory; the returned func removes it.
func exampleNS() (*mailbox.Namespace, func()) {
	dir, err := os.MkdirTemp("", "mailbox-example-")
	check(err)
	ns, err := mailbox.Open(filepath.Join(dir, "ns"))
	check(err)
	return ns, func() { os.RemoveAll(dir) }
}

// Persistent asynchronous: the sender buffers the message and goes on; the persistent
// mailbox keeps it with nobody attached until a receiver turns up.
func Example_persistentAsynchronous() {
	ns, done := exampleNS()
	defer done()
	ctx := context.Background()

	sender, err := ns.CreateMailbox("inbox", mailbox.Persistent())
	check(err)
	check(sender.Bsend(ctx, []byte("see you later"))) // returns once buffered
	check(sender.Flush(ctx))
	check(sender.Close()) // no process has the mailbox open now

	receiver, err := ns.OpenMailbox("inbox")
	check(err)
	buf := make([]byte, 64)
	m, err := receiver.Recv(ctx, buf)
	check(err)
	fmt.Printf("%s (%v)\n", buf[:m.N], m.Discipline)
	check(receiver.Remove())
	// Output: see you later (buffered)
}

// Persistent synchronous: Send returns once the mailbox has stored the message.
func Example_persistentSynchronous() {
	ns, done := exampleNS()
	defer done()
	ctx := context.Background()

	mb, err := ns.CreateMailbox("archive", mailbox.Persistent(), mailbox.WithBackend(mailbox.SysV))
	check(err)
	check(mb.Send(ctx, []byte("stored"))) // the kernel holds it now
	n, err := mb.Len()
	check(err)
	fmt.Println("queued:", n)
	check(mb.Remove())
	// Output: queued: 1
}

// Transient asynchronous: TrySend never waits; the message lives only as long as the
// mailbox has users.
func Example_transientAsynchronous() {
	ns, done := exampleNS()
	defer done()

	mb, err := ns.CreateMailbox("chat", mailbox.WithCapacity(1, 64))
	check(err)
	fmt.Println(mb.TrySend([]byte("first")))
	fmt.Println(mb.TrySend([]byte("second")) != nil) // full: ipc.ErrWouldBlock
	check(mb.Close())                                // last user: mailbox and message are gone
	_, err = ns.OpenMailbox("chat")
	fmt.Println(err != nil)
	// Output:
	// <nil>
	// true
	// true
}

// Receipt-based transient synchronous: over a link, Send returns once the message is
// in the receiver's socket buffer.
func Example_receiptBased() {
	ns, done := exampleNS()
	defer done()
	ctx := context.Background()

	ln, err := ns.ListenLink("wire", mailbox.RecvEnd)
	check(err)
	go func() {
		tx, err := ns.DialLink(ctx, "wire")
		check(err)
		check(tx.Tx.Send(ctx, []byte("received?")))
		check(tx.Close())
	}()
	rx, err := ln.Accept(ctx)
	check(err)
	buf := make([]byte, 64)
	m, err := rx.Rx.Recv(ctx, buf)
	check(err)
	fmt.Printf("%s (%v)\n", buf[:m.N], m.Discipline)
	check(rx.Close())
	// Output: received? (receipt)
}

// Delivery-based transient synchronous: Ssend returns once a receiver has the message.
func Example_deliveryBased() {
	ns, done := exampleNS()
	defer done()
	ctx := context.Background()

	port, err := ns.CreatePort("printer")
	check(err)
	got := make(chan string)
	go func() {
		buf := make([]byte, 64)
		m, err := port.Recv(ctx, buf)
		check(err)
		got <- string(buf[:m.N])
	}()
	s, err := ns.OpenPort("printer")
	check(err)
	check(s.Ssend(ctx, []byte("page 1"))) // the receiver has taken it
	fmt.Println("delivered:", <-got)
	check(s.Close())
	check(port.Close())
	// Output: delivered: page 1
}

// Response-based transient synchronous: Sendrecv returns with the receiver's reply.
func Example_responseBased() {
	ns, done := exampleNS()
	defer done()
	ctx := context.Background()

	server, err := ns.CreateMailbox("time")
	check(err)
	go func() {
		buf := make([]byte, 64)
		m, err := server.Recv(ctx, buf)
		check(err)
		check(server.Reply(ctx, m, []byte("noon")))
	}()
	client, err := ns.OpenMailbox("time")
	check(err)
	reply := make([]byte, 64)
	n, err := client.Sendrecv(ctx, []byte("what time is it?"), reply)
	check(err)
	fmt.Println(string(reply[:n]))
	check(client.Close())
	check(server.Close())
	// Output: noon
}
