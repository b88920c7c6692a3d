package report

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/ipclab/ipclab/inspect"
)

// A Snapshot is an inspect snapshot shown in a report under a name (by default
// its file's name).
type Snapshot struct {
	Name string
	*inspect.Snapshot
}

// LoadSnapshot reads a snapshot written by ipcbench inspect -json.
func LoadSnapshot(path string) (Snapshot, error) {
	name, s, err := loadFile(path, inspect.ReadJSON)
	return Snapshot{Name: name, Snapshot: s}, err
}

// snapshotSection shows each snapshot: what it saw, its deadlocks, its wait-for
// graph (inspect.WriteSVG) and its waits.
func snapshotSection(snaps []Snapshot) (string, error) {
	var b strings.Builder
	for i, s := range snaps {
		name := s.Name
		if name == "" {
			name = "snapshot " + strconv.Itoa(i+1)
		}
		fmt.Fprintf(&b, "<h3 id=\"snapshot-%d\">%s</h3>\n", i+1, esc(name))
		who := "unprivileged: only its own user's processes"
		if s.Privileged {
			who = "privileged: every process"
		}
		scope := "the whole machine"
		if len(s.PIDs) > 0 {
			ps := make([]string, len(s.PIDs))
			for j, p := range s.PIDs {
				ps[j] = strconv.Itoa(p)
			}
			scope = "pid " + strings.Join(ps, ", ")
		}
		fmt.Fprintf(&b, "<p class=\"sub\">Taken %s in %s, of %s (%s): %s, %s, %s.</p>\n",
			esc(s.Time.UTC().Format("2006-01-02 15:04:05 UTC")), esc(s.Took.Round(100_000).String()), esc(scope), esc(who),
			counted(len(s.Objects), "object", "objects"), counted(len(s.Waits), "thread waiting", "threads waiting"),
			counted(len(s.Deadlocks), "deadlock", "deadlocks"))

		if len(s.Deadlocks) > 0 {
			b.WriteString("<p><strong>Deadlocks</strong> (each a cycle of waits that nothing outside it can break):</p>\n<ol class=\"deadlocks\">\n")
			for _, d := range s.Deadlocks {
				fmt.Fprintf(&b, "<li><code>%s</code></li>\n", esc(d.String()))
			}
			b.WriteString("</ol>\n")
		}

		var svg strings.Builder
		if err := inspect.WriteSVG(&svg, s.Snapshot); err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		if len(s.Waits) > 0 {
			b.WriteString(svg.String())
		} else {
			b.WriteString("<p class=\"none\">No thread was waiting in an IPC call: no wait-for graph to draw.</p>\n")
		}

		if len(s.Waits) > 0 {
			b.WriteString("<table class=\"waits\">\n<tr><th>pid/tid</th><th>command</th><th>call</th><th>object</th><th>waits for</th><th>state</th><th>can wake it</th></tr>\n")
			for _, w := range s.Waits {
				wakers := make([]string, len(w.Wakers))
				for j, p := range w.Wakers {
					wakers[j] = strconv.Itoa(p)
				}
				call := w.Syscall
				if w.FD >= 0 {
					call += " fd " + strconv.Itoa(w.FD)
				}
				if w.Timed {
					call += " (timed)"
				}
				fmt.Fprintf(&b, "<tr><td>%d/%d</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
					w.PID, w.TID, esc(w.Comm), esc(call), esc(dash(w.Object)), esc(w.For), esc(dash(w.State)), esc(dash(strings.Join(wakers, " "))))
			}
			b.WriteString("</table>\n")
		}

		b.WriteString(objectCounts(s.Snapshot))
		if len(s.Unreadable) > 0 {
			fmt.Fprintf(&b, "<details><summary>%s could not be read</summary>\n<ul>\n", counted(len(s.Unreadable), "thing", "things"))
			for _, u := range s.Unreadable {
				fmt.Fprintf(&b, "<li>%s: %s</li>\n", esc(u.What), esc(u.Err))
			}
			b.WriteString("</ul>\n</details>\n")
		}
	}
	return b.String(), nil
}

// objectCounts tabulates a snapshot's objects by kind: how many, how many hold
// something, and the bytes queued.
func objectCounts(s *inspect.Snapshot) string {
	type count struct {
		n, nonEmpty int
		queued      int64
	}
	counts := map[string]*count{}
	var kinds []string
	for _, o := range s.Objects {
		c := counts[o.Kind]
		if c == nil {
			c = &count{}
			counts[o.Kind] = c
			kinds = append(kinds, o.Kind)
		}
		c.n++
		if o.Queued > 0 {
			c.nonEmpty++
			c.queued += o.Queued
		}
	}
	if len(kinds) == 0 {
		return "<p class=\"none\">No IPC objects.</p>\n"
	}
	sort.Strings(kinds)
	var b strings.Builder
	b.WriteString("<table class=\"objects\">\n<tr><th>kind</th><th>objects</th><th>holding data</th><th>bytes queued</th></tr>\n")
	for _, k := range kinds {
		c := counts[k]
		fmt.Fprintf(&b, "<tr><td>%s</td><td class=\"num\">%d</td><td class=\"num\">%d</td><td class=\"num\">%s</td></tr>\n",
			esc(k), c.n, c.nonEmpty, esc(inspect.FormatBytes(c.queued)))
	}
	b.WriteString("</table>\n")
	return b.String()
}

// counted writes n and the noun that goes with it: "1 run", "2 runs".
func counted(n int, one, many string) string {
	return strconv.Itoa(n) + " " + plural(n, one, many)
}
