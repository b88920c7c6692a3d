package sockets

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ipclab/ipclab/internal/ipctest"
)

func TestMain(m *testing.M) { ipctest.Main(m) }

// privateDir returns a fresh 0700 directory for socket files.
func privateDir(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	if err := os.Chmod(d, 0o700); err != nil {
		t.Fatal(err)
	}
	return d
}

func sockPath(t testing.TB, name string) string { return filepath.Join(privateDir(t), name) }

// streamPair, seqPair and dgramPair make pairs closed at the end of the test.
func streamPair(t testing.TB, opts ...Option) (*StreamConn, *StreamConn) {
	t.Helper()
	a, b, err := StreamPair(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func seqPair(t testing.TB, opts ...Option) (*SeqpacketConn, *SeqpacketConn) {
	t.Helper()
	a, b, err := SeqpacketPair(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func dgramPair(t testing.TB, opts ...Option) (*DgramConn, *DgramConn) {
	t.Helper()
	a, b, err := DgramPair(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

var bg = context.Background()

// startHelper is ipctest.Start without the race detector's one-second sleep at
// helper exit.
func startHelper(t testing.TB, name string, opts ...ipctest.Option) *ipctest.Proc {
	t.Helper()
	return ipctest.Start(t, name, append(opts, ipctest.WithEnv("GORACE=atexit_sleep_ms=0"))...)
}
