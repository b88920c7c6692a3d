package mailbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/mailbox/internal/wire"
)

// bsender is a Sender's send buffer: preallocated frame slots that Bsend fills. A
// message the kernel object has room for, with nothing buffered before it, goes
// straight to the object in the caller's own non-blocking send; only the others wait in
// slots, which a goroutine flushes to the object with blocking sends, in order. The
// caller therefore never waits for that goroutine to be scheduled while the object has
// room: with the thread that would run it busy (GOMAXPROCS=1, or both Ps' threads on
// one CPU with one of them blocked in a kernel-mode receive) the runtime hands its P
// to another thread only after sysmon notices, tens of microseconds or more later.
type bsender struct {
	out     carrier
	slots   [][]byte
	lens    []int
	free    chan int
	queue   chan int
	drained chan struct{} // a value after each flushed message
	pending atomic.Int64  // messages handed to the flusher and not yet flushed
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}

	// submit orders Bsends: a message is sent directly or queued to the flusher under
	// it, so a message never overtakes one buffered before it.
	submit sync.Mutex

	mu  sync.Mutex
	err error // first flush failure; later messages are dropped
}

func newBsender(out carrier, n, frameSize int) *bsender {
	b := &bsender{out: out, slots: make([][]byte, n), lens: make([]int, n),
		free: make(chan int, n), queue: make(chan int, n), drained: make(chan struct{}, 1),
		done: make(chan struct{})}
	for i := range b.slots {
		b.slots[i] = make([]byte, frameSize)
		b.free <- i
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	go b.flush()
	return b
}

func (b *bsender) failed() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

func (b *bsender) flush() {
	defer close(b.done)
	for {
		select {
		case i := <-b.queue:
			if b.failed() == nil {
				if err := b.out.send(b.ctx, b.slots[i][:b.lens[i]]); err != nil {
					b.mu.Lock()
					if b.ctx.Err() == nil {
						b.err = err
					}
					b.mu.Unlock()
				}
			}
			b.pending.Add(-1)
			b.free <- i
			select {
			case b.drained <- struct{}{}:
			default:
			}
		case <-b.ctx.Done():
			return
		}
	}
}

// close stops the flusher and reports messages that were never sent.
func (b *bsender) close() error {
	b.cancel()
	<-b.done
	if n := b.pending.Load(); n > 0 {
		return fmt.Errorf("%d buffered messages dropped unsent", n)
	}
	return b.failed()
}

// Bsend sends data with the Buffered discipline (MPI's buffered send): it never waits
// for a receiver. If nothing this Sender buffered is still waiting and the kernel
// object has room, Bsend stores the message there with a non-blocking send before it
// returns, as TrySend does; otherwise it copies the message into this Sender's send
// buffer (WithSendBuffer slots), waiting only while the buffer is full, and returns,
// and a goroutine moves buffered messages to the kernel object in order. Messages
// reach the object in the order of their Bsend calls: none overtakes one that is
// buffered. A buffered message is lost if this process dies or Closes before it is
// flushed: Flush waits until everything buffered is stored. A failure of the direct
// send is returned at once (the message was not sent); a flush failure is returned by
// the next Bsend or Flush. Bsend does not allocate after its first call, which
// allocates the buffer and starts the goroutine.
func (s *Sender) Bsend(ctx context.Context, data []byte) error {
	if err := s.checkPayload("bsend", data); err != nil {
		return err
	}
	s.bsOnce.Do(func() {
		if !s.closed.Load() {
			s.bs.Store(newBsender(s.out, s.sendBuf, s.frameSize))
		}
	})
	b := s.bs.Load()
	if b == nil {
		return s.opErr("bsend", errClosedSender)
	}
	if err := b.failed(); err != nil {
		return s.opErr("bsend", err)
	}
	var i int
	select {
	case i = <-b.free:
	default:
		select {
		case i = <-b.free:
		case <-ctx.Done():
			return s.opErr("bsend", ctx.Err())
		case <-b.done:
			return s.opErr("bsend", errClosedSender)
		}
	}
	b.submit.Lock()
	n, err := wire.Encode(b.slots[i], wire.Frame{Kind: wire.KindData, Discipline: uint8(Buffered), Seq: s.seq.Add(1), Payload: data})
	queued := false
	if err == nil {
		queued, err = b.put(i, n)
	}
	b.submit.Unlock()
	if !queued {
		b.free <- i
	}
	return s.opErr("bsend", err)
}

// put stores the n-byte frame in slot i in the kernel object if nothing is buffered
// before it and the object has room, and otherwise hands the slot to the flusher,
// reporting that it did. The caller holds b.submit.
func (b *bsender) put(i, n int) (queued bool, err error) {
	// After a flush failure nothing more goes out, directly or not: a message sent
	// now would arrive after a gap. The flusher records a failure before it drops
	// pending, so once pending reads 0 the failure, if any, is there to see.
	if err := b.failed(); err != nil {
		return false, err
	}
	if b.pending.Load() == 0 {
		if err := b.failed(); err != nil {
			return false, err
		}
		err := b.out.trySend(b.slots[i][:n])
		if err == nil || !errors.Is(err, ipc.ErrWouldBlock) {
			return false, err
		}
	}
	b.lens[i] = n
	b.pending.Add(1)
	b.queue <- i // never blocks: it has room for every slot
	return true, nil
}

// Flush waits until every message Bsend buffered has been stored in the kernel object
// (or ctx ends), and returns the first flush failure, if any.
func (s *Sender) Flush(ctx context.Context) error {
	b := s.bs.Load()
	if b == nil {
		return nil
	}
	for b.pending.Load() > 0 {
		select {
		case <-b.drained:
		case <-ctx.Done():
			return s.opErr("flush", ctx.Err())
		case <-b.done:
			return s.opErr("flush", errClosedSender)
		}
	}
	return s.opErr("flush", b.failed())
}
