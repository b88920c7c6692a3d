package main

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipclab/ipclab/internal/ipctest"
	"github.com/ipclab/ipclab/ipc"
	"github.com/ipclab/ipclab/ipc/pipe"
)

// pipe-loop moves 64-byte messages through a pipe until it is killed.
var _ = ipctest.Helper("pipe-loop", func([]string) int {
	r, w, err := pipe.New(pipe.WithWait(ipc.WaitKernel))
	if err != nil {
		return 1
	}
	buf := make([]byte, 64)
	ipctest.Signal()
	for {
		if _, err := w.Write(buf); err != nil {
			return 1
		}
		if _, err := r.ReadFull(context.Background(), buf); err != nil {
			return 1
		}
		time.Sleep(100 * time.Microsecond)
	}
})

func TestTrace(t *testing.T) {
	ipctest.RequireRoot(t)
	p := ipctest.Start(t, "pipe-loop")
	p.Await()
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"trace", "-p", strconv.Itoa(p.Pid()), "-interval", "200ms", "-count", "2", "-format", "table"}, &out, &errOut)
	if err != nil && bytes.Contains(errOut.Bytes(), []byte("CAP_BPF")) {
		t.Skip("eBPF probes need CAP_BPF and CAP_PERFMON:", err)
	}
	require.NoError(t, err, errOut.String())
	assert.Contains(t, errOut.String(), "tracing pid "+strconv.Itoa(p.Pid()))
	assert.Contains(t, out.String(), "pipe read")
	assert.Contains(t, out.String(), "pipe write")
	assert.Contains(t, out.String(), "=== total")

	_, _, err = runCLI(t, "trace")
	var ue usageError
	assert.ErrorAs(t, err, &ue, "trace without -p")
	_, _, err = runCLI(t, "trace", "-p", "1", "-format", "xml")
	assert.ErrorAs(t, err, &ue)
}

// alive-check exits 0 when alive reports that the pid in its argument exists.
var _ = ipctest.Helper("alive-check", func(args []string) int {
	pid, err := strconv.Atoi(args[0])
	if err != nil || !alive(pid) {
		return 1
	}
	return 0
})

// TestAliveOtherUser: a process of another user exists although signal 0 cannot reach
// it (EPERM): trace must not take it for gone.
func TestAliveOtherUser(t *testing.T) {
	ipctest.RequireRoot(t)
	ipctest.Start(t, "alive-check", ipctest.AsUser(ipctest.Nobody), ipctest.WithArgs(strconv.Itoa(os.Getpid()))).MustSucceed()
	assert.False(t, alive(procInt(t, "/proc/sys/kernel/pid_max")+1))
}
