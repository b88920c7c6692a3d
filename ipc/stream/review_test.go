package stream_test

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc/stream"
	"github.com/ipclab/ipclab/sockets"
)

// rawUnit is a data unit as a (possibly hostile) peer writes it.
func rawUnit(sub uint32, seq uint64, sent, pts int64, payload int) []byte {
	b := make([]byte, stream.HeaderSize+payload)
	b[0], b[1], b[2] = 'Q', 1, 1
	binary.LittleEndian.PutUint32(b[4:], sub)
	binary.LittleEndian.PutUint64(b[8:], seq)
	binary.LittleEndian.PutUint64(b[16:], uint64(sent))
	binary.LittleEndian.PutUint64(b[24:], uint64(pts))
	binary.LittleEndian.PutUint32(b[32:], uint32(payload))
	return b
}

// openPair opens a stream of spec between the two ends of an in-process pair.
func openPair(t *testing.T, spec stream.FlowSpec, opts ...stream.SinkOption) (*stream.Source, *stream.Sink, func([]byte)) {
	t.Helper()
	a, b := localPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	srcs := make(chan *stream.Source, 1)
	go func() {
		src, err := stream.Open(ctx, a, spec)
		if err != nil {
			t.Error(err)
		}
		srcs <- src
	}()
	sink, err := stream.Accept(ctx, b, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	raw := func(p []byte) {
		if err := a.Send(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	return <-srcs, sink, raw
}

// Close while units wait in the read-ahead, and while Recv waits for one: no panic,
// and Recv ends with an error matching os.ErrClosed.
func TestCloseDuringRecv(t *testing.T) {
	spec := stream.FlowSpec{Rate: 1e9, Depth: 1 << 20, Mode: stream.Sync, MaxDelay: time.Nanosecond}
	ctx := context.Background()
	src, sink, _ := openPair(t, spec)
	for i := range 5 {
		if err := src.Send(ctx, make([]byte, 10), time.Duration(i)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond) // read ahead, all late
	sink.Close()
	buf := make([]byte, 10)
	if _, err := sink.Recv(ctx, buf); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Recv after Close: %v", err)
	}

	_, sink2, _ := openPair(t, spec)
	done := make(chan error, 1)
	go func() {
		_, err := sink2.Recv(ctx, buf)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	sink2.Close()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("Recv interrupted by Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a waiting Recv")
	}
}

// A renegotiation beyond what is free is refused, never countered: the old contract
// stays on both sides, the admission controller holds it, and the stream goes on.
func TestRenegotiateRefused(t *testing.T) {
	adm := stream.NewAdmission(1.5e6)
	spec := stream.FlowSpec{Rate: 1e6, Depth: 1 << 16}
	ctx := context.Background()
	src, sink, _ := openPair(t, spec, stream.WithAdmission(adm))
	higher := spec
	higher.Rate, higher.MinRate = 2e6, 1e6
	got := make(chan error, 1)
	go func() {
		_, err := src.Renegotiate(ctx, higher)
		if err == nil {
			err = src.Send(ctx, make([]byte, 10), 0)
		} else if errors.Is(err, stream.ErrRefused) {
			err = src.Send(ctx, make([]byte, 10), 0)
			if err == nil {
				err = stream.ErrRefused
			}
		}
		got <- err
	}()
	buf := make([]byte, 10)
	if _, err := sink.Recv(ctx, buf); err != nil {
		t.Fatalf("the stream did not go on after the refusal: %v", err)
	}
	if err := <-got; !errors.Is(err, stream.ErrRefused) {
		t.Errorf("renegotiation: %v, want ErrRefused", err)
	}
	if src.Spec().Rate != 1e6 || sink.Spec().Rate != 1e6 || adm.Admitted() != 1e6 {
		t.Errorf("after the refusal: source %.0f, sink %.0f, admitted %.0f; want 1e6 each", src.Spec().Rate, sink.Spec().Rate, adm.Admitted())
	}
	if br := stream.CheckAdmission(adm.Log(), adm.Capacity()); len(br) > 0 {
		t.Error(br)
	}
}

// Renegotiating Every from 1 to 2 after an odd sequence number counts no loss (the
// count once wrapped to 2^64 − 1).
func TestLossAcrossEveryChange(t *testing.T) {
	spec := stream.FlowSpec{Rate: 1e9, Depth: 1 << 20}
	ctx := context.Background()
	src, sink, _ := openPair(t, spec)
	buf := make([]byte, 10)
	go func() {
		for i := range 6 {
			src.Send(ctx, make([]byte, 10), time.Duration(i))
		}
		two := spec
		two.Every = 2
		src.Renegotiate(ctx, two)
		src.Send(ctx, make([]byte, 10), 6) // seq 6, wanted
		src.Close()
	}()
	n := 0
	for {
		if _, err := sink.Recv(ctx, buf); err != nil {
			break
		}
		n++
	}
	if st := sink.Stats(); n != 7 || st.Lost != 0 {
		t.Errorf("%d units, lost %d", n, st.Lost)
	}
}

// A hostile peer: a unit from the future, one due far beyond the maximum delay, one
// of another sub-stream, the last sequence number there is — each is a protocol
// error, at once, not a stall or a wrapped count.
func TestHostileUnits(t *testing.T) {
	iso := stream.FlowSpec{Rate: 1e9, Depth: 1 << 20, Mode: stream.Isochronous, MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond}
	for name, unit := range map[string]func() []byte{
		"sent in the future": func() []byte { return rawUnit(0, 0, stream.Now()+int64(time.Hour), 0, 10) },
		"last seq":           func() []byte { return rawUnit(0, 1<<64-1, stream.Now(), 0, 10) },
	} {
		t.Run(name, func(t *testing.T) {
			_, sink, raw := openPair(t, iso)
			raw(unit())
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err := sink.Recv(ctx, make([]byte, 10))
			ipctest.CheckOpError(t, name, err, stream.ErrProtocol)
		})
	}
	t.Run("another sub-stream", func(t *testing.T) {
		_, sink, raw := openPair(t, iso)
		raw(rawUnit(0, 0, stream.Now(), 0, 10))
		raw(rawUnit(7, 1, stream.Now(), 0, 10))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		buf := make([]byte, 10)
		if _, err := sink.Recv(ctx, buf); err != nil {
			t.Fatal(err)
		}
		_, err := sink.Recv(ctx, buf)
		ipctest.CheckOpError(t, "sub-stream 7", err, stream.ErrProtocol)
	})
	t.Run("due far ahead (by media time)", func(t *testing.T) {
		a, b := localPair(t)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		go stream.Open(ctx, a, iso)
		sink, err := stream.Accept(ctx, b, stream.ByMediaTime(time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		defer sink.Close()
		a.Send(ctx, rawUnit(0, 0, stream.Now(), int64(time.Hour), 10))
		_, err = sink.Recv(ctx, make([]byte, 10))
		ipctest.CheckOpError(t, "due in an hour", err, stream.ErrProtocol)
	})
}

// Close reports the last, partial interval: a stream shorter than one interval
// still gets a report of everything it carried.
func TestLastIntervalReported(t *testing.T) {
	ctx := context.Background()
	src, sink, _ := openPair(t, stream.FlowSpec{Rate: 1e9, Depth: 1 << 20}, stream.WithInterval(time.Hour))
	go func() {
		for i := range 7 {
			src.Send(ctx, make([]byte, 10), time.Duration(i))
		}
		src.Close()
	}()
	buf := make([]byte, 10)
	for {
		if _, err := sink.Recv(ctx, buf); err != nil {
			break
		}
	}
	sink.Close()
	var units uint64
	n := 0
	for r := range sink.Reports() {
		units += r.Units
		n++
	}
	if n != 1 || units != 7 {
		t.Errorf("%d reports of %d units, want one of 7", n, units)
	}
}

// A sink on an unconnected UDP socket talks to the source it heard first: a
// datagram from anyone else is dropped unread.
func TestUnconnectedIgnoresStrangers(t *testing.T) {
	l, err := sockets.ListenUDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, err := sockets.DialUDP(ctx, l.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	stranger, err := sockets.DialUDP(ctx, l.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	srcs := make(chan *stream.Source, 1)
	go func() {
		src, err := stream.Open(ctx, a, stream.FlowSpec{Rate: 1e9, Depth: 1 << 20})
		if err != nil {
			t.Error(err)
		}
		srcs <- src
	}()
	sink, err := stream.Accept(ctx, stream.Unconnected(l, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	src := <-srcs
	if err := stranger.Send(ctx, rawUnit(0, 0, stream.Now(), 0, 3)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if err := src.Send(ctx, make([]byte, 5), 0); err != nil {
		t.Fatal(err)
	}
	u, err := sink.Recv(ctx, make([]byte, 10))
	if err != nil || u.Len != 5 {
		t.Fatalf("got a unit of %d bytes (%v), want the source's 5", u.Len, err)
	}
	if st := sink.Stats(); st.Units != 1 || st.Duplicates != 0 {
		t.Errorf("stats %+v: the stranger's unit was counted", st)
	}
}
