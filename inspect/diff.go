package inspect

import (
	"encoding/json"
	"slices"
	"strconv"
)

// A Change is how an object or a wait differs from an earlier snapshot.
type Change int

// Changes.
const (
	Same    Change = iota // as before
	New                   // not in the earlier snapshot
	Changed               // there, but some reading differs (fill level, holders, state, ...)
)

func (c Change) mark() string {
	switch c {
	case New:
		return "+"
	case Changed:
		return "~"
	}
	return ""
}

// String returns "same", "new" or "changed".
func (c Change) String() string {
	switch c {
	case New:
		return "new"
	case Changed:
		return "changed"
	}
	return "same"
}

// Changes are what differ between two snapshots of one machine.
type Changes struct {
	// Objects maps the later snapshot's object IDs to their change.
	Objects map[string]Change
	// Waits maps the later snapshot's waits, keyed "PID/TID", to their change.
	Waits map[string]Change
	// GoneObjects are the IDs of objects only the earlier snapshot has, sorted.
	GoneObjects []string
	// GoneWaits are the "PID/TID" keys of threads that no longer wait, sorted.
	GoneWaits []string
}

// Any reports whether anything changed.
func (c *Changes) Any() bool {
	if len(c.GoneObjects) > 0 || len(c.GoneWaits) > 0 {
		return true
	}
	for _, x := range c.Objects {
		if x != Same {
			return true
		}
	}
	for _, x := range c.Waits {
		if x != Same {
			return true
		}
	}
	return false
}

// Diff compares a later snapshot, cur, with an earlier one, prev, object by
// object (by ID) and wait by wait (by thread).
func Diff(prev, cur *Snapshot) *Changes {
	c := &Changes{Objects: map[string]Change{}, Waits: map[string]Change{}}
	before := map[string][]byte{}
	for _, o := range prev.Objects {
		before[o.ID] = digest(o)
	}
	now := map[string]bool{}
	for _, o := range cur.Objects {
		now[o.ID] = true
		c.Objects[o.ID] = changeOf(before, o.ID, digest(o))
	}
	for id := range before {
		if !now[id] {
			c.GoneObjects = append(c.GoneObjects, id)
		}
	}
	slices.Sort(c.GoneObjects)

	before = map[string][]byte{}
	for _, w := range prev.Waits {
		before[waitKey(w)] = digest(w)
	}
	now = map[string]bool{}
	for _, w := range cur.Waits {
		k := waitKey(w)
		now[k] = true
		c.Waits[k] = changeOf(before, k, digest(w))
	}
	for k := range before {
		if !now[k] {
			c.GoneWaits = append(c.GoneWaits, k)
		}
	}
	slices.Sort(c.GoneWaits)
	return c
}

func changeOf(before map[string][]byte, key string, d []byte) Change {
	b, ok := before[key]
	switch {
	case !ok:
		return New
	case string(b) != string(d):
		return Changed
	}
	return Same
}

// digest is a value's JSON form: two readings of an object are the same when
// every field the schema shows is.
func digest(v any) []byte {
	b, _ := json.Marshal(v) // (plain structs: cannot fail)
	return b
}

func waitKey(w Wait) string { return strconv.Itoa(w.PID) + "/" + strconv.Itoa(w.TID) }
