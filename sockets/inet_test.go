package sockets

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
)

func TestTCP(t *testing.T) {
	bothWaits(t, func(t *testing.T, w ipc.WaitStrategy) {
		l, err := ListenTCP("127.0.0.1:0", WithWait(w))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		d, err := DialTCP(bg, l.Addr().String(), WithWait(w))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		c, err := l.AcceptStream(bg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, s := range []*StreamConn{c, d} {
			v, err := unix.GetsockoptInt(s.Fd(), unix.IPPROTO_TCP, unix.TCP_NODELAY)
			if err != nil || v == 0 {
				t.Errorf("%v: TCP_NODELAY = %d, %v", s, v, err)
			}
		}
		if _, err := d.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := c.Read(buf); err != nil || string(buf) != "ping" {
			t.Fatalf("%q, %v", buf, err)
		}
		if _, ok := c.RemoteAddr().(*net.TCPAddr); !ok {
			t.Errorf("RemoteAddr %T", c.RemoteAddr())
		}
	})
	// Only loopback.
	for _, a := range []string{"0.0.0.0:0", "10.0.0.1:80", "[::1]:0", "localhost:80"} {
		if l, err := ListenTCP(a); !errors.Is(err, ipc.ErrInvalid) {
			if l != nil {
				l.Close()
			}
			t.Errorf("ListenTCP(%q): %v, want ErrInvalid", a, err)
		}
		if _, err := DialUDP(bg, a); !errors.Is(err, ipc.ErrInvalid) {
			t.Errorf("DialUDP(%q): %v, want ErrInvalid", a, err)
		}
	}
}

func TestUDP(t *testing.T) {
	srv, err := ListenUDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cl, err := DialUDP(bg, srv.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Send(bg, []byte("dgram")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, from, err := srv.RecvFrom(bg, buf)
	if err != nil || string(buf[:n]) != "dgram" || from.String() != cl.LocalAddr().String() {
		t.Fatalf("RecvFrom = %q from %v, %v", buf[:n], from, err)
	}
	if err := srv.SendTo(bg, []byte("back"), from); err != nil {
		t.Fatal(err)
	}
	if n, err := cl.Recv(bg, buf); err != nil || string(buf[:n]) != "back" {
		t.Fatalf("Recv = %q, %v", buf[:n], err)
	}
	if err := srv.SendTo(bg, []byte("x"), &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 9}); !errors.Is(err, ipc.ErrInvalid) {
		t.Errorf("SendTo a non-loopback address: %v, want ErrInvalid", err)
	}
}

// Helper: joins the group args[0], signals, and echoes the first datagram back to
// the group prefixed with "echo:".
var _ = ipctest.Helper("mcast-member", func(args []string) int {
	m, err := ListenMulticast(args[0])
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer m.Close()
	ipctest.Signal()
	buf := make([]byte, 64)
	ctx, cancel := context.WithTimeout(bg, time.Minute)
	defer cancel()
	for {
		n, err := m.Recv(ctx, buf)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		if string(buf[:n]) == "hello" {
			break
		}
	}
	group, _ := net.ResolveUDPAddr("udp4", args[0])
	if err := m.SendTo(bg, []byte("echo:hello"), group); err != nil {
		fmt.Println(err)
		return 1
	}
	return 0
})

func TestMulticast(t *testing.T) {
	group := fmt.Sprintf("239.255.77.%d:%d", 1+time.Now().Nanosecond()%200, 40000+time.Now().Nanosecond()%20000)
	a, err := ListenMulticast(group)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := ListenMulticast(group)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p := startHelper(t, "mcast-member", ipctest.WithArgs(group))
	p.Await()
	gaddr, _ := net.ResolveUDPAddr("udp4", group)
	if err := a.SendTo(bg, []byte("hello"), gaddr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	// Every member hears it (loopback on: the sender too), then the other
	// process's echo.
	buf := make([]byte, 64)
	for _, m := range []*DgramConn{a, b} {
		for _, want := range []string{"hello", "echo:hello"} {
			n, err := m.Recv(ctx, buf)
			if err != nil || string(buf[:n]) != want {
				t.Fatalf("%v: %q, %v; want %q", m, buf[:n], err, want)
			}
		}
	}
	p.MustSucceed()
	// Non-multicast groups and other addresses are refused.
	for _, g := range []string{"127.0.0.1:5000", "10.1.2.3:5000"} {
		if _, err := ListenMulticast(g); !errors.Is(err, ipc.ErrInvalid) {
			t.Errorf("ListenMulticast(%q): %v, want ErrInvalid", g, err)
		}
	}
}

// TestBlockingSetup: accept and a connect blocked on a full backlog honour ctx in
// every wait mode.
func TestBlockingSetup(t *testing.T) {
	bothWaits(t, func(t *testing.T, w ipc.WaitStrategy) {
		path := sockPath(t, "b")
		l, err := ListenStream(path, WithWait(w), WithBacklog(1))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ctx, cancel := context.WithTimeout(bg, 20*time.Millisecond)
		defer cancel()
		if _, err := l.AcceptStream(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Accept: %v, want DeadlineExceeded", err)
		}
		// Fill the backlog (Linux admits backlog+1), then a blocking connect waits.
		var held []*StreamConn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
			c, err := DialStream(ctx, path, WithWait(w))
			cancel()
			if err != nil {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Dial on a full backlog: %v, want DeadlineExceeded", err)
				}
				break
			}
			held = append(held, c)
			if len(held) > 8 {
				t.Fatal("backlog never filled")
			}
		}
		// Close unblocks a pending Accept.
		done := make(chan error, 1)
		l2, err := ListenStream(sockPath(t, "c"), WithWait(w))
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			_, err := l2.AcceptStream(bg)
			done <- err
		}()
		time.Sleep(10 * time.Millisecond)
		l2.Close()
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	})
}

// AllowInetPrefix admits only canonical private-use (RFC 1918) IPv4 prefixes, and
// with it the TCP and UDP constructors and SendTo accept addresses in the prefix
// and still refuse every other non-loopback address, before any system call. (Traffic
// over such a prefix, between two network namespaces joined by a veth pair, is in
// ipc/rpc's TestSemanticsAcrossNamespaces.)
func TestAllowInetPrefix(t *testing.T) {
	for _, bad := range []string{"8.8.8.0/24", "10.0.0.0/7", "172.0.0.0/8", "192.168.1.1/24", "100.64.0.0/10", "fd00::/8", "0.0.0.0/0"} {
		if _, err := ListenUDP("127.0.0.1:0", AllowInetPrefix(netip.MustParsePrefix(bad))); !errors.Is(err, ipc.ErrInvalid) {
			t.Errorf("AllowInetPrefix(%s): err = %v, want ErrInvalid", bad, err)
		}
	}
	allow := AllowInetPrefix(netip.MustParsePrefix("10.231.254.0/24"))
	// Without the option a private address is refused as before.
	if _, err := ListenUDP("10.231.254.254:0"); !errors.Is(err, ipc.ErrInvalid) {
		t.Errorf("ListenUDP(10.231.254.254) without the option: err = %v, want ErrInvalid", err)
	}
	for _, out := range []string{"10.231.253.1:9", "192.168.0.1:9", "8.8.8.8:53"} {
		if _, err := ListenUDP(out, allow); !errors.Is(err, ipc.ErrInvalid) {
			t.Errorf("ListenUDP(%s) outside the prefix: err = %v, want ErrInvalid", out, err)
		}
		if _, err := ListenTCP(out, allow); !errors.Is(err, ipc.ErrInvalid) {
			t.Errorf("ListenTCP(%s) outside the prefix: err = %v, want ErrInvalid", out, err)
		}
		if _, err := DialTCP(bg, out, allow); !errors.Is(err, ipc.ErrInvalid) {
			t.Errorf("DialTCP(%s) outside the prefix: err = %v, want ErrInvalid", out, err)
		}
		if _, err := DialUDP(bg, out, allow); !errors.Is(err, ipc.ErrInvalid) {
			t.Errorf("DialUDP(%s) outside the prefix: err = %v, want ErrInvalid", out, err)
		}
	}
	// In the prefix the address passes the check and reaches bind(2), which fails
	// here because no interface of this namespace has it (no packet is sent).
	if u, err := ListenUDP("10.231.254.254:0", allow); err == nil {
		u.Close()
		t.Skip("this namespace has 10.231.254.254; cannot test the refusal by the kernel")
	} else if errors.Is(err, ipc.ErrInvalid) || !errors.Is(err, unix.EADDRNOTAVAIL) {
		t.Errorf("ListenUDP(10.231.254.254) in the prefix: err = %v, want EADDRNOTAVAIL from bind", err)
	}
	u, err := ListenUDP("127.0.0.1:0", allow)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if err := u.SendTo(bg, []byte("x"), &net.UDPAddr{IP: net.IPv4(10, 231, 253, 1), Port: 9}); !errors.Is(err, ipc.ErrInvalid) {
		t.Errorf("SendTo outside the prefix: err = %v, want ErrInvalid", err)
	}
}
