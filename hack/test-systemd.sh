#!/usr/bin/env bash
# make test-systemd: a smoke test of the systemd guest (hack/vm/systemd.sh):
# boots it and checks, inside, that PID 1 is systemd, that the system
# reaches running (or degraded: the failed units are printed), that D-Bus
# answers for systemd, that cgroup v2 is mounted with controllers, that a
# transient scope made over D-Bus (systemd-run --scope -p Delegate=yes -p
# MemoryMax=64M) gets its cgroup with memory.max and that both go when its
# process ends, and that runc (Debian's, also with --systemd-cgroup: the
# anchor of a systemd cgroup driver) and bin/fre-runc run a busybox
# container there. Each check prints "smoke: ok" or "smoke: FAIL"; a
# failing check fails the run. After the smoke checks, Go test binaries
# (built on the host, static, with their packages' testdata) run there,
# one package after the other under a timeout, with go test's summary
# line for each ("ok"/"FAIL", as hack/test-v2.sh prints them) and
# FRE_TEST_SYSTEMD=1 (tests that need systemd fail rather than skip); a
# failing package fails the run. The console is
# _output/vm-systemd/test-systemd.log.
#
# Env: SYSTEMD_PACKAGES (default below; "" runs none; an integration
# entry also stages containerd, its runc shim, FRE's shim, CNI's loopback
# and the pause program, as hack/test-v2.sh does),
# SYSTEMD_TESTFLAGS (default "-test.v"; e.g. '-test.run TestX'),
# SYSTEMD_PKG_TIMEOUT (go test -timeout per package, default 5m), and
# hack/vm/systemd.sh's FRE_VM_* settings (FRE_VM_CMDLINE for another
# layout, e.g. "systemd.unified_cgroup_hierarchy=0" for systemd on v1: the
# cgroup v2 checks then fail, as they should).
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=$REPO/_output/vm-systemd
STAGE=$OUT/stage
BIN=$REPO/bin
# Each entry is a package, or package:REGEX to run only its tests that
# match (cmd/fre-runc's systemd driver tests, CRI with kubelet's systemd
# layout; the rest run in make test and make test-v2).
PACKAGES=${SYSTEMD_PACKAGES-cgroup/systemd cmd/fre-runc:^TestSystemd integration:^TestCRISystemd}
CTRD=${CONTAINERD_BIN_DIR:-$BIN/containerd-v2.4.2}
PKG_TIMEOUT=${SYSTEMD_PKG_TIMEOUT:-5m}

log() { echo "test-systemd: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
	log "must run as root (debootstrap, and the guest's root tests)"
	exit 1
fi
if [ ! -x "$BIN/fre-runc" ]; then
	log "building bin/fre-runc"
	make -C "$REPO" --no-print-directory build >&2
fi
command -v runc >/dev/null || { log "no runc on this host (make deps)"; exit 1; }

start=$SECONDS
img=$("$REPO/hack/vm/systemd-image.sh")
rm -rf "$STAGE"
mkdir -p "$STAGE/fre/bin" "$STAGE/usr/bin"

# shellcheck source=hack/vm/stage.sh
. "$REPO/hack/vm/stage.sh"
copy_bin "$BIN/fre-runc" /fre/bin/fre-runc
copy_bin "$(command -v runc)" /usr/bin/runc
# The Go test binaries, each with its package's directory (tests run there
# and read testdata/), as hack/test-v2.sh stages them.
mkdir -p "$STAGE/fre/tests" "$STAGE/fre/src"
# The integration tests start their own containerd: its programs, and
# the environment they find them by (CI: what is missing fails them).
guest_env=""
for entry in $PACKAGES; do
	pkg=${entry%%:*}
	[ -d "$REPO/$pkg" ] || { log "no package $pkg"; exit 1; }
	stage_test "$pkg"
	if [ "$pkg" = integration ] && [ -z "$guest_env" ]; then
		stage_containerd "$CTRD"
		guest_env="CI=true CONTAINERD_BIN_DIR=$CONTAINERD_GUEST_DIR PATH=$CONTAINERD_GUEST_DIR:\$PATH"
	fi
done
unstage_tree_libs "$img/tree"
cp "$(readlink -f /bin/busybox)" "$STAGE/usr/bin/busybox-static"
# The Go tests make their bundles from a static busybox (internal/testutil).
cp "$(readlink -f /bin/busybox)" "$STAGE/usr/bin/busybox"

cat >"$STAGE/fre/smoke.sh" <<'EOF'
# The systemd guest's smoke test (hack/test-systemd.sh).
export PATH=/fre/bin:$PATH
fail=0
ok() { echo "smoke: ok   $*"; }
bad() { echo "smoke: FAIL $*"; fail=1; }
now() { cut -d' ' -f1 /proc/uptime; }
# poll SECONDS CMD...: until CMD succeeds or the deadline passes.
poll() {
	end=$(($(date +%s) + $1))
	shift
	until "$@"; do
		[ "$(date +%s)" -lt "$end" ] || return 1
		sleep 0.1
	done
}

echo "=== PID 1"
comm=$(cat /proc/1/comm)
if [ "$comm" = systemd ]; then
	ok "PID 1 is systemd ($(readlink /proc/1/exe), $(systemctl --version | head -1))"
else
	bad "PID 1 is $comm ($(readlink /proc/1/exe))"
fi

echo "=== boot"
state=$(timeout 300 systemctl is-system-running --wait)
echo "smoke: system $state at $(now) s of uptime"
systemd-analyze time | head -1
case $state in
running) ok "system running" ;;
degraded)
	ok "system degraded (reached, but units failed):"
	systemctl --failed --no-pager
	;;
*)
	bad "system $state"
	systemctl list-jobs --no-pager
	;;
esac

echo "=== D-Bus"
if systemctl is-active -q dbus.service && busctl --system list --no-pager >/tmp/names; then
	ok "system bus: $(grep -c . /tmp/names) names, $(awk '$1 ~ /^org\./ { printf "%s ", $1 }' /tmp/names)"
else
	bad "busctl --system list"
fi
if busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.DBus.Peer Ping; then
	ok "org.freedesktop.systemd1 answers Ping; Manager.Version $(busctl get-property org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager Version)"
else
	bad "Ping org.freedesktop.systemd1"
fi

echo "=== cgroup"
# v2 (the default), or v1 when booted with systemd.unified_cgroup_hierarchy=0:
# then a scope's cgroup is in name=systemd's hierarchy and each
# controller's, its memory limit in memory.limit_in_bytes.
fs=$(stat -f -c %T /sys/fs/cgroup)
if [ "$fs" = cgroup2fs ]; then
	ctrl=$(cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null)
	if [ -n "$ctrl" ]; then
		ok "cgroup2 at /sys/fs/cgroup: controllers: $ctrl; root subtree_control: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
	else
		bad "cgroup2 at /sys/fs/cgroup without controllers"
	fi
	sysdir=/sys/fs/cgroup v1=0 procline=0::
elif [ -d /sys/fs/cgroup/systemd ] && [ -d /sys/fs/cgroup/memory ]; then
	ok "cgroup v1 at /sys/fs/cgroup: $(ls /sys/fs/cgroup | tr '\n' ' ')"
	sysdir=/sys/fs/cgroup/systemd v1=1 procline=$(grep -o "^[0-9]*:name=systemd:" /proc/self/cgroup)
else
	bad "/sys/fs/cgroup is $fs, neither cgroup v2 nor systemd's v1"
	sysdir=/sys/fs/cgroup v1=0 procline=0::
fi
# memfile CG: the file holding cgroup CG's memory limit.
memfile() {
	if [ "$v1" = 1 ]; then echo "/sys/fs/cgroup/memory$1/memory.limit_in_bytes"; else echo "/sys/fs/cgroup$1/memory.max"; fi
}

echo "=== transient scope"
systemd-run --scope --unit=fre-smoke -p Delegate=yes -p MemoryMax=64M sleep 300 &
pid=$!
active() { [ "$(systemctl show -p ActiveState --value fre-smoke.scope)" = active ]; }
if poll 60 active; then
	systemctl show fre-smoke.scope -p ControlGroup,MemoryMax,Delegate,DelegateControllers
	cg=$(systemctl show -p ControlGroup --value fre-smoke.scope)
	mm=$(cat "$(memfile "$cg")" 2>/dev/null)
	in=$(grep "^$procline" /proc/$pid/cgroup)
	if [ -n "$cg" ] && [ -d "$sysdir$cg" ] && [ "$mm" = 67108864 ] && [ "$in" = "$procline$cg" ]; then
		ok "fre-smoke.scope: $sysdir$cg, memory limit $mm, holds the process ($in)"
	else
		bad "fre-smoke.scope: cgroup '$cg', memory.max '$mm', process in '$in'"
	fi
	kill "$pid"
	wait "$pid" 2>/dev/null
	gone() { [ "$(systemctl show -p LoadState --value fre-smoke.scope)" = not-found ] && [ ! -d "$sysdir$cg" ]; }
	if poll 60 gone; then
		ok "fre-smoke.scope and its cgroup gone after its process ended"
	else
		bad "fre-smoke.scope after its process ended: $(systemctl show fre-smoke.scope -p LoadState,ActiveState,Result | tr '\n' ' '), cgroup dir: $(ls -d "$sysdir$cg" 2>&1)"
	fi
else
	bad "fre-smoke.scope never active: $(systemctl show fre-smoke.scope -p LoadState,ActiveState | tr '\n' ' ')"
	kill "$pid" 2>/dev/null
fi

echo "=== containers"
b=${TMPDIR:-/tmp}/smoke
mkdir -p "$b/rootfs/bin"
cp /usr/bin/busybox-static "$b/rootfs/bin/busybox"
for a in $("$b/rootfs/bin/busybox" --list); do
	[ -e "$b/rootfs/bin/$a" ] || ln -s busybox "$b/rootfs/bin/$a"
done
# bundle NAME ARG...: a bundle from runc spec, the busybox rootfs, ARGs
# as the process, no terminal.
bundle() {
	d=$b/$1
	shift
	mkdir -p "$d"
	(cd "$d" && rm -f config.json && runc spec)
	args=""
	for a in "$@"; do args="$args${args:+, }\"$a\""; done
	sed -i -e 's/"terminal": true/"terminal": false/' -e "s|\"path\": \"rootfs\"|\"path\": \"$b/rootfs\"|" \
		-e "/\"args\": \[/,/\]/c\\		\"args\": [ $args ]," "$d/config.json"
	echo "$d"
}
# run CMD...: its output and status, and the time it took.
run() {
	t0=$(date +%s%N)
	out=$("$@" 2>&1 </dev/null)
	rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
}
# detached RUNTIME [OPTION...] -- BUNDLE ID: run -d, the container's cgroup
# as seen from the guest (the bundle has a cgroup namespace), kill,
# delete; prints "cgroup ..." or "error ...".
detached() {
	opts=""
	while [ "$1" != -- ]; do opts="$opts $1"; shift; done
	r=$(echo $opts | cut -d' ' -f1)
	ropts=$(echo $opts | cut -s -d' ' -f2-)
	bd=$2 id=$3
	if ! $r $ropts run -d -b "$bd" "$id" </dev/null >/dev/null 2>"$b/$id.err"; then
		echo "error run -d: $(cat "$b/$id.err")"
		return 1
	fi
	cpid=$($r $ropts state "$id" | sed -n 's/^ *"pid": \([0-9]*\).*/\1/p')
	echo "cgroup $(grep "^$procline" /proc/$cpid/cgroup)"
	$r $ropts kill "$id" KILL
	stopped() { $r $ropts state "$id" | grep -q '"status": "stopped"'; }
	poll 60 stopped || echo "error: $id not stopped"
	$r $ropts delete "$id"
}
echo "runc: $(runc --version | head -1); fre-runc: $(fre-runc --version | head -1)"
t=$(bundle true /bin/true)
for r in runc fre-runc; do
	run $r run -b "$t" smoke-$r
	if [ $rc = 0 ]; then ok "$r run /bin/true: status 0 in $ms ms"; else bad "$r run /bin/true: status $rc: $out"; fi
done
# Where each puts a container without cgroupsPath (cgroupfs driver).
z=$(bundle sleep /bin/sleep 300)
for r in runc fre-runc; do
	out=$(detached $r -- "$z" smoke-d-$r)
	case $out in
	"cgroup $procline/"?*) ok "$r run -d sleep (no cgroupsPath): $out" ;;
	*) bad "$r run -d sleep (no cgroupsPath): $out" ;;
	esac
done
# runc's systemd driver: the container's cgroup is a scope of systemd's
# made over D-Bus (what FRE's systemd driver is to match).
s=$(bundle sd /bin/sleep 300)
sed -i '/"linux": {/a\		"cgroupsPath": "system.slice:fre-smoke:runc-sd",' "$s/config.json"
out=$(detached runc --systemd-cgroup -- "$s" smoke-sd)
sdgone() { [ "$(systemctl show -p LoadState --value fre-smoke-runc-sd.scope)" = not-found ]; }
if [ "$out" = "cgroup ${procline}/system.slice/fre-smoke-runc-sd.scope" ] && poll 60 sdgone; then
	ok "runc --systemd-cgroup run -d: $out; the scope gone after delete"
else
	bad "runc --systemd-cgroup run -d: $out"
fi
# FRE's systemd driver, the same way.
f=$(bundle sdfre /bin/sleep 300)
sed -i '/"linux": {/a\		"cgroupsPath": "system.slice:fre-smoke:fre-sd",' "$f/config.json"
out=$(detached fre-runc --systemd-cgroup -- "$f" smoke-sd-fre)
fregone() { [ "$(systemctl show -p LoadState --value fre-smoke-fre-sd.scope)" = not-found ]; }
if [ "$out" = "cgroup ${procline}/system.slice/fre-smoke-fre-sd.scope" ] && poll 60 fregone; then
	ok "fre-runc --systemd-cgroup run -d: $out; the scope gone after delete"
else
	bad "fre-runc --systemd-cgroup run -d: $out"
fi

echo "=== end at $(now) s of uptime"
if [ $fail = 0 ]; then echo "smoke: PASS"; else echo "smoke: FAIL"; fi
exit $fail
EOF

# The Go tests, after the smoke checks: every package in its own
# directory, go test's summary line for each, and the status of the whole.
cat >"$STAGE/fre/go-tests.sh" <<EOF
export FRE_TEST_SYSTEMD=1 HOME=/root FRE_PREBUILT_DIR=/fre/bin FRE_BIN_DIR=/fre/bin PATH=/fre/bin:\$PATH
${guest_env:+export $guest_env}
status=0
EOF
go_test_loop "systemd guest" "$(quoted_words "${SYSTEMD_TESTFLAGS--test.v}")" >>"$STAGE/fre/go-tests.sh"
echo "exit \$status" >>"$STAGE/fre/go-tests.sh"
cat >"$STAGE/fre/guest.sh" <<'EOF'
# The systemd guest's script: the smoke checks, then the Go tests.
sh /fre/smoke.sh
status=$?
sh /fre/go-tests.sh || status=1
echo "=== test-systemd: $([ $status = 0 ] && echo PASS || echo FAIL)"
exit $status
EOF

mkdir -p "$OUT"
status=0
"$REPO/hack/vm/systemd.sh" run "$STAGE" /fre/guest.sh "$OUT/test-systemd.log" || status=$?
# The console, less the firmware's and the kernel's noise.
console_lines "$OUT/test-systemd.log"
log "whole run $((SECONDS - start)) s"
if [ "$status" != 0 ]; then
	log "FAIL (guest status $status); console: $OUT/test-systemd.log"
	exit 1
fi
log "PASS"
