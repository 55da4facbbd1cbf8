#!/usr/bin/env bash
# Runs the Go benchmarks of the given packages, skipping packages that do not
# exist or have no Benchmark functions, and writes all output to OUT (the
# standard `go test -bench` format bench/cmd/freplot reads).
#   bench-go.sh BENCHTIME OUT PKG...
# BENCH_GO_TIMEOUT (default 10m) bounds each package's go test.
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
benchtime=$1 out=$2
shift 2
cd "$(dirname "$0")/.."

: >"$out"
status=0
total=$SECONDS
for pkg in "$@"; do
	dir=${pkg%/}
	if ! ls "$dir"/*_test.go >/dev/null 2>&1 || ! grep -qs '^func Benchmark' "$dir"/*_test.go; then
		echo "bench-go: $pkg has no benchmarks yet; skipped" | tee -a "$out"
		continue
	fi
	echo "== go test -bench $pkg (benchtime $benchtime)" | tee -a "$out"
	start=$SECONDS
	if ! go test -run '^$' -bench . -benchtime "$benchtime" -benchmem -count 1 \
		-timeout "${BENCH_GO_TIMEOUT:-10m}" "$pkg" 2>&1 | tee -a "$out"; then
		echo "bench-go: benchmarks of $pkg FAILED" | tee -a "$out"
		status=1
	fi
	echo "bench-go: $pkg took $((SECONDS - start)) s"
done
echo "bench-go: wrote $out ($((SECONDS - total)) s)"
exit $status
