#!/usr/bin/env bash
# fuzz.sh: run every Go fuzz target of the module, one after another, and print what
# each did (executions, new corpus entries, result) and the totals.
#
#   scripts/fuzz.sh                 each target for FUZZTIME (default 10s)
#   FUZZTIME=5000x scripts/fuzz.sh  each target for a number of executions (CI's smoke run)
#   FUZZTIME=20m scripts/fuzz.sh    a long campaign; LOG_DIR keeps every target's log
#   scripts/fuzz.sh FuzzRingReader  only the targets whose names match the arguments
#
# A failing input is saved by go test under the package's testdata/fuzz/ and the script
# exits non-zero; rerun it with `go test -run 'FuzzName/ID' ./pkg`.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
logs=${LOG_DIR:-$(mktemp -d)}
mkdir -p "$logs"

# Every func FuzzX in a _test.go file, with its package directory.
mapfile -t targets < <(grep -rlE '^func Fuzz[A-Za-z0-9_]*\(' --include='*_test.go' . |
	while read -r f; do
		for name in $(grep -oE '^func Fuzz[A-Za-z0-9_]*' "$f" | cut -d' ' -f2); do
			echo "$(dirname "$f") $name"
		done
	done | sort)
if [ $# -gt 0 ]; then
	mapfile -t targets < <(printf '%s\n' "${targets[@]}" | grep -E "$(IFS='|'; echo "$*")")
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz.sh: no fuzz targets found" >&2; exit 2; }

total=0 failed=0
printf '%-44s %14s %10s  %s\n' "target" "executions" "new" "result"
for t in "${targets[@]}"; do
	read -r dir name <<<"$t"
	log="$logs/$(echo "$dir" | tr / _)_$name.log"
	if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$dir" >"$log" 2>&1; then
		result=ok
	else
		result=FAIL
		failed=$((failed + 1))
	fi
	# go test's last progress line: "fuzz: elapsed: 10s, execs: 608245 (55672/sec), new interesting: 2 (total: 14)"
	line=$(grep -E '^fuzz: elapsed' "$log" | tail -n 1 || true)
	execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$line")
	new=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$line")
	total=$((total + ${execs:-0}))
	printf '%-44s %14s %10s  %s\n' "${dir#./}.$name" "${execs:-?}" "${new:-?}" "$result"
	if [ "$result" = FAIL ]; then sed -n '1,40p' "$log" | sed 's/^/    /'; fi
done
printf '%d targets, %d executions in all, %d failed (logs in %s)\n' "${#targets[@]}" "$total" "$failed" "$logs"
[ "$failed" -eq 0 ]
