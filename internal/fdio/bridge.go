package fdio

import (
	"context"
	"sync"
	"time"

	"github.com/ipclab/ipclab/internal/wait"
)

// bridge is how a Poller-mode call in one direction honours its context: the runtime
// poller knows only the file's deadline, so the call puts the earlier of its
// context's deadline and the handle's own there, and cancellation moves it into the
// past. SetDeadline goes through the same state under the same lock, so that a
// handle deadline set while a call waits neither undoes the call's cancellation nor
// drops its context's deadline. The direction's turn makes the call the only one.
type bridge struct {
	mu        sync.Mutex
	active    bool      // a call waits under its context
	ctxDl     time.Time // its context's deadline (zero: none)
	cancelled bool      // its context has ended
	gen       uint64    // which call: a cancellation that fires late finds another
}

// applyDeadline puts on the file the deadline direction d waits under now. It runs
// under d.br.mu.
func (f *FD) applyDeadline(d *dir) error {
	eff := f.dl.Get(d.write)
	if b := &d.br; b.active {
		switch {
		case b.cancelled:
			eff = time.Unix(1, 0)
		case !b.ctxDl.IsZero() && (eff.IsZero() || b.ctxDl.Before(eff)):
			eff = b.ctxDl
		}
	}
	if d.write {
		return f.rawErr(f.file.SetWriteDeadline(eff))
	}
	return f.rawErr(f.file.SetReadDeadline(eff))
}

// setFileDeadline is SetDeadline's part in Poller mode: the handle's deadline has
// changed; the file's follows it, as the bridge says.
func (f *FD) setFileDeadline(d *dir) error {
	d.br.mu.Lock()
	defer d.br.mu.Unlock()
	return f.applyDeadline(d)
}

// viaDeadline runs io, a wait in the runtime poller on f's file in direction d,
// under ctx as well as the handle's deadline. A deadline that was ctx's, not the
// handle's, comes back as ctx.Err(). It allocates (the cancellation callback):
// callers with a context that can never end call io directly.
func (f *FD) viaDeadline(ctx context.Context, d *dir, io func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ctxDl, _ := ctx.Deadline()
	b := &d.br
	b.mu.Lock()
	b.gen++
	gen := b.gen
	b.active, b.ctxDl, b.cancelled = true, ctxDl, false
	err := f.applyDeadline(d)
	b.mu.Unlock()
	if err == nil {
		stop := context.AfterFunc(ctx, func() {
			b.mu.Lock()
			if b.gen == gen && b.active {
				b.cancelled = true
				_ = f.applyDeadline(d)
			}
			b.mu.Unlock()
		})
		err = io()
		stop()
	}
	b.mu.Lock()
	b.active, b.cancelled = false, false
	_ = f.applyDeadline(d) // the handle's own again
	b.mu.Unlock()
	return wait.DeadlineErr(ctx, err, f.dl.Get(d.write))
}
