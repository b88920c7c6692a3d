package sockets

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/ipc"
)

// The benchmarks send and receive 64-byte messages in one goroutine with caller
// buffers; -benchmem must show 0 allocs/op.

func benchWaits(b *testing.B, f func(b *testing.B, w ipc.WaitStrategy)) {
	for _, w := range []ipc.WaitStrategy{ipc.WaitAuto, ipc.WaitPoller, ipc.WaitKernel} {
		b.Run(w.String(), func(b *testing.B) { f(b, w) })
	}
}

func BenchmarkStreamWriteRead(b *testing.B) {
	benchWaits(b, func(b *testing.B, w ipc.WaitStrategy) {
		x, y := streamPair(b, WithWait(w))
		msg, buf := make([]byte, 64), make([]byte, 64)
		b.ReportAllocs()
		b.SetBytes(64)
		for b.Loop() {
			if _, err := x.Write(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := y.Read(buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkTCPWriteRead(b *testing.B) {
	l, err := ListenTCP("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	x, err := DialTCP(bg, l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	y, err := l.AcceptStream(bg)
	if err != nil {
		b.Fatal(err)
	}
	defer y.Close()
	msg, buf := make([]byte, 64), make([]byte, 64)
	b.ReportAllocs()
	b.SetBytes(64)
	for b.Loop() {
		if _, err := x.Write(msg); err != nil {
			b.Fatal(err)
		}
		for n := 0; n < len(buf); {
			m, err := y.Read(buf[n:])
			if err != nil {
				b.Fatal(err)
			}
			n += m
		}
	}
}

func BenchmarkSeqpacketSendRecv(b *testing.B) {
	benchWaits(b, func(b *testing.B, w ipc.WaitStrategy) {
		x, y := seqPair(b, WithWait(w))
		msg, buf := make([]byte, 64), make([]byte, 64)
		b.ReportAllocs()
		b.SetBytes(64)
		for b.Loop() {
			if err := x.Send(bg, msg); err != nil {
				b.Fatal(err)
			}
			if _, err := y.Recv(bg, buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDgramSendRecv(b *testing.B) {
	x, y := dgramPair(b)
	msg, buf := make([]byte, 64), make([]byte, 64)
	b.ReportAllocs()
	b.SetBytes(64)
	for b.Loop() {
		if err := x.Send(bg, msg); err != nil {
			b.Fatal(err)
		}
		if _, err := y.Recv(bg, buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUDPSendToRecv(b *testing.B) {
	srv, err := ListenUDP("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	cl, err := ListenUDP("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	to := srv.LocalAddr()
	msg, buf := make([]byte, 64), make([]byte, 64)
	b.ReportAllocs()
	b.SetBytes(64)
	for b.Loop() {
		if err := cl.SendTo(bg, msg, to); err != nil {
			b.Fatal(err)
		}
		if _, err := srv.Recv(bg, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFdPass sends one descriptor per message and closes it on receipt.
func BenchmarkFdPass(b *testing.B) {
	x, y := seqPair(b)
	f := tempFile(b, "")
	fds := []int{int(f.Fd())}
	msg, buf, got := make([]byte, 64), make([]byte, 64), make([]int, 1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := x.WriteMsg(bg, msg, fds); err != nil {
			b.Fatal(err)
		}
		_, n, err := y.ReadMsg(bg, buf, got)
		if err != nil || n != 1 {
			b.Fatal(n, err)
		}
		unix.Close(got[0])
	}
}

// BenchmarkSeqpacketExchange is a door call's engine pair (export_test.go): a
// request sent and its reply received, the peer echoing from another goroutine.
func BenchmarkSeqpacketExchange(b *testing.B) {
	benchWaits(b, func(b *testing.B, w ipc.WaitStrategy) {
		x, y := seqPair(b, WithWait(w))
		go func() {
			buf := make([]byte, 64)
			for {
				n, err := y.Recv(bg, buf)
				if err != nil {
					return
				}
				if y.Send(bg, buf[:n]) != nil {
					return
				}
			}
		}()
		msg, buf := make([]byte, 64), make([]byte, 64)
		b.ReportAllocs()
		b.SetBytes(64)
		for b.Loop() {
			if _, err := x.Exchange(bg, msg, buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSendReadMsgCred is a door server's engine pair (export_test.go): a
// reply sent with the wait for the next request and its sender's credentials.
func BenchmarkSendReadMsgCred(b *testing.B) {
	benchWaits(b, func(b *testing.B, w ipc.WaitStrategy) {
		x, y := seqPair(b, WithWait(w), PassCred())
		msg, buf, fds := make([]byte, 64), make([]byte, 64), make([]int, DefaultMaxFds)
		if err := x.Send(bg, msg); err != nil {
			b.Fatal(err)
		}
		if _, _, _, err := y.ReadMsgCred(bg, buf, fds); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.SetBytes(64)
		for b.Loop() {
			if err := x.Send(bg, msg); err != nil {
				b.Fatal(err)
			}
			if _, _, _, err := y.SendReadMsgCred(bg, msg, buf, fds); err != nil {
				b.Fatal(err)
			}
			if _, err := x.Recv(bg, buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDgramPolicyRecv receives through a datagram policy, which needs every
// sender's credentials (a pooled message state, not the plain attempt).
func BenchmarkDgramPolicyRecv(b *testing.B) {
	x, y := dgramPair(b, WithPeerPolicy(SameUser()))
	msg, buf := make([]byte, 64), make([]byte, 64)
	b.ReportAllocs()
	b.SetBytes(64)
	for b.Loop() {
		if err := x.Send(bg, msg); err != nil {
			b.Fatal(err)
		}
		if _, err := y.Recv(bg, buf); err != nil {
			b.Fatal(err)
		}
	}
}
