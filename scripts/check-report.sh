#!/usr/bin/env bash
# check-report.sh: open an ipcbench HTML report in a real headless browser (Debian's
# chromium) and check that it loaded without script errors or blocked network loads,
# and that its charts were drawn.
#
#   scripts/check-report.sh [REPORT.html] [SCREENSHOT.png]
#
# REPORT.html defaults to the golden report made from the test fixtures
# (cmd/ipcbench/internal/report/testdata/report.html.golden). With SCREENSHOT.png it also saves a
# full-page screenshot. Installs chromium with apt-get when it is missing and we are
# root, unless CHECK_REPORT_NO_INSTALL=1 (then it exits 77: skipped). MIN_CHARTS sets
# the number of charts that must be drawn (default 1).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
report=${1:-$here/cmd/ipcbench/internal/report/testdata/report.html.golden}
shot=${2:-}
min_charts=${MIN_CHARTS:-1}

die() { echo "check-report: FAIL: $*" >&2; exit 1; }

[ -s "$report" ] || die "no report at $report"

browser=""
for b in chromium chromium-browser; do
	if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
done
if [ -z "$browser" ]; then
	if [ "${CHECK_REPORT_NO_INSTALL:-}" = 1 ]; then
		echo "check-report: SKIP: chromium is not installed" >&2
		exit 77
	fi
	[ "$(id -u)" = 0 ] || die "chromium is missing and we are not root to install it"
	echo "check-report: installing chromium" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq chromium >/dev/null
	browser=chromium
fi

# The report must not even mention a remote resource.
if grep -Eiq '(src|href)=["'"'"']?(https?:)?//' "$report"; then
	die "report references a remote resource: $(grep -Eio '(src|href)=["'"'"']?(https?:)?//[^"'"'"' >]*' "$report" | head -3 | tr '\n' ' ')"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A copy with a plain .html name, since the default report is a .golden file.
page="$work/report.html"
cp "$report" "$page"

flags=(--headless --no-sandbox --disable-gpu --disable-background-networking
	--disable-component-update --disable-sync --no-first-run --disable-extensions
	--disable-dev-shm-usage --hide-scrollbars --enable-logging=stderr --v=0
	--virtual-time-budget=5000 --user-data-dir="$work/profile")

if ! timeout 120 "$browser" "${flags[@]}" --dump-dom "file://$page" >"$work/dom.html" 2>"$work/stderr.log"; then
	cat "$work/stderr.log" >&2
	die "$browser --dump-dom failed"
fi

attr() { # attr NAME: the value of NAME="..." on <html> or <body> in the dumped DOM
	grep -Eo "<(html|body)[^>]*" "$work/dom.html" | grep -Eo "$1=\"[^\"]*\"" | head -1 | cut -d'"' -f2 || true
}

js_errors=$(attr data-js-errors)
csp=$(attr data-csp-violations)
charts=$(attr data-charts)
drawn=$(attr data-charts-drawn)
svgs=$( (grep -Eo '<svg [^>]*class="chart[" ]' "$work/dom.html" || true) | wc -l)
console_errors=$(grep -Ec 'Uncaught|CONSOLE.*(Error|error)' "$work/stderr.log" || true)

echo "check-report: $report: charts=$charts drawn=$drawn svg=$svgs js-errors=${js_errors:-0} csp-violations=${csp:-0} console-errors=$console_errors"

[ -z "$js_errors" ] || die "$js_errors JavaScript error(s)"
[ "$console_errors" = 0 ] || { grep -E 'Uncaught|CONSOLE' "$work/stderr.log" >&2; die "errors on the browser console"; }
[ -z "$csp" ] || die "$csp blocked load(s): the page tried to fetch something"
[ -n "$drawn" ] || die "the page's script did not run (no data-charts-drawn on <body>)"
[ "$drawn" -ge "$min_charts" ] || die "only $drawn chart(s) drawn, want at least $min_charts"
[ "$drawn" = "$charts" ] || die "$drawn of $charts charts drawn"
[ "$svgs" = "$charts" ] || die "$svgs chart SVGs in the DOM but the script counted $charts"

if [ -n "$shot" ]; then
	# Tall enough for the whole page; chromium crops to the window.
	if ! timeout 120 "$browser" "${flags[@]}" --window-size=1000,"${SHOT_HEIGHT:-6000}" --screenshot="$work/shot.png" "file://$page" >/dev/null 2>>"$work/stderr.log"; then
		cat "$work/stderr.log" >&2
		die "$browser --screenshot failed"
	fi
	[ -s "$work/shot.png" ] || die "no screenshot written"
	cp "$work/shot.png" "$shot"
	echo "check-report: screenshot in $shot"
fi
echo "check-report: OK"
