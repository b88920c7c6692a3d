package sockets_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ipclab/ipclab/sockets"
)

// TestNoStaleDeadlineAfterCancel: a ReadContext whose context is cancelled just as
// data arrives must not leave the cancellation's past deadline for the next call.
func TestNoStaleDeadlineAfterCancel(t *testing.T) {
	a, b, err := sockets.StreamPair()
	require.NoError(t, err)
	defer a.Close()
	defer b.Close()
	buf := make([]byte, 1)
	for i := 0; i < 2000; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			_, _ = b.Write([]byte("x"))
			cancel()
		}()
		n, _ := a.ReadContext(ctx, buf)
		cancel()
		_, err := b.Write([]byte("y"))
		require.NoError(t, err)
		for got, want := 0, 2-n; got < want; {
			m, err := a.ReadContext(context.Background(), buf)
			require.NoError(t, err, "iteration %d: a stale deadline", i)
			got += m
		}
	}
}
