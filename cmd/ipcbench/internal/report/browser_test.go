package report

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// repoRoot is where scripts/ lives, four levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../../../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// checkReport runs scripts/check-report.sh on html and returns its combined output
// and whether it passed. It skips the test when chromium is not installed.
func checkReport(t *testing.T, html []byte) (string, bool) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(path, html, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", filepath.Join(repoRoot(t), "scripts", "check-report.sh"), path)
	cmd.Env = append(os.Environ(), "CHECK_REPORT_NO_INSTALL=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 77 {
		t.Skip("chromium is not installed (scripts/check-report.sh installs it; CI runs it)")
	}
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return string(out), err == nil
}

// TestBrowserCheck renders a report in headless chromium through the same script CI
// runs, and checks that the script notices script errors, network loads and charts
// that are not drawn.
func TestBrowserCheck(t *testing.T) {
	if _, err := exec.LookPath("chromium"); err != nil {
		t.Skip("chromium is not installed (scripts/check-report.sh installs it; CI runs it)")
	}
	var b bytes.Buffer
	if err := HTML(&b, loadFixtures(t)); err != nil {
		t.Fatal(err)
	}
	page := b.String()

	t.Run("report", func(t *testing.T) {
		out, ok := checkReport(t, []byte(page))
		if !ok {
			t.Fatalf("the report failed the browser check:\n%s", out)
		}
		if n := strings.Count(page, `<svg class="chart"`); !strings.Contains(out, fmt.Sprintf("drawn=%d ", n)) {
			t.Errorf("want %d charts drawn:\n%s", n, out)
		}
	})

	// INS-02 in a browser: the wait-for graph of a snapshot is drawn next to the
	// run charts.
	t.Run("snapshot", func(t *testing.T) {
		var b bytes.Buffer
		if err := (Page{Runs: loadFixtures(t), Snapshots: []Snapshot{loadSnapshot(t)}}).WriteHTML(&b); err != nil {
			t.Fatal(err)
		}
		out, ok := checkReport(t, b.Bytes())
		if !ok {
			t.Fatalf("the report with a snapshot failed the browser check:\n%s", out)
		}
		n := strings.Count(page, `<svg class="chart"`) + 1
		if !strings.Contains(out, fmt.Sprintf("drawn=%d ", n)) {
			t.Errorf("want %d charts drawn (the runs' and the wait-for graph):\n%s", n, out)
		}
	})

	// Streams with quality of service: a rate and a delay chart per stream, drawn
	// next to the other runs' charts.
	t.Run("qos", func(t *testing.T) {
		qos := loadQoSFixture(t)
		var b bytes.Buffer
		if err := HTML(&b, append(loadFixtures(t), qos)); err != nil {
			t.Fatal(err)
		}
		out, ok := checkReport(t, b.Bytes())
		if !ok {
			t.Fatalf("the report with qos results failed the browser check:\n%s", out)
		}
		n := strings.Count(b.String(), `<svg class="chart"`)
		if want := strings.Count(page, `<svg class="chart"`) + 2*len(qosResults(qos)); n != want {
			t.Errorf("%d charts, want %d (the runs' and two per stream)", n, want)
		}
		if !strings.Contains(out, fmt.Sprintf("drawn=%d ", n)) {
			t.Errorf("want %d charts drawn:\n%s", n, out)
		}
	})

	// The report of two real --ebpf runs: a histogram chart for every traced case,
	// every chart drawn.
	t.Run("ebpf-histograms", func(t *testing.T) {
		runs := ebpfRuns(t)
		var b bytes.Buffer
		if err := HTML(&b, runs); err != nil {
			t.Fatal(err)
		}
		if checkHistograms(t, b.String(), runs) == 0 {
			t.Fatal("no histogram charts")
		}
		out, ok := checkReport(t, b.Bytes())
		if !ok {
			t.Fatalf("the report of --ebpf runs failed the browser check:\n%s", out)
		}
		if n := strings.Count(b.String(), `<svg class="chart"`); !strings.Contains(out, fmt.Sprintf("drawn=%d ", n)) {
			t.Errorf("want %d charts drawn:\n%s", n, out)
		}
	})

	// A trace's heatmaps (ipcbench trace -html) next to the runs' charts.
	t.Run("heatmap", func(t *testing.T) {
		var b bytes.Buffer
		if err := (Page{Runs: ebpfRuns(t), Heatmaps: []Heatmap{heatmapFixture()}}).WriteHTML(&b); err != nil {
			t.Fatal(err)
		}
		out, ok := checkReport(t, b.Bytes())
		if !ok {
			t.Fatalf("the report with a heatmap failed the browser check:\n%s", out)
		}
		n := strings.Count(b.String(), `<svg class="chart"`)
		if !strings.Contains(b.String(), `id="heatmap-0"`) || !strings.Contains(out, fmt.Sprintf("drawn=%d ", n)) {
			t.Errorf("want %d charts drawn, the heatmap among them:\n%s", n, out)
		}
	})

	broken := []struct {
		name, find, replace, want string
	}{
		{"js-error", "</body>", "<script>null.boom();</script></body>", "JavaScript error"},
		{"network-fetch", "</body>", `<script>fetch("/api/x").catch(function () {});</script></body>`, "blocked load"},
		{"remote-resource", "</body>", `<img alt="" src="https://example.invalid/a.png"></body>`, "remote resource"},
		{"no-marks", `class="mark"`, `class="nomark"`, "chart(s) drawn"},
		{"script-missing", "document.body.setAttribute(\"data-charts-drawn\"", "void (\"data-charts-drawn\"", "did not run"},
	}
	for _, tc := range broken {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(page, tc.find) {
				t.Fatalf("report has no %q to break", tc.find)
			}
			out, ok := checkReport(t, []byte(strings.ReplaceAll(page, tc.find, tc.replace)))
			if ok {
				t.Fatalf("the broken report passed the browser check:\n%s", out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("want the failure to mention %q:\n%s", tc.want, out)
			}
		})
	}
}
