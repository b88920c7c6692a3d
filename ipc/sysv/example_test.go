package sysv_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/sysv"
)

// A private queue used as a priority queue: UpTo takes the most urgent (lowest) type
// first; a short buffer with Truncate reports the loss instead of hiding it.
func ExampleQueue() {
	q, err := sysv.CreateQueue(sysv.Private) // mode 0600; pass q.ID() to the peer
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()
	defer q.Remove()

	ctx := context.Background()
	q.Send(ctx, 3, []byte("low"))
	q.Send(ctx, 1, []byte("urgent"))
	q.Send(ctx, 2, []byte("normal"))

	buf := make([]byte, 64)
	for range 2 {
		n, typ, _ := q.Recv(ctx, buf, sysv.UpTo(3))
		fmt.Printf("type %d: %s\n", typ, buf[:n])
	}
	n, _, err := q.Recv(ctx, buf[:2], sysv.Any().Truncate())
	fmt.Printf("%s, truncated: %v\n", buf[:n], errors.Is(err, ipc.ErrTruncated))

	// nothing left: a receive with a deadline gives up
	dctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	_, _, err = q.Recv(dctx, buf, sysv.Any())
	fmt.Println("deadline:", errors.Is(err, context.DeadlineExceeded))
	// Output:
	// type 1: urgent
	// type 2: normal
	// lo, truncated: true
	// deadline: true
}

// A segment shared by id, removed as soon as everyone has attached (here: only us), so
// that nothing outlives the processes.
func ExampleSegment() {
	seg, err := sysv.CreateSegment(sysv.Private, 4096)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer seg.Detach()
	seg.Remove() // attach-then-remove: still usable until the last detach

	seg.WriteAt([]byte("hello"), 0)
	counter, _ := seg.Uint64(64) // an aligned word other processes can update atomically
	counter.Add(41)
	counter.Add(1)

	type header struct { // pointer-free and padding-free: may be viewed in place
		Magic   uint32
		Version uint32
	}
	h, _ := sysv.View[header](seg, 128)
	h.Magic = 0x1234

	buf := make([]byte, 5)
	seg.ReadAt(buf, 0)
	st, _ := seg.Stat()
	fmt.Println(string(buf), counter.Load(), st.Removed(), st.Attached)

	seg.Detach()
	_, err = seg.ReadAt(buf, 0)
	fmt.Println("after detach:", err != nil)
	// Output:
	// hello 42 true 1
	// after detach: true
}

// A semaphore set as a mutex whose holder is released by the kernel if it dies
// (SEM_UNDO), plus an atomic multi-semaphore operation.
func ExampleSemSet() {
	s, err := sysv.CreateSemSet(sysv.Private, 2)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	defer s.Remove()

	ctx := context.Background()
	s.Set(0, 1) // the mutex is free
	if err := s.Op(ctx, sysv.SemOp{Num: 0, Op: -1, Flags: sysv.Undo}); err == nil {
		fmt.Println("locked")
	}
	// a second lock attempt would wait: try without waiting
	err = s.TryOp(sysv.SemOp{Num: 0, Op: -1, Flags: sysv.Undo})
	fmt.Println("busy:", errors.Is(err, ipc.ErrWouldBlock))
	s.Op(ctx, sysv.SemOp{Num: 0, Op: 1, Flags: sysv.Undo})

	// both semaphores change together, or neither does
	s.Op(ctx, sysv.SemOp{Num: 0, Op: -1}, sysv.SemOp{Num: 1, Op: 5})
	vals := make([]uint16, 2)
	s.GetAll(vals)
	fmt.Println(vals)
	// Output:
	// locked
	// busy: true
	// [0 5]
}

// A ring moves messages through shared memory; the peer would call
// sysv.OpenRing(r.SegmentID()).
func ExampleRing() {
	r, err := sysv.CreateRing(4096)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	defer r.Remove()

	ctx := context.Background()
	r.Send(ctx, []byte("through shared memory"))
	buf := make([]byte, 64)
	n, _ := r.Recv(ctx, buf)
	fmt.Println(string(buf[:n]))
	// Output: through shared memory
}

// TryRecv and TrySend never wait: an empty ring (or a full one) answers
// ipc.ErrWouldBlock at once.
func ExampleRing_TryRecv() {
	r, err := sysv.CreateRing(4096)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	defer r.Remove()

	buf := make([]byte, 64)
	_, err = r.TryRecv(buf)
	fmt.Println("empty:", errors.Is(err, ipc.ErrWouldBlock))
	r.TrySend([]byte("no waiting"))
	n, _ := r.TryRecv(buf)
	fmt.Println(string(buf[:n]))
	// Output:
	// empty: true
	// no waiting
}
