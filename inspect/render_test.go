package inspect

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipclab/ipclab/ipc"
)

func ptr[T any](v T) *T { return &v }

// sample is a snapshot of a small machine: a two-process deadlock over two pipes, a
// full System V queue, a semaphore set, a door and a stale mailbox entry.
func sample() *Snapshot {
	return &Snapshot{
		Schema: SchemaVersion, Time: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC), Took: 112 * time.Millisecond,
		Privileged: true,
		Processes: []Process{
			{PID: 812, Comm: "producer", Threads: 1},
			{PID: 813, Comm: "consumer", Threads: 1},
		},
		Objects: []Object{
			{ID: "pipe:100", Kind: KindPipe, Inode: 100, UID: 0, GID: 0, Mode: 0o600, Queued: 0, Capacity: 65536,
				Holders: []Holder{{812, 3, "r"}, {813, 4, "w"}}},
			{ID: "pipe:101", Kind: KindPipe, Inode: 101, UID: 0, GID: 0, Mode: 0o600, Queued: 0, Capacity: 65536,
				Holders: []Holder{{812, 4, "w"}, {813, 3, "r"}}},
			{ID: "msg:32769", Kind: KindSysVQueue, Name: "0x0000162e", Key: ptr(int32(0x162e)), SysVID: ptr(32769),
				UID: 1000, GID: 1000, Mode: 0o600, Queued: 16384, Capacity: 16384, Messages: 256, LastSendPID: 812},
			{ID: "sem:0", Kind: KindSysVSemSet, SysVID: ptr(0), UID: 0, GID: 0, Mode: 0o600,
				Semaphores: []Semaphore{{Value: 0, PID: 812}, {Value: 1, PID: 813}}},
			{ID: "door:7", Kind: KindDoor, Name: "/run/ipclab/echo.door", State: "listen", UID: 0, GID: -1,
				Door: &Door{ServerPID: 900, Clients: []int{901}}},
			{ID: "mailbox:jobs", Kind: KindMailbox, Name: "jobs", UID: 0, GID: 0, Mode: 0o600,
				Mailbox: &MailboxEntry{Dir: "/run/ipclab", Kind: "mailbox", Backend: "posixmq", Object: "/ipclab.jobs", OwnerPID: 4242}},
		},
		Waits: []Wait{
			{PID: 812, TID: 812, Comm: "producer", Syscall: "read", FD: 3, Object: "pipe:100", For: "data", State: "empty", Wakers: []int{813}},
			{PID: 813, TID: 813, Comm: "consumer", Syscall: "read", FD: 3, Object: "pipe:101", For: "data", State: "empty", Wakers: []int{812}},
		},
		Deadlocks: []Deadlock{{Path: []Step{
			{PID: 812, TID: 812, Comm: "producer", Syscall: "read", Object: "pipe:100"},
			{PID: 813, TID: 813, Comm: "consumer", Syscall: "read", Object: "pipe:101"},
		}}},
		Unreadable: []Unreadable{{What: "/proc/1", Err: "permission denied"}},
	}
}

func TestWriteText(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, WriteText(&b, sample()))
	out := b.String()
	for _, want := range []string{
		"IPC snapshot 2026-12-05 10:00:00 UTC, took 112ms, whole machine, privileged",
		"OBJECTS (6)",
		"BLOCKED IN IPC CALLS (2 threads)",
		"DEADLOCKS (1)\n1. 812 (producer) read pipe:100 → 813 (consumer) read pipe:101 → 812\n",
		"COULD NOT READ (1)\n  /proc/1: permission denied\n",
	} {
		assert.Contains(t, out, want)
	}
	// One row per object and per wait, with their columns.
	row := func(prefix string) string {
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
		t.Fatalf("no row %q in\n%s", prefix, out)
		return ""
	}
	assert.Regexp(t, `^pipe:100\s+pipe\s+0:0\s+0600\s+0 B\s+64 KiB\s+-\s+-\s+812/3r 813/4w$`, row("pipe:100 "))
	assert.Regexp(t, `^msg:32769\s+sysv-msg\s+0x0000162e\s+1000:1000\s+0600\s+16 KiB\s+16 KiB \(100%\)\s+256\s+-\s+-$`, row("msg:32769 "))
	assert.Contains(t, row("sem:0 "), "values 0,1")
	assert.Contains(t, row("door:7 "), "listen, server 900, clients 901")
	assert.Contains(t, row("mailbox:jobs "), "transient mailbox on posixmq, owner 4242 (stale), -")
	assert.Regexp(t, `^812\s+812\s+producer\s+read\s+3\s+pipe:100\s+data\s+empty\s+813 \(consumer\)$`, row("812 "))
	assert.NotContains(t, out, "\x1b[", "no escapes without Color")

	var c bytes.Buffer
	require.NoError(t, WriteTextWith(&c, sample(), TextOptions{Color: true}))
	assert.Contains(t, c.String(), "\x1b[1;31mDEADLOCKS (1)\x1b[0m")
}

func TestWriteTextEmpty(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, WriteText(&b, &Snapshot{Schema: SchemaVersion, PIDs: []int{5}}))
	assert.Contains(t, b.String(), "pids 5")
	assert.Contains(t, b.String(), "OBJECTS (0)\n\nBLOCKED IN IPC CALLS (0 threads)\n\nDEADLOCKS: none\n")
	assert.Contains(t, b.String(), "unprivileged")
}

func TestJSONRoundTrip(t *testing.T) {
	var b bytes.Buffer
	s := sample()
	require.NoError(t, WriteJSON(&b, s))
	back, err := ReadJSON(bytes.NewReader(b.Bytes()))
	require.NoError(t, err)
	assert.Equal(t, s, back)

	// The documented keys (docs/inspect.md) are there, and id 0 is not dropped.
	var raw map[string]any
	require.NoError(t, json.Unmarshal(b.Bytes(), &raw))
	for _, k := range []string{"schema", "time", "took_ns", "privileged", "processes", "objects", "waits", "deadlocks", "unreadable"} {
		assert.Contains(t, raw, k)
	}
	sem := raw["objects"].([]any)[3].(map[string]any)
	assert.Equal(t, 0.0, sem["sysv_id"])

	// Another schema, or not JSON at all, is refused.
	_, err = ReadJSON(strings.NewReader(`{"schema": 2}`))
	assert.ErrorIs(t, err, ipc.ErrInvalid)
	assert.ErrorContains(t, err, "schema 2")
	_, err = ReadJSON(strings.NewReader(`{`))
	var oe *ipc.OpError
	assert.True(t, errors.As(err, &oe), "%T", err)
}

func TestDiff(t *testing.T) {
	a, b := sample(), sample()
	b.Objects[2].Messages, b.Objects[2].Queued = 255, 16320 // one message read
	b.Objects = append(b.Objects[:1], b.Objects[2:]...)     // pipe:101 gone
	b.Objects = append(b.Objects, Object{ID: "fifo:9", Kind: KindFIFO, Name: "/tmp/f"})
	b.Waits = b.Waits[1:] // 812 no longer waits
	b.Waits[0].State = "1 queued"

	c := Diff(a, b)
	assert.True(t, c.Any())
	assert.Equal(t, map[string]Change{
		"pipe:100": Same, "msg:32769": Changed, "sem:0": Same, "door:7": Same, "mailbox:jobs": Same, "fifo:9": New,
	}, c.Objects)
	assert.Equal(t, []string{"pipe:101"}, c.GoneObjects)
	assert.Equal(t, map[string]Change{"813/813": Changed}, c.Waits)
	assert.Equal(t, []string{"812/812"}, c.GoneWaits)
	assert.False(t, Diff(a, sample()).Any())

	var out bytes.Buffer
	require.NoError(t, WriteTextWith(&out, b, TextOptions{Changes: c}))
	text := out.String()
	assert.Regexp(t, `(?m)^~  msg:32769 `, text)
	assert.Regexp(t, `(?m)^\+  fifo:9 `, text)
	assert.Regexp(t, `(?m)^   pipe:100 `, text)
	assert.Contains(t, text, "gone: pipe:101\n")
	assert.Regexp(t, `(?m)^~  813 `, text)
	assert.Contains(t, text, "no longer blocked: 812/812\n")

	out.Reset()
	require.NoError(t, WriteTextWith(&out, b, TextOptions{Changes: c, Color: true}))
	assert.Contains(t, out.String(), "\x1b[1;7m+  fifo:9")
	assert.NotContains(t, out.String(), "\x1b[1;7m   pipe:100")
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{
		-1: "?", 0: "0 B", 1023: "1023 B", 1024: "1 KiB", 1536: "1.5 KiB", 65536: "64 KiB",
		1 << 20: "1 MiB", 3 << 29: "1.5 GiB",
	} {
		assert.Equal(t, want, FormatBytes(n), "%d", n)
	}
}

func TestCompareIDs(t *testing.T) {
	ids := []string{"pipe:1000", "msg:5", "pipe:999", "mq:/b", "mq:/a", "tcp:127.0.0.1:1->127.0.0.1:2", "tcp:42"}
	sortIDs(ids)
	assert.Equal(t, []string{"mq:/a", "mq:/b", "msg:5", "pipe:999", "pipe:1000", "tcp:42", "tcp:127.0.0.1:1->127.0.0.1:2"}, ids)
}

func sortIDs(ids []string) {
	for i := range ids {
		for j := i + 1; j < len(ids); j++ {
			if compareIDs(ids[j], ids[i]) < 0 {
				ids[i], ids[j] = ids[j], ids[i]
			}
		}
	}
}

func ExampleWriteText() {
	s := &Snapshot{
		Schema: SchemaVersion, Time: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC), Took: 40 * time.Millisecond,
		Privileged: true, PIDs: []int{812, 813},
		Objects: []Object{
			{ID: "pipe:100", Kind: KindPipe, Mode: 0o600, Capacity: 65536, Holders: []Holder{{812, 3, "r"}, {813, 4, "w"}}},
			{ID: "pipe:101", Kind: KindPipe, Mode: 0o600, Capacity: 65536, Holders: []Holder{{812, 4, "w"}, {813, 3, "r"}}},
		},
		Waits: []Wait{
			{PID: 812, TID: 812, Comm: "a", Syscall: "read", FD: 3, Object: "pipe:100", For: "data", State: "empty", Wakers: []int{813}},
			{PID: 813, TID: 813, Comm: "b", Syscall: "read", FD: 3, Object: "pipe:101", For: "data", State: "empty", Wakers: []int{812}},
		},
		Deadlocks: []Deadlock{{Path: []Step{
			{PID: 812, TID: 812, Comm: "a", Syscall: "read", Object: "pipe:100"},
			{PID: 813, TID: 813, Comm: "b", Syscall: "read", Object: "pipe:101"},
		}}},
	}
	WriteText(os.Stdout, s)
	// Output:
	// IPC snapshot 2026-12-05 10:00:00 UTC, took 40ms, pids 812, 813, privileged (every process readable)
	//
	// OBJECTS (2)
	// ID        KIND  NAME  OWNER  MODE  QUEUED  CAPACITY  MSGS  STATE  HOLDERS
	// pipe:100  pipe        0:0    0600  0 B     64 KiB    -     -      812/3r 813/4w
	// pipe:101  pipe        0:0    0600  0 B     64 KiB    -     -      812/4w 813/3r
	//
	// BLOCKED IN IPC CALLS (2 threads)
	// PID  TID  COMM  CALL  FD  OBJECT    WAITS FOR  STATE  WAKERS
	// 812  812  a     read  3   pipe:100  data       empty  813
	// 813  813  b     read  3   pipe:101  data       empty  812
	//
	// DEADLOCKS (1)
	// 1. 812 (a) read pipe:100 → 813 (b) read pipe:101 → 812
}
