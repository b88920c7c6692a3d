package mailbox

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// Owner identifies a process across pid reuse: its pid and its start time (field 22
// of /proc/PID/stat, in clock ticks since boot). A pid that is free, a zombie, or
// now belongs to a process started at another time means the owner has died.
type Owner struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// self returns this process as an Owner.
func self() (Owner, error) {
	pid := os.Getpid()
	start, _, err := procStat(pid)
	if err != nil {
		return Owner{}, err
	}
	return Owner{PID: pid, Start: start}, nil
}

// Alive reports whether the owner process still runs.
func (o Owner) Alive() bool {
	if o.PID <= 0 {
		return false
	}
	start, state, err := procStat(o.PID)
	if err != nil {
		return false
	}
	return start == o.Start && state != 'Z' && state != 'X'
}

// String returns "pid N (start T)".
func (o Owner) String() string { return fmt.Sprintf("pid %d (start %d)", o.PID, o.Start) }

// procStat reads a process's start time and state from /proc/PID/stat.
func procStat(pid int) (start uint64, state byte, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseStat(b)
}

// parseStat parses the fields after the command name, which may itself contain
// spaces and parentheses (so the last ')' ends it).
func parseStat(b []byte) (start uint64, state byte, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("stat: no command name")
	}
	fields := bytes.Fields(b[i+1:])
	// fields[0] is field 3 (state); starttime is field 22.
	if len(fields) < 20 || len(fields[0]) != 1 {
		return 0, 0, fmt.Errorf("stat: %d fields", len(fields))
	}
	start, err = strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("stat: starttime: %w", err)
	}
	return start, fields[0][0], nil
}
