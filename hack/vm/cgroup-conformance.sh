# hack/vm/cgroup-conformance.sh: runs in the cgroup v2 guest of
# hack/test-v2.sh (busybox sh). runtime-tools' linux_cgroups_* programs
# against runc and fre-runc, one after the other, in the same run; fails
# when fre-runc fails a test runc passes. Each program's TAP goes to
# /disk/conf/<runtime>/<program>.tap.
#
#   sh cgroup-conformance.sh RT   RT: runtimetest, rootfs-amd64.tar.gz
#                                 and validation/*/*.t (hack/conformance.sh build)
RT=$1
OUT=/disk/conf
mkdir -p "$OUT/bin"
echo '{"rootfs": "plain"}' >"$OUT/plain.json"
printf '#!/bin/sh\nexec runc --root /run/conf-runc "$@"\n' >"$OUT/bin/runc"
printf '#!/bin/sh\nexec fre-runc --root /run/conf-fre --config %s "$@"\n' "$OUT/plain.json" >"$OUT/bin/fre-runc"
chmod +x "$OUT/bin/runc" "$OUT/bin/fre-runc"

status=0
cd "$RT" || exit 1
for t in validation/linux_cgroups_*/*.t; do
	prog=$(basename "$t" .t)
	for r in runc fre-runc; do
		mkdir -p "$OUT/$r" "$OUT/tmp-$r"
		RUNTIME=$OUT/bin/$r TMPDIR=$OUT/tmp-$r timeout 120 "./$t" >"$OUT/$r/$prog.tap" 2>"$OUT/$r/$prog.err" </dev/null
		# What a failed program left: its containers and the cgroups it names.
		for id in $("$OUT/bin/$r" list -q 2>/dev/null); do "$OUT/bin/$r" delete --force "$id" >/dev/null 2>&1; done
		rmdir /sys/fs/cgroup/testdir/cgrouptest /sys/fs/cgroup/testdir 2>/dev/null
	done
	line="$prog:"
	for r in runc fre-runc; do
		ok=$(grep -c '^ok ' "$OUT/$r/$prog.tap")
		bad=$(grep -c '^not ok ' "$OUT/$r/$prog.tap")
		line="$line $r $ok ok, $bad not ok;"
	done
	echo "$line"
	for r in runc fre-runc; do
		why=$(grep -m1 -A2 '^not ok ' "$OUT/$r/$prog.tap" | tr '\n' ' ' | cut -c1-200)
		[ -z "$why" ] && why=$(head -c 200 "$OUT/$r/$prog.err" | tr '\n' ' ')
		[ -n "$why" ] && echo "    $r: $why"
	done
	for n in $(sed -n 's/^ok \([0-9]*\).*/\1/p' "$OUT/runc/$prog.tap"); do
		if ! grep -q "^ok $n\( \|$\)" "$OUT/fre-runc/$prog.tap"; then
			echo "    PARITY FAIL: runc passes test $n, fre-runc does not"
			status=1
		fi
	done
done
[ $status = 0 ] && echo "cgroup conformance: fre-runc passes every test runc passes"
exit $status
