package mailbox_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc/mailbox"
)

func TestMain(m *testing.M) { ipctest.Main(m) }

// start is ipctest.Start without the race detector's one-second pause at exit.
func start(t testing.TB, name string, opts ...ipctest.Option) *ipctest.Proc {
	t.Helper()
	env := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	return ipctest.Start(t, name, append([]ipctest.Option{ipctest.WithEnv("GORACE=" + env)}, opts...)...)
}

// newNS returns a namespace in a fresh private directory and checks at the end of the
// test that nothing is left in it.
func newNS(t testing.TB) *mailbox.Namespace {
	t.Helper()
	ns, err := mailbox.Open(filepath.Join(t.TempDir(), "ns"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ents, _ := os.ReadDir(ns.Dir())
		for _, e := range ents {
			t.Errorf("left in the namespace: %s", e.Name())
		}
	})
	return ns
}

// helperNS opens the namespace a helper was given as its first argument.
func helperNS(args []string) *mailbox.Namespace {
	ns, err := mailbox.Open(args[0])
	if err != nil {
		panic(err)
	}
	return ns
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func check(err error) {
	if err != nil {
		panic(err)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// hctx is a helper's context: a stuck helper is killed by its test.
func hctx() context.Context { return context.Background() }

func wantErr(t testing.TB, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got %v, want an error matching %v", what, err, target)
	}
}

// backends runs f for each backend.
func backends(t *testing.T, f func(t *testing.T, b mailbox.Backend)) {
	for _, b := range []mailbox.Backend{mailbox.PosixMQ, mailbox.SysV} {
		t.Run(b.String(), func(t *testing.T) { f(t, b) })
	}
}
