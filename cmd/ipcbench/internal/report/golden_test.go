package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// fixtures are the synthetic runs in testdata: they look like real ipcbench output
// from three VMs but are made up (their machine records say so), so that the golden
// files do not change when the machine running the tests does.
var fixtures = []string{
	"testdata/fixture-debian12.json",
	"testdata/fixture-ubuntu2404.json",
	"testdata/fixture-almalinux9.json",
}

func loadFixtures(t *testing.T) []Run {
	t.Helper()
	runs, err := LoadFiles(fixtures...)
	if err != nil {
		t.Fatal(err)
	}
	return runs
}

// golden compares got with testdata/name, or rewrites the file under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		gotPath := filepath.Join(t.TempDir(), name)
		_ = os.WriteFile(gotPath, got, 0o644)
		t.Errorf("output differs from %s; got is in %s (diff them, or run go test -update if the change is intended)\n%s",
			path, gotPath, firstDiff(want, got))
	}
}

// firstDiff describes the first line where a and b differ.
func firstDiff(a, b []byte) string {
	al, bl := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y []byte
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if !bytes.Equal(x, y) {
			return "line " + itoa(i+1) + ":\n- " + string(x) + "\n+ " + string(y)
		}
	}
	return ""
}

func TestCompareGolden(t *testing.T) {
	runs := loadFixtures(t)
	for _, tc := range []struct {
		format Format
		file   string
	}{
		{FormatText, "compare.txt.golden"},
		{FormatMarkdown, "compare.md.golden"},
		{FormatBench, "compare.bench.golden"},
	} {
		t.Run(string(tc.format), func(t *testing.T) {
			var b bytes.Buffer
			if err := Compare(&b, runs, tc.format); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.file, b.Bytes())
		})
	}
}

func TestHTMLGolden(t *testing.T) {
	var b bytes.Buffer
	if err := HTML(&b, loadFixtures(t)); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.html.golden", b.Bytes())
}
