package inspect

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ipclab/ipclab/internal/table"
	"github.com/ipclab/ipclab/ipc"
)

// WriteJSON writes s as one indented JSON document in the form docs/inspect.md
// describes (schema SchemaVersion).
func WriteJSON(w io.Writer, s *Snapshot) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(s)
}

// ReadJSON reads a snapshot written by WriteJSON. It refuses a document of another
// schema version, which it could misread.
func ReadJSON(r io.Reader) (*Snapshot, error) {
	var s Snapshot
	d := json.NewDecoder(r)
	if err := d.Decode(&s); err != nil {
		return nil, ipc.Wrap("inspect", "read snapshot: "+err.Error(), ipc.ErrInvalid)
	}
	if s.Schema != SchemaVersion {
		return nil, ipc.Wrap("inspect", fmt.Sprintf("snapshot schema %d (this reader knows %d)", s.Schema, SchemaVersion), ipc.ErrInvalid)
	}
	return &s, nil
}

// TextOptions change how WriteTextWith lays a snapshot out.
type TextOptions struct {
	// Changes, when set, marks what changed since an earlier snapshot: a column
	// of "+" (new) and "~" (changed) before each row, and a list of what is gone.
	Changes *Changes
	// Color highlights the changed rows and the deadlocks with terminal escape
	// sequences.
	Color bool
	// MaxHolders is how many holders an object's row lists before "+N more"
	// (default 6).
	MaxHolders int
}

// WriteText writes s as readable tables: the objects, the blocked threads, the
// deadlocks with their paths, and what could not be read.
func WriteText(w io.Writer, s *Snapshot) error { return WriteTextWith(w, s, TextOptions{}) }

// WriteTextWith is WriteText with options.
func WriteTextWith(w io.Writer, s *Snapshot, o TextOptions) error {
	if o.MaxHolders <= 0 {
		o.MaxHolders = 6
	}
	ew := &errWriter{w: w}
	hi := func(on bool, text string) string {
		if on && o.Color {
			return "\x1b[1;7m" + text + "\x1b[0m"
		}
		return text
	}
	red := func(text string) string {
		if o.Color {
			return "\x1b[1;31m" + text + "\x1b[0m"
		}
		return text
	}
	ew.printf("IPC snapshot %s, took %s, %s, %s\n",
		s.Time.UTC().Format("2006-01-02 15:04:05 UTC"), s.Took.Round(time.Millisecond), scope(s), privilege(s))

	comm := map[int]string{}
	for _, p := range s.Processes {
		comm[p.PID] = p.Comm
	}

	// Objects.
	ew.printf("\nOBJECTS (%d)\n", len(s.Objects))
	if len(s.Objects) > 0 {
		var t table.Table
		mark := o.Changes != nil
		head := []string{"ID", "KIND", "NAME", "OWNER", "MODE", "QUEUED", "CAPACITY", "MSGS", "STATE", "HOLDERS"}
		if mark {
			head = append([]string{""}, head...)
		}
		t.Add(head...)
		rowOf := map[int]bool{}
		for i, ob := range s.Objects {
			cells := []string{ob.ID, ob.Kind, ob.Label(), owner(ob), mode(ob),
				queued(ob.Queued), capacity(ob), messages(ob), ob.Status(), holderList(ob, o.MaxHolders)}
			if mark {
				c := o.Changes.Objects[ob.ID]
				cells = append([]string{c.mark()}, cells...)
				rowOf[i] = c != Same
			}
			t.Add(cells...)
		}
		ew.lines(&t, func(i int, line string) string { return hi(i > 0 && rowOf[i-1], line) })
	}
	if o.Changes != nil && len(o.Changes.GoneObjects) > 0 {
		ew.printf("gone: %s\n", strings.Join(o.Changes.GoneObjects, " "))
	}

	// Waits.
	ew.printf("\nBLOCKED IN IPC CALLS (%d %s)\n", len(s.Waits), plural(len(s.Waits), "thread", "threads"))
	if len(s.Waits) > 0 {
		var t table.Table
		mark := o.Changes != nil
		head := []string{"PID", "TID", "COMM", "CALL", "FD", "OBJECT", "WAITS FOR", "STATE", "WAKERS"}
		if mark {
			head = append([]string{""}, head...)
		}
		t.Add(head...)
		rowOf := map[int]bool{}
		for i, wt := range s.Waits {
			fd := "-"
			if wt.FD >= 0 {
				fd = strconv.Itoa(wt.FD)
			}
			object := wt.Object
			if object == "" {
				object = "?"
			}
			call := wt.Syscall
			if wt.Timed {
				call += " (timed)"
			}
			cells := []string{strconv.Itoa(wt.PID), strconv.Itoa(wt.TID), wt.Comm, call, fd, object, wt.For, dash(wt.State), pids(wt.Wakers, comm)}
			if mark {
				c := o.Changes.Waits[waitKey(wt)]
				cells = append([]string{c.mark()}, cells...)
				rowOf[i] = c != Same
			}
			t.Add(cells...)
		}
		ew.lines(&t, func(i int, line string) string { return hi(i > 0 && rowOf[i-1], line) })
	}
	if o.Changes != nil && len(o.Changes.GoneWaits) > 0 {
		ew.printf("no longer blocked: %s\n", strings.Join(o.Changes.GoneWaits, " "))
	}

	// Deadlocks.
	if len(s.Deadlocks) == 0 {
		ew.printf("\nDEADLOCKS: none\n")
	} else {
		ew.printf("\n%s\n", red(fmt.Sprintf("DEADLOCKS (%d)", len(s.Deadlocks))))
		for i, d := range s.Deadlocks {
			ew.printf("%d. %s\n", i+1, red(d.String()))
		}
	}

	if len(s.Unreadable) > 0 {
		ew.printf("\nCOULD NOT READ (%d)\n", len(s.Unreadable))
		for _, u := range s.Unreadable {
			ew.printf("  %s: %s\n", u.What, u.Err)
		}
	}
	return ew.err
}

// String describes the deadlock as its cycle: "812 (a) read pipe:1 → 813 (b)
// msgrcv msg:2 → 812".
func (d Deadlock) String() string {
	if len(d.Path) == 0 {
		return "(empty)"
	}
	var b strings.Builder
	for _, st := range d.Path {
		fmt.Fprintf(&b, "%d (%s) %s %s → ", st.PID, st.Comm, st.Syscall, st.Object)
	}
	b.WriteString(strconv.Itoa(d.Path[0].PID))
	return b.String()
}

// String describes the holder as "PID/FD" and its access: "812/3r".
func (h Holder) String() string { return strconv.Itoa(h.PID) + "/" + strconv.Itoa(h.FD) + h.Access }

// Label is what names o for a reader: its name, or an inet socket's addresses, or
// for an anonymous object nothing.
func (o Object) Label() string {
	switch {
	case o.Local != "" && o.Remote != "":
		return o.Local + " → " + o.Remote
	case o.Local != "":
		return o.Local
	}
	return o.Name
}

// Status is o's state in a few words: a socket's state and peer, a semaphore
// set's values, a segment's attachments, a door's server and clients, a mailbox
// entry's owner and liveness.
func (o Object) Status() string {
	var parts []string
	if o.State != "" {
		parts = append(parts, o.State)
	}
	if o.Pending > 0 {
		parts = append(parts, fmt.Sprintf("%d pending", o.Pending))
	}
	if o.Peer != "" {
		parts = append(parts, "peer "+o.Peer)
	}
	if o.Kind == KindSysVSegment {
		parts = append(parts, fmt.Sprintf("%d attached", o.Attached))
	}
	if len(o.Semaphores) > 0 {
		vals := make([]string, len(o.Semaphores))
		for i, s := range o.Semaphores {
			vals[i] = strconv.Itoa(s.Value)
		}
		parts = append(parts, "values "+strings.Join(vals, ","))
	}
	if o.NotifyPID > 0 {
		parts = append(parts, fmt.Sprintf("notify %d", o.NotifyPID))
	}
	if d := o.Door; d != nil {
		parts = append(parts, fmt.Sprintf("server %d", d.ServerPID))
		if len(d.Clients) > 0 {
			parts = append(parts, "clients "+pids(d.Clients, nil))
		}
	}
	if m := o.Mailbox; m != nil {
		live := "stale"
		if m.Live {
			live = "live"
		}
		p := "transient"
		if m.Persistent {
			p = "persistent"
		}
		parts = append(parts, fmt.Sprintf("%s %s on %s, owner %d (%s), %s", p, m.Kind, m.Backend, m.OwnerPID, live, dash(m.ObjectID)))
	}
	return dash(strings.Join(parts, ", "))
}

// Summary describes the wait in a line: "812/812 (a) read fd 3 pipe:1: data, empty".
func (w Wait) Summary() string {
	obj := w.Object
	if obj == "" {
		obj = "?"
	}
	s := fmt.Sprintf("%d/%d (%s) %s", w.PID, w.TID, w.Comm, w.Syscall)
	if w.FD >= 0 {
		s += " fd " + strconv.Itoa(w.FD)
	}
	s += " " + obj + ": " + w.For
	if w.State != "" {
		s += ", " + w.State
	}
	return s
}

// FormatBytes writes n bytes briefly: "512 B", "4 KiB", "1.5 MiB".
func FormatBytes(n int64) string {
	const k = 1024
	switch {
	case n < 0:
		return "?"
	case n < k:
		return strconv.FormatInt(n, 10) + " B"
	}
	units := []string{"KiB", "MiB", "GiB", "TiB"}
	v := float64(n) / k
	u := 0
	for v >= k && u < len(units)-1 {
		v /= k
		u++
	}
	if v == float64(int64(v)) {
		return strconv.FormatInt(int64(v), 10) + " " + units[u]
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + units[u]
}

func scope(s *Snapshot) string {
	if len(s.PIDs) == 0 {
		return "whole machine"
	}
	return "pids " + pids(s.PIDs, nil)
}

func privilege(s *Snapshot) string {
	if s.Privileged {
		return "privileged (every process readable)"
	}
	return fmt.Sprintf("unprivileged (uid %d: other users' processes not seen)", os.Geteuid())
}

func owner(o Object) string {
	if o.UID < 0 {
		return "-"
	}
	if o.GID < 0 {
		return strconv.Itoa(o.UID)
	}
	return strconv.Itoa(o.UID) + ":" + strconv.Itoa(o.GID)
}

func mode(o Object) string {
	if o.Mode == 0 {
		return "-"
	}
	return fmt.Sprintf("%04o", o.Mode)
}

func queued(n int64) string { return FormatBytes(n) }

func capacity(o Object) string {
	if o.Capacity <= 0 {
		return "-"
	}
	s := FormatBytes(o.Capacity)
	if o.Queued > 0 && o.Kind != KindSysVSegment {
		s += fmt.Sprintf(" (%d%%)", o.Queued*100/o.Capacity)
	}
	return s
}

func messages(o Object) string {
	switch o.Kind {
	case KindSysVQueue, KindPosixMQ:
		if o.Messages < 0 {
			return "?"
		}
		return strconv.FormatInt(o.Messages, 10)
	}
	return "-"
}

func holderList(o Object, most int) string {
	if len(o.Holders) == 0 {
		return "-"
	}
	var parts []string
	for i, h := range o.Holders {
		if i == most {
			parts = append(parts, fmt.Sprintf("+%d more", len(o.Holders)-most))
			break
		}
		parts = append(parts, h.String())
	}
	return strings.Join(parts, " ")
}

// pids lists pids, each with its command when comm knows it.
func pids(list []int, comm map[int]string) string {
	if len(list) == 0 {
		return "-"
	}
	parts := make([]string, len(list))
	for i, p := range list {
		parts[i] = strconv.Itoa(p)
		if c := comm[p]; c != "" {
			parts[i] += " (" + c + ")"
		}
	}
	return strings.Join(parts, ", ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// counted gives n and the noun: "1 deadlock", "2 deadlocks".
func counted(n int, one, many string) string {
	return strconv.Itoa(n) + " " + plural(n, one, many)
}

// errWriter keeps the first write error and stops writing after it.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

// lines writes t's text, passing each line (0 is the header) through decorate.
func (e *errWriter) lines(t *table.Table, decorate func(i int, line string) string) {
	var b strings.Builder
	if err := t.WriteText(&b); err != nil {
		e.err = err
		return
	}
	for i, line := range slices.Collect(strings.Lines(b.String())) {
		e.printf("%s\n", decorate(i, strings.TrimSuffix(line, "\n")))
	}
}
