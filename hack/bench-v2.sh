#!/usr/bin/env bash
# make bench-v2 (and the v2 part of make bench): FRE's start path on a
# real cgroup v2 kernel, fre-runc beside runc and crun in one run inside
# the guest of hack/vm/vm.sh (Debian's kernel, cgroup v2 only). crun runs
# there with its own cgroupfs manager, so every runtime does its cgroup
# work. The guest runs:
#   - the Go benchmarks of cgpool (the research's figure 2 on v2) and the
#     runtime's BenchmarkCreateStart variants for v2 (how the init gets
#     into its cgroup, a reused cgroup);
#   - frebench sequential, exec and concurrent.
# Results come back under results/v2/ (CSV, the benchmarks' text, the
# console in _output/vm/bench-v2.log). Figures made under emulation (no
# KVM) are marked so in bench-output.txt: they are for ratios only.
#
# Env: BENCH_N (default 100), BENCH_CONCURRENCY (default 256),
# V2_BENCH_RUNTIMES (default fre-runc,fre-runc-named,fre-runc-shared,runc,crun), and
# hack/vm/vm.sh's FRE_VM_* settings.
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=$REPO/_output/vm
STAGE=$OUT/stage-bench
BIN=$REPO/bin
RESULTS=$REPO/results/v2
N=${BENCH_N:-100}
C=${BENCH_CONCURRENCY:-256}
# fre-runc-named: the named pool's A/B (off by default on v2), interleaved.
RUNTIMES=${V2_BENCH_RUNTIMES:-fre-runc,fre-runc-named,fre-runc-shared,runc,crun}

log() { echo "bench-v2: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
	log "must run as root"
	exit 1
fi
for b in "$BIN/fre-runc" "$BIN/containerd-shim-fre-v1"; do
	[ -x "$b" ] || { log "$b missing: make build"; exit 1; }
done

# shellcheck source=hack/vm/stage.sh
. "$REPO/hack/vm/stage.sh"

rm -rf "$STAGE"
mkdir -p "$STAGE/fre/tests" "$STAGE/fre/src/cgpool" "$STAGE/fre/src/runtime"
stage_runtimes
log "building frebench and the benchmark binaries"
go_static "$STAGE/fre/bin/frebench" ./bench/cmd/frebench
go_static "$STAGE/fre/tests/cgpool.test" test ./cgpool
go_static "$STAGE/fre/tests/runtime.test" test ./runtime

accel=$("$REPO/hack/vm/vm.sh" accel)
cat >"$STAGE/fre/run-bench.sh" <<EOF
export FRE_PREBUILT_DIR=/fre/bin FRE_BIN_DIR=/fre/bin PATH=/fre/bin:\$PATH HOME=/root
out=/disk/out
mkdir -p \$out
status=0
{
	echo "== guest: \$(uname -r), \$(nproc) CPUs, accel $accel, cgroup2 controllers: \$(cat /sys/fs/cgroup/cgroup.controllers)"
	for pkg in cgpool runtime; do
		echo "== go test -bench ./\$pkg (cgroup v2 guest)"
		cd /fre/src/\$pkg
		/fre/tests/\$pkg.test -test.run '^\$' -test.bench . -test.benchtime 1x -test.benchmem -test.timeout 20m 2>&1 || { echo "benchmarks of \$pkg FAILED"; status=1; }
	done
} | tee \$out/go-bench.txt
cd /
for s in sequential exec concurrent; do
	/fre/bin/frebench -bin-dir /fre/bin -results \$out -work-dir /dev/shm \\
		-n $N -concurrency $C -runtimes $RUNTIMES \$s 2>&1 || echo "frebench \$s FAILED"
done | tee \$out/bench-output.txt
grep -q FAILED \$out/go-bench.txt \$out/bench-output.txt && status=1
exit \$status
EOF

mkdir -p "$OUT" "$RESULTS"
status=0
FRE_VM_OUT=$OUT/bench-v2-out FRE_VM_TIMEOUT=${FRE_VM_TIMEOUT:-3000} \
	"$REPO/hack/vm/vm.sh" run "$STAGE" /fre/run-bench.sh "$OUT/bench-v2.log" || status=$?
if take_results "$OUT/bench-v2-out/out" "$RESULTS" "cgroup v2 guest" "$accel" bench-output.txt go-bench.txt; then
	# The figures of what came back (figure 2 on v2 from cgpool's
	# benchmarks; the run bars), as make bench draws the host's.
	(cd "$REPO" && go build -o "$REPO/_output/freplot" ./bench/cmd/freplot) &&
		"$REPO/_output/freplot" -results "$RESULTS" all || log "freplot could not draw every figure"
	log "results in $RESULTS"
fi
console_lines "$OUT/bench-v2.log" '^== ' ratio target FAIL '^vm:'
if [ "$status" != 0 ]; then
	log "FAIL (guest status $status); console: $OUT/bench-v2.log"
	exit 1
fi
