package report

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// snapshotFixture is a real snapshot (ipcbench inspect -json -pid ...) of four
// processes: stage-a and stage-b each reading a pipe only the other can write (a
// deadlock), and consumer reading a seqpacket socket whose peer producer holds.
const snapshotFixture = "testdata/inspect-deadlock.json"

func loadSnapshot(t *testing.T) Snapshot {
	t.Helper()
	s, err := LoadSnapshot(snapshotFixture)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// INS-02 in the report: a snapshot alone makes a page with its deadlock, its
// wait-for graph, its waits and its objects, and none of the run sections.
func TestSnapshotPage(t *testing.T) {
	s := loadSnapshot(t)
	if s.Name != "inspect-deadlock" {
		t.Errorf("name %q, want the file's name without .json", s.Name)
	}
	var b strings.Builder
	if err := (Page{Snapshots: []Snapshot{s}}).WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	d := s.Deadlocks[0]
	for _, want := range []string{
		`<section id="snapshots">`,
		`1 IPC snapshot: inspect-deadlock.`,
		`class="chart waitfor"`,
		`class="mark node process deadlock"`,
		esc(d.String()),
		"1 deadlock",
		"3 threads waiting",
		"<td>stage-a</td>", "<td>stage-b</td>", "<td>consumer</td>",
		"<td>recvfrom fd 7</td>",
		"<td>pipe</td><td class=\"num\">2</td>",
		"<td>unix-seqpacket</td><td class=\"num\">2</td>",
		"2 things could not be read",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	for _, absent := range []string{`id="latency"`, `id="machines"`, `id="ebpf"`} {
		if strings.Contains(page, absent) {
			t.Errorf("a page without runs has %s", absent)
		}
	}
	if n := strings.Count(page, "<tr><td>"); n != 3+2 {
		t.Errorf("%d table rows, want 3 waits and 2 kinds", n)
	}
}

// Runs and snapshots on one page: every section, the snapshot before the machines.
func TestPageRunsAndSnapshots(t *testing.T) {
	var b strings.Builder
	p := Page{Runs: loadFixtures(t), Snapshots: []Snapshot{loadSnapshot(t), loadSnapshot(t)}}
	if err := p.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	last := -1
	for _, id := range []string{"latency", "throughput", "ebpf", "tables", "snapshots", "machines"} {
		i := strings.Index(page, fmt.Sprintf(`<section id="%s">`, id))
		if i < 0 || i < last {
			t.Errorf("section %s missing or out of order", id)
		}
		last = i
	}
	if !strings.Contains(page, `id="snapshot-2"`) || !strings.Contains(page, "2 IPC snapshots") {
		t.Error("the second snapshot is not shown")
	}
}

func TestPageRefusesNothing(t *testing.T) {
	var b strings.Builder
	if err := (Page{}).WriteHTML(&b); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty page: %v, want ErrInvalid", err)
	}
	if err := (Page{Snapshots: []Snapshot{{Name: "x"}}}).WriteHTML(&b); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil snapshot: %v, want ErrInvalid", err)
	}
	if b.Len() != 0 {
		t.Errorf("wrote %d bytes before refusing", b.Len())
	}
	if _, err := LoadSnapshot("testdata/fixture-debian12.json"); err == nil {
		t.Error("a results file loaded as a snapshot")
	}
}

// A snapshot in which nothing waits draws no graph (an empty chart would not be
// drawn) and says so.
func TestSnapshotWithoutWaits(t *testing.T) {
	s := loadSnapshot(t)
	s.Waits, s.Deadlocks = nil, nil
	var b strings.Builder
	if err := (Page{Snapshots: []Snapshot{s}}).WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "<svg") || !strings.Contains(b.String(), "no wait-for graph") {
		t.Error("a snapshot without waits drew a graph or did not say why not")
	}
}
