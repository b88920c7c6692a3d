package main

import (
	"bytes"
	"context"
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
