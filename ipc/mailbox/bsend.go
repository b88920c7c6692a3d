package mailbox

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// bsender is a Sender's send buffer: preallocated frame slots that Bsend fills and a
// goroutine flushes to the kernel object with blocking sends, in order.
type bsender struct {
	out     carrier
	slots   [][]byte
	lens    []int
	free    chan int
	queue   chan int
	drained chan struct{} // a value after each flushed message
	pending atomic.Int64
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}

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

// Bsend sends data with the Buffered discipline (MPI's buffered send): it copies the
// message into this Sender's send buffer (WithSendBuffer slots), waiting only while
// the buffer is full, and returns; a goroutine moves buffered messages to the kernel
// object in order. The message is lost if this process dies or Closes before it is
// flushed: Flush waits until everything buffered is stored. A flush failure is
// returned by the next Bsend or Flush. Bsend does not allocate after its first call,
// which allocates the buffer and starts the goroutine.
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
	n, err := EncodeFrame(b.slots[i], Frame{Kind: KindData, Discipline: Buffered, Seq: s.seq.Add(1), Payload: data})
	if err != nil {
		b.free <- i
		return s.opErr("bsend", err)
	}
	b.lens[i] = n
	b.pending.Add(1)
	b.queue <- i
	return nil
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
