package doors

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ipclab/ipclab/internal/ipctest"
)

func TestMain(m *testing.M) {
	countOwnReplies = true
	ipctest.Main(m)
}

var bg = context.Background()

// doorDir returns a fresh directory for door paths: ours, 0711 so that an
// unprivileged helper can reach a socket in it but not list or write it.
func doorDir(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	if err := os.Chmod(d, 0o711); err != nil {
		t.Fatal(err)
	}
	// The parents of t.TempDir are 0700 when made by root: open them for search.
	for p := filepath.Dir(d); p != os.TempDir() && p != "/" && len(p) > len(os.TempDir()); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// newDoor creates a door closed at the end of the test.
func newDoor(t testing.TB, h Handler, opts ...Option) *Door {
	t.Helper()
	d, err := New(h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// attach creates a door attached in a fresh directory and returns its path.
func attach(t testing.TB, h Handler, opts ...Option) (*Door, string) {
	t.Helper()
	d := newDoor(t, h, opts...)
	path := filepath.Join(doorDir(t), "door")
	if err := d.Attach(path); err != nil {
		t.Fatal(err)
	}
	return d, path
}

func echo(ctx context.Context, c *Call) (*Reply, error) {
	closeFds(c.Fds)
	return &Reply{Data: append([]byte(nil), c.Data...)}, nil
}

func open(t testing.TB, path string, opts ...ClientOption) *Client {
	t.Helper()
	c, err := Open(bg, path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

// helperFail prints why a helper failed and returns its exit code.
func helperFail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	return 1
}

// echoSizes calls the door with each size and checks the echo; every other call
// goes through CallBuf with no room for descriptors (the client's fast path for
// small arguments).
func echoSizes(c *Client, sizes ...int) error {
	for i, n := range sizes {
		want := pattern(n, byte(i))
		var got []byte
		var fds []int
		var err error
		if i%2 == 0 {
			got, fds, err = c.Call(bg, want, nil)
		} else {
			got, _, err = c.CallBuf(bg, want, nil, nil, nil)
		}
		if err != nil {
			return fmt.Errorf("call of %d bytes: %w", n, err)
		}
		if len(fds) != 0 || !bytes.Equal(got, want) {
			return fmt.Errorf("call of %d bytes: echo of %d bytes (%d fds) differs", n, len(got), len(fds))
		}
	}
	return nil
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

func within(t testing.TB, d time.Duration, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("%s: not within %v", what, d)
	}
}
