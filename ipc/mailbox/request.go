package mailbox

import (
	"context"
	"sync"
)

// Request is a send or receive started by Isend, Issend or Irecv (MPI's
// non-blocking calls). The operation runs in its own goroutine; the buffer given to
// it must not be touched until the Request completes.
type Request struct {
	done chan struct{}
	msg  Message
	err  error
}

func start(fn func() (Message, error)) *Request {
	r := &Request{done: make(chan struct{})}
	go func() {
		r.msg, r.err = fn()
		close(r.done)
	}()
	return r
}

// Wait waits until the operation completes and returns its result (the received
// Message for Irecv), or ctx's error if ctx ends first (the operation goes on; cancel
// the context given to Isend/Irecv to stop it).
func (r *Request) Wait(ctx context.Context) (Message, error) {
	select {
	case <-r.done:
		return r.msg, r.err
	case <-ctx.Done():
		return Message{}, ctx.Err()
	}
}

// Test reports whether the operation has completed and, if so, its result.
func (r *Request) Test() (done bool, m Message, err error) {
	select {
	case <-r.done:
		return true, r.msg, r.err
	default:
		return false, Message{}, nil
	}
}

// Isend starts Send (Receipt) and returns at once; Wait returns when the kernel object
// has stored the message.
func (s *Sender) Isend(ctx context.Context, data []byte) *Request {
	return start(func() (Message, error) { return Message{}, s.Send(ctx, data) })
}

// Issend starts Ssend (Delivery) and returns at once; Wait returns when a receiver has
// taken the message.
func (s *Sender) Issend(ctx context.Context, data []byte) *Request {
	return start(func() (Message, error) { return Message{}, s.Ssend(ctx, data) })
}

// Irecv starts Recv into buf and returns at once; Wait returns the Message.
func (r *Receiver) Irecv(ctx context.Context, buf []byte) *Request {
	return start(func() (Message, error) { return r.Recv(ctx, buf) })
}

// Notifier calls a handler for each message a Receiver gets (the queue vocabulary's
// Notify).
type Notifier struct {
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	err    error
}

// Notify installs fn as the handler for messages: a goroutine receives each message
// (taking it from the queue, as any receiver would) and calls fn with it and its
// payload, one at a time; the payload buffer is reused after fn returns. With the
// System V backend the goroutine holds an OS thread while it waits. Stop ends it.
func (r *Receiver) Notify(fn func(m Message, payload []byte)) *Notifier {
	ctx, cancel := context.WithCancel(context.Background())
	n := &Notifier{cancel: cancel, done: make(chan struct{})}
	buf := make([]byte, r.maxPayload)
	go func() {
		defer close(n.done)
		for {
			m, err := r.Recv(ctx, buf)
			if err != nil {
				if ctx.Err() == nil {
					n.err = err
				}
				return
			}
			fn(m, buf[:m.N])
		}
	}()
	return n
}

// Stop stops the Notifier and waits for its goroutine (not from inside fn). It
// returns the error that ended it early, if any (the Receiver was closed, say).
// Idempotent.
func (n *Notifier) Stop() error {
	n.once.Do(func() {
		n.cancel()
		<-n.done
	})
	return n.err
}
