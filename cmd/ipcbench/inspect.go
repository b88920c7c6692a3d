package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipclab/ipclab/inspect"
)

// errDeadlock makes inspect exit with status 3 when a snapshot found a deadlock, so
// that a script can tell.
var errDeadlock = errors.New("deadlock found")

// inspectCmd prints the machine's IPC objects, the threads blocked on them and the
// deadlocks among them, once or (with -watch) every interval.
func inspectCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	pidList := fs.String("pid", "", "only these processes (comma-separated pids) and what they hold or wait on; default the whole machine")
	format := fs.String("format", "text", "text, json (the schema in docs/inspect.md), dot (the wait-for graph) or svg (the graph drawn)")
	asJSON := fs.Bool("json", false, "same as -format json")
	watch := fs.Bool("watch", false, "take a snapshot every -interval and mark what changed since the one before")
	interval := fs.Duration("interval", 2*time.Second, "time between snapshots with -watch")
	count := fs.Int("count", 0, "with -watch, stop after this many snapshots (0: until interrupted)")
	confirm := fs.Duration("confirm", inspect.DefaultConfirmFor, "how long a wait must hold, unchanged, to count towards a deadlock")
	var mailboxDirs stringList
	fs.Var(&mailboxDirs, "mailbox-dir", "a mailbox namespace directory to read (repeatable; default the mailbox package's)")
	cost := fs.Bool("cost", false, "measure what inspecting costs instead: a snapshot's time with 1000 pipes and 1000 sockets open, and a pinned ping-pong's latency with and without inspect running")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: ipcbench inspect [-pid P,Q] [-format text|json|dot|svg] [-watch [-interval 2s] [-count N]] [-confirm 100ms] [-mailbox-dir DIR]\n       ipcbench inspect -cost")
		fmt.Fprintln(fs.Output(), "Exit status 3: a deadlock was found.")
		fs.PrintDefaults()
	}
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	if *asJSON {
		*format = "json"
	}
	write, err := snapshotWriter(*format)
	if err != nil {
		return usageError{err}
	}
	pids, err := parsePIDs(*pidList)
	switch {
	case err != nil:
		return usageError{err}
	case fs.NArg() > 0:
		return usageError{fmt.Errorf("unexpected arguments: %q", fs.Args())}
	case *interval <= 0:
		return usageError{fmt.Errorf("-interval %v: must be positive", *interval)}
	case *count < 0:
		return usageError{fmt.Errorf("-count %d: must not be negative", *count)}
	case *confirm <= 0:
		return usageError{fmt.Errorf("-confirm %v: must be positive", *confirm)}
	case *cost && (*watch || len(pids) > 0 || *format != "text"):
		return usageError{errors.New("-cost takes no other flag")}
	}
	for _, p := range pids {
		if !alive(p) {
			return usageError{fmt.Errorf("-pid %d: no such process", p)}
		}
	}
	if *cost {
		return inspectCost(ctx, stdout, stderr, costOptions{})
	}
	opts := inspect.Options{PIDs: pids, ConfirmFor: *confirm, MailboxDirs: mailboxDirs}

	if !*watch {
		s, err := inspect.Take(ctx, opts)
		if err != nil {
			return err
		}
		if err := write(stdout, s, nil); err != nil {
			return err
		}
		if len(s.Deadlocks) > 0 {
			return errDeadlock
		}
		return nil
	}

	term := isTerminal(stdout)
	var prev *inspect.Snapshot
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for n := 0; *count == 0 || n < *count; n++ {
		if n > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
		}
		s, err := inspect.Take(ctx, opts)
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		var ch *inspect.Changes
		if prev != nil {
			ch = inspect.Diff(prev, s)
		}
		if *format == "text" {
			if term {
				fmt.Fprint(stdout, "\x1b[H\x1b[2J") // home, clear
			} else if n > 0 {
				fmt.Fprintln(stdout)
			}
			if err := inspect.WriteTextWith(stdout, s, inspect.TextOptions{Changes: ch, Color: term}); err != nil {
				return err
			}
			if ch != nil && !ch.Any() {
				fmt.Fprintln(stdout, "(nothing changed)")
			}
		} else if err := write(stdout, s, ch); err != nil {
			return err
		}
		prev = s
	}
	return nil
}

// snapshotWriter returns the writer for -format.
func snapshotWriter(format string) (func(io.Writer, *inspect.Snapshot, *inspect.Changes) error, error) {
	switch format {
	case "text":
		return func(w io.Writer, s *inspect.Snapshot, c *inspect.Changes) error {
			return inspect.WriteTextWith(w, s, inspect.TextOptions{Changes: c})
		}, nil
	case "json":
		return func(w io.Writer, s *inspect.Snapshot, _ *inspect.Changes) error { return inspect.WriteJSON(w, s) }, nil
	case "dot":
		return func(w io.Writer, s *inspect.Snapshot, _ *inspect.Changes) error { return inspect.WriteDOT(w, s) }, nil
	case "svg":
		return func(w io.Writer, s *inspect.Snapshot, _ *inspect.Changes) error { return inspect.WriteSVG(w, s) }, nil
	}
	return nil, fmt.Errorf("unknown -format %q (want text, json, dot or svg)", format)
}

// parsePIDs parses a comma-separated list of pids.
func parsePIDs(s string) ([]int, error) {
	var out []int
	for _, f := range split(s) {
		p, err := strconv.Atoi(f)
		if err != nil || p <= 0 {
			return nil, fmt.Errorf("-pid %q: not a process id", f)
		}
		out = append(out, p)
	}
	return out, nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	if v == "" {
		return errors.New("empty value")
	}
	*l = append(*l, v)
	return nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
