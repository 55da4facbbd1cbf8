#!/usr/bin/env bash
# make bench-systemd (and the systemd part of make bench): the systemd
# cgroup driver's start path, fre-runc beside runc and crun in one run
# inside the systemd guest of hack/vm/systemd.sh (Debian bookworm, systemd
# 252 as PID 1, cgroup v2). Every runtime makes each container's cgroup a
# transient scope over D-Bus: fre-runc and runc with --systemd-cgroup, crun
# with --cgroup-manager=systemd. The guest runs:
#   - frebench sequential with -systemd-cgroup: fre-runc (the scope started
#     before the init's set-up, the default), fre-runc-alongside (started
#     while it sets up: the A/B), runc and crun, interleaved;
#   - cgroup/systemd's TestCost: what D-Bus costs there (connect, a scope's
#     start and stop);
#   - a few fre-runc runs with FRE_TRACE=1, both ways: where the time goes.
# Results come back under results/systemd/ (CSV, the text, the console in
# _output/vm-systemd/bench-systemd.log). Figures made under emulation (no
# KVM) are marked so: they are for ratios only.
#
# Env: BENCH_N (default 100), SYSTEMD_BENCH_RUNTIMES (default
# fre-runc,fre-runc-alongside,runc,crun), and hack/vm/systemd.sh's FRE_VM_*.
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=$REPO/_output/vm-systemd
STAGE=$OUT/stage-bench
BIN=$REPO/bin
RESULTS=$REPO/results/systemd
N=${BENCH_N:-100}
RUNTIMES=${SYSTEMD_BENCH_RUNTIMES:-fre-runc,fre-runc-alongside,runc,crun}

log() { echo "bench-systemd: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
	log "must run as root"
	exit 1
fi
[ -x "$BIN/fre-runc" ] || { log "$BIN/fre-runc missing: make build"; exit 1; }

img=$("$REPO/hack/vm/systemd-image.sh")
# shellcheck source=hack/vm/stage.sh
. "$REPO/hack/vm/stage.sh"
rm -rf "$STAGE"
mkdir -p "$STAGE/fre/tests" "$STAGE/fre/src/cgroup/systemd"
stage_runtimes
# frebench makes its bundles from a static busybox (internal/testutil).
cp "$(readlink -f /bin/busybox)" "$STAGE/usr/bin/busybox"
log "building frebench and cgroup/systemd's tests"
go_static "$STAGE/fre/bin/frebench" ./bench/cmd/frebench
go_static "$STAGE/fre/tests/cgroup_systemd.test" test ./cgroup/systemd
unstage_tree_libs "$img/tree"

accel=$("$REPO/hack/vm/vm.sh" accel)
cat >"$STAGE/fre/run-bench.sh" <<EOF
export FRE_PREBUILT_DIR=/fre/bin FRE_BIN_DIR=/fre/bin PATH=/fre/bin:/usr/bin:\$PATH HOME=/root
out=/disk/out
mkdir -p \$out
status=0
state=\$(timeout 300 systemctl is-system-running --wait)
echo "== guest: \$(uname -r), \$(nproc) CPUs, accel $accel, \$(systemctl --version | head -1), system \$state"
cd /
# (/bin/sh: no PIPESTATUS; the text is printed when the run is done)
[ $N = 0 ] || /fre/bin/frebench -bin-dir /fre/bin -results \$out -work-dir /dev/shm -systemd-cgroup \\
	-n $N -runtimes $RUNTIMES sequential >\$out/bench-output.txt 2>&1 ||
	{ echo "frebench sequential FAILED" >>\$out/bench-output.txt; status=1; }
cat \$out/bench-output.txt
{
	echo "== cgroup/systemd TestCost (systemd guest)"
	cd /fre/src/cgroup/systemd
	FRE_TEST_SYSTEMD=1 /fre/tests/cgroup_systemd.test -test.run '^TestCost\$' -test.v 2>&1 || { echo "TestCost FAILED"; status=1; }
	cd /
	echo "== fre-runc --systemd-cgroup run, FRE_TRACE=1 (the last of 3 each way)"
	b=/dev/shm/trace
	mkdir -p \$b/rootfs/bin
	cp /usr/bin/busybox-static \$b/rootfs/bin/busybox
	ln -s busybox \$b/rootfs/bin/true
	(cd \$b && runc spec && sed -i -e 's/"terminal": true/"terminal": false/' -e 's/"sh"/"true"/' config.json)
	echo '{"systemdScopeAlongside": true}' >\$b/alongside.json
	echo '{}' >\$b/serial.json
	for way in serial alongside; do
		for i in 1 2 3; do
			FRE_TRACE=1 fre-runc --root /run/fre-trace --config \$b/\$way.json --systemd-cgroup run -b \$b trace-\$way-\$i >\$b/\$way.trace 2>&1 || { cat \$b/\$way.trace; echo "traced run FAILED"; status=1; }
		done
		echo "-- \$way"
		cat \$b/\$way.trace
	done
} 2>&1 | tee \$out/trace.txt
grep -q FAILED \$out/trace.txt && status=1
exit \$status
EOF

mkdir -p "$OUT" "$RESULTS"
status=0
FRE_VM_OUT=$OUT/bench-systemd-out FRE_VM_TIMEOUT=${FRE_VM_TIMEOUT:-3000} \
	"$REPO/hack/vm/systemd.sh" run "$STAGE" /fre/run-bench.sh "$OUT/bench-systemd.log" || status=$?
if take_results "$OUT/bench-systemd-out/out" "$RESULTS" "systemd guest" "$accel" bench-output.txt trace.txt; then
	log "results in $RESULTS"
fi
console_lines "$OUT/bench-systemd.log" '^== ' ratio target alongside FAIL '^systemd-vm:'
if [ "$status" != 0 ]; then
	log "FAIL (guest status $status); console: $OUT/bench-systemd.log"
	exit 1
fi
