package wait

import (
	"context"
	"errors"
	"os"
	"time"
)

// ViaDeadline runs io, one call that waits in the Go runtime poller and honours the
// descriptor's deadline, so that it also ends when ctx does: the earlier of ctx's
// deadline and user (the deadline the caller set, zero for none) is set with set, and
// cancellation moves it into the past. Afterwards user is restored — only once a
// cancellation's own update has landed, so that it cannot leave a stale deadline for
// the next call. A deadline that was ctx's, not user's, comes back as ctx.Err(), and
// only once ctx is done.
//
// With a context that can never end, callers should call io directly: this function
// allocates the cancellation callback.
func ViaDeadline(ctx context.Context, user time.Time, set func(time.Time) error, io func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dl, has := ctx.Deadline()
	if !has || (!user.IsZero() && user.Before(dl)) {
		dl = user
	}
	if err := set(dl); err != nil {
		return err
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = set(time.Unix(1, 0))
		close(fired)
	})
	err := io()
	if !stop() {
		<-fired
		_ = set(user)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return ctx.Err()
		}
		return err
	}
	_ = set(user)
	if errors.Is(err, os.ErrDeadlineExceeded) && (user.IsZero() || time.Now().Before(user)) {
		// The deadline was ctx's, and the descriptor's timer can fire just before
		// ctx's own: report it once ctx says so too, so that callers who check
		// ctx.Err() after an error see it.
		<-ctx.Done()
		return ctx.Err()
	}
	return err
}
