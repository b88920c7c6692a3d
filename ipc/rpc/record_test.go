package rpc

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/sockets"
)

// TestRecordGrowsAsBytesArrive (RPC-09): a fragment header announcing a record of
// up to the limit, followed by few or no bytes, must not make the reader allocate
// the announced size: the record buffer grows only as bytes arrive.
func TestRecordGrowsAsBytesArrive(t *testing.T) {
	const max = 64 << 20
	for _, tc := range []struct {
		name string
		hdr  uint32
		body int
	}{
		{"not last, nothing after", max - 8, 0},
		{"last, 100 bytes of it", lastFrag | (max - 8), 100},
		{"not last, 200 KiB of it", max - 8, 200 << 10},
	} {
		data := binary.BigEndian.AppendUint32(nil, tc.hdr)
		data = append(data, make([]byte, tc.body)...)
		rr := newRecordReader(&chunkReader{data: data, chunk: 1 << 16}, max)
		_, err := rr.next(context.Background())
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%s: next = %v, want io.ErrUnexpectedEOF", tc.name, err)
		}
		if limit := 2*tc.body + 2*readBufSize; cap(rr.rec) > limit {
			t.Errorf("%s: record buffer of %d bytes after %d bytes arrived (announced %d), want <= %d",
				tc.name, cap(rr.rec), tc.body, tc.hdr&^lastFrag, limit)
		}
	}
}

// TestServerIdleTimeout: a TCP connection that sends nothing, or only part of a
// record, is closed after the server's idle timeout.
func TestServerIdleTimeout(t *testing.T) {
	s, err := NewServer(WithIdleTimeout(300 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addr, err := s.ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	for _, send := range [][]byte{nil, {0x00, 0x10, 0x00, 0x00, 1, 2}} {
		c, err := sockets.DialTCP(context.Background(), addr.String())
		if err != nil {
			t.Fatal(err)
		}
		if len(send) > 0 {
			if _, err := c.WriteContext(context.Background(), send); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		start := time.Now()
		_, err = c.ReadContext(ctx, make([]byte, 16))
		cancel()
		c.Close()
		if !errors.Is(err, io.EOF) && !errors.Is(err, unix.ECONNRESET) {
			t.Errorf("sent %d bytes: read = %v after %v, want the server to close the connection", len(send), err, time.Since(start))
		}
	}
}

// TestServerMaxConns: connections beyond the server's limit are closed at once,
// and a slot freed lets a new one in.
func TestServerMaxConns(t *testing.T) {
	s, err := NewServer(WithMaxConns(2))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Register(0x20000999, 1, nil); err != nil {
		t.Fatal(err)
	}
	addr, err := s.ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var cs []*Client
	for i := 0; i < 2; i++ {
		c, err := Dial(ctx, "tcp", addr.String(), 0x20000999, 1)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Call(ctx, 0, nil, nil); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		cs = append(cs, c)
	}
	extra, err := sockets.DialTCP(ctx, addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = extra.ReadContext(rctx, make([]byte, 16))
	rcancel()
	if !errors.Is(err, io.EOF) && !errors.Is(err, unix.ECONNRESET) {
		t.Fatalf("third connection: read = %v, want it closed by the server", err)
	}
	cs[0].Close()
	deadline := time.Now().Add(3 * time.Second)
	for {
		c, err := Dial(ctx, "tcp", addr.String(), 0x20000999, 1)
		if err == nil {
			err = c.Call(ctx, 0, nil, nil)
			c.Close()
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after one client left, a new one still fails: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
