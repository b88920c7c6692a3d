package sockets_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/sockets"
)

func ExampleStreamPair() {
	a, b, err := sockets.StreamPair()
	if err != nil {
		panic(err)
	}
	defer a.Close()
	defer b.Close()
	a.Write([]byte("hello"))
	buf := make([]byte, 16)
	n, _ := b.Read(buf)
	fmt.Println(string(buf[:n]))
	// Output: hello
}

// Listen on a path inside a private directory, dial it, and exchange a line.
func ExampleListenStream() {
	dir, err := os.MkdirTemp("", "example-") // 0700, ours
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	l, err := sockets.ListenStream(filepath.Join(dir, "server.sock"))
	if err != nil {
		panic(err)
	}
	defer l.Close() // also removes server.sock
	ctx := context.Background()
	go func() {
		c, err := l.AcceptStream(ctx)
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		c.Write(append([]byte("echo: "), buf[:n]...))
	}()
	c, err := sockets.DialStream(ctx, l.Addr().String())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	c.Write([]byte("ping"))
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	fmt.Println(string(buf[:n]))
	// Output: echo: ping
}

// Pass a pipe's write end to the other side, which writes through it.
func ExampleSeqpacketConn_WriteMsg() {
	a, b, err := sockets.SeqpacketPair()
	if err != nil {
		panic(err)
	}
	defer a.Close()
	defer b.Close()
	r, w, err := os.Pipe()
	if err != nil {
		panic(err)
	}
	defer r.Close()
	ctx := context.Background()
	a.WriteMsg(ctx, []byte("here is a pipe"), []int{int(w.Fd())})
	w.Close() // the descriptor in flight keeps the pipe open

	fds := make([]int, 1) // we accept at most one descriptor
	buf := make([]byte, 64)
	n, nfds, err := b.ReadMsg(ctx, buf, fds)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%q with %d fd\n", buf[:n], nfds)
	unix.Write(fds[0], []byte("written through the received fd"))
	unix.Close(fds[0])
	got := make([]byte, 64)
	n, _ = r.Read(got)
	fmt.Println(string(got[:n]))
	// Output:
	// "here is a pipe" with 1 fd
	// written through the received fd
}

// Credentials travel with each message when the receiver asks for them.
func ExampleSeqpacketConn_ReadMsgCred() {
	a, b, err := sockets.SeqpacketPair(sockets.PassCred())
	if err != nil {
		panic(err)
	}
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	a.Send(ctx, []byte("who am I?"))
	_, _, cred, err := b.ReadMsgCred(ctx, make([]byte, 64), nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(cred.Pid == int32(os.Getpid()), cred.Uid == uint32(os.Getuid()))
	// Output: true true
}

// A request/reply server that vets every request's sender: the kernel attaches the
// client's credentials to each message once the server has SO_PASSCRED.
func ExampleSeqpacketConn_ReadMsgCred_server() {
	client, server, err := sockets.SeqpacketPair(sockets.WithWait(ipc.WaitKernel))
	if err != nil {
		panic(err)
	}
	defer client.Close()
	// The receiver's SO_PASSCRED is enough for the kernel to attach the sender's
	// credentials; set it before the first request is sent.
	if err := server.SetPassCred(true); err != nil {
		panic(err)
	}
	ctx := context.Background()
	go func() {
		defer server.Close()
		req := make([]byte, 64)
		for {
			n, _, cred, err := server.ReadMsgCred(ctx, req, nil)
			if err != nil {
				return
			}
			if err := server.Send(ctx, fmt.Appendf(nil, "%s, uid %d", req[:n], cred.Uid)); err != nil {
				return
			}
		}
	}()
	resp := make([]byte, 64)
	for _, q := range []string{"one", "two"} {
		if err := client.Send(ctx, []byte(q)); err != nil {
			panic(err)
		}
		n, err := client.Recv(ctx, resp)
		if err != nil {
			panic(err)
		}
		fmt.Println(string(resp[:n]) == fmt.Sprintf("%s, uid %d", q, os.Getuid()))
	}
	// Output:
	// true
	// true
}

// Multicast on loopback: every member, the sender included, receives each datagram.
func ExampleListenMulticast() {
	const group = "239.255.1.2:45999"
	m, err := sockets.ListenMulticast(group)
	if err != nil {
		panic(err)
	}
	defer m.Close()
	to, _ := net.ResolveUDPAddr("udp4", group)
	ctx := context.Background()
	m.SendTo(ctx, []byte("to everyone"), to)
	buf := make([]byte, 64)
	n, _ := m.Recv(ctx, buf)
	fmt.Println(string(buf[:n]))
	// Output: to everyone
}

// Abstract names only with a peer policy: here the server must run as our user.
func ExampleAllowAbstract() {
	name := fmt.Sprintf("@example-%d", os.Getpid())
	l, err := sockets.ListenSeqpacket(name, sockets.AllowAbstract(sockets.SameUser()))
	if err != nil {
		panic(err)
	}
	defer l.Close()
	c, err := sockets.DialSeqpacket(context.Background(), name, sockets.AllowAbstract(sockets.SameUser()))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	_, err = sockets.DialSeqpacket(context.Background(), name)
	fmt.Println(err != nil)
	// Output: true
}
