#!/usr/bin/env bash
# make demo: FRE's main job on an embedded default. Makes a busybox bundle
# from Debian's busybox-static, runs it with bin/fre-runc and prints what it
# printed and how long the run took. Then, once the shim is built, runs a
# container of a locally built busybox image through a private containerd
# with `ctr run --runtime io.containerd.fre.v1`. Between the two, builds a
# function from a template with bin/fre (fre build) and runs it with
# fre-runc, and then through containerd from its OCI layout.
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=$REPO/bin
CTRD_BIN=${CONTAINERD_BIN_DIR:-$BIN/containerd-v2.4.2}
FRE=$BIN/fre-runc

if [ "$(id -u)" != 0 ]; then
	echo "demo: must run as root" >&2
	exit 1
fi
if ! [ -x "$FRE" ]; then
	echo "demo: $FRE is missing: 'make build' failed (see above)" >&2
	exit 1
fi

work=$(mktemp -d /tmp/fre-demo.XXXXXX)
pids=()
# containerd's default spec puts a container's cgroup under /<namespace>:
# the parents the demo makes go with it.
# (The engine's namespace is fre: /fre, the same way.)
premade=$(ls -d /sys/fs/cgroup/*/default /sys/fs/cgroup/default /sys/fs/cgroup/*/fre /sys/fs/cgroup/fre 2>/dev/null || true)
cleanup() {
	# fre-runc's pool keeps idle cgroups by design; the demo leaves none.
	for r in "$work/state" "$work"/containerd/fre-state/*; do
		[ -d "$r" ] && "$FRE" --root "$r" pool drain >/dev/null 2>&1 || true
	done
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	for d in /sys/fs/cgroup/*/default /sys/fs/cgroup/default /sys/fs/cgroup/*/fre /sys/fs/cgroup/fre; do
		[ -d "$d" ] && ! grep -qxF "$d" <<<"$premade" && rmdir "$d" 2>/dev/null || true
	done
	# Never let rm walk into a mount something left behind.
	if ! awk -v d="$work" 'index($5, d) == 1 {found=1} END {exit !found}' /proc/self/mountinfo; then
		rm -rf "$work"
	else
		echo "demo: mounts left under $work; not removing it" >&2
	fi
}
trap cleanup EXIT

# ms since an $EPOCHREALTIME reading.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", (b-a)*1000}'; }

(cd "$REPO" && go build -o "$work/mkbundle" ./hack/mkbundle)
"$work/mkbundle" bundle "$work/bundle" /bin/sh -c 'echo "hello from a FRE container: $(hostname), uid $(id -u), pid $$"'

id=fre-demo-$$
# The demo's shared-layer store is its own (the default is /var/lib/fre/store).
# For a plain-directory bundle the store is opt-in ({"rootfs": "shared"}):
# by default fre-runc runs the bundle's rootfs as it is, as runc does.
export FRE_STORE_ROOT=$work/store
# So are tenants' workDirs and instances' channels (default
# /var/lib/fre/tenants and /run/fre/channels).
export FRE_TENANT_ROOT=$work/tenants FRE_CHANNEL_ROOT=$work/channels
echo '{"rootfs": "shared"}' >"$work/fre-shared.json"
echo "== fre-runc run (busybox bundle, runc's default spec, --config {\"rootfs\": \"shared\"})"
for pass in first second; do
	t0=$EPOCHREALTIME
	rc=0
	"$FRE" --root "$work/state" --config "$work/fre-shared.json" run --bundle "$work/bundle" "$id-$pass" </dev/null || rc=$?
	case $pass in
	first) note="the image is imported into the shared-layer store" ;;
	second) note="the image is in the store already" ;;
	esac
	echo "== exit $rc, took $(since "$t0") ms ($pass run: $note)"
	"$FRE" --root "$work/state" delete --force "$id-$pass" >/dev/null 2>&1 || true
done

if command -v runc >/dev/null; then
	t0=$EPOCHREALTIME
	runc --root "$work/runc-state" run --bundle "$work/bundle" "$id" </dev/null >/dev/null 2>&1 || true
	echo "   (runc, same bundle: $(since "$t0") ms)"
fi

# A function from a template (issue 16): fre build makes its image (an OCI
# layout, its tree in the store, a bundle), and fre-runc runs it with
# nothing else in its root.
fn=$work/fn
mkdir -p "$fn/code"
if dpkg-query -W libpython3.11-stdlib >/dev/null 2>&1; then
	base='{name: python, version: "3.11"}'
	ep='[python3, /code/handler.py]'
	# With a channel (fre serve's instances: /run/fre is theirs) it
	# serves HTTP on /run/fre/fn.sock, FRE's function contract
	# (docs/function-contract.md); without one it answers once and exits.
	cat >"$fn/code/handler.py" <<'PY'
import http.server, json, os, socketserver

def answer(body=b""):
    return json.dumps({"hello": "from a FRE function", "host": os.uname().nodename,
                       "got": len(body)}).encode() + b"\n"

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        out = answer(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    do_GET = do_POST
    def log_message(self, *args):
        pass

if os.access("/run/fre", os.W_OK):
    sock = "/run/fre/fn.sock"
    if os.path.exists(sock):
        os.unlink(sock)
    socketserver.ThreadingUnixStreamServer(sock, Handler).serve_forever()
else:
    print(answer().decode(), end="")
PY
else
	# No python on this host: the tests' function (a static Go server
	# on the same contract), which without a channel says why and exits.
	base='{name: static}'
	ep='[/code/fn]'
	(cd "$REPO" && CGO_ENABLED=0 go build -ldflags='-s -w' -o "$fn/code/fn" ./internal/testfn)
fi
cat >"$fn/fn.yaml" <<YAML
apiVersion: fre.dev/v1alpha1
id: hello-fn
version: "1"
base: $base
code: code
entrypoint: $ep
resources: {memory: 64Mi, cpu: 500m, pids: 32}
tenant: demo
YAML
echo "== fre build $fn/fn.yaml"
"$BIN/fre" build --store "$work/store" --layout "$work/fn-layout" --bundle "$work/fn-bundle" "$fn/fn.yaml"
echo "== fre-runc run (the function's bundle, on its store tree)"
for pass in first second; do
	t0=$EPOCHREALTIME
	rc=0
	"$FRE" --root "$work/state" run --bundle "$work/fn-bundle" "$id-fn-$pass" </dev/null || rc=$?
	echo "== exit $rc, took $(since "$t0") ms ($pass run)"
	"$FRE" --root "$work/state" delete --force "$id-fn-$pass" >/dev/null 2>&1 || true
done

# The engine (issue 17): fre serve on the demo's containerd deploys the
# template (built and imported into its namespace) and turns HTTP
# requests into instances with the fre shim: the first request starts one
# (cold), the next finds it running (warm).
demo_engine() {
	local d=$1 api=unix:$1/fre-api.sock
	echo "== fre serve (the engine: the demo's containerd, the fre shim; deploy $fn/fn.yaml, invoke it)"
	"$BIN/fre" serve --listen "$api" --containerd "$d/containerd.sock" --runtime-config "$d/fre.json" \
		--state "$work/engine" --store "$work/store" 2>"$d/engine.log" &
	local epid=$!
	pids+=("$epid")
	local i
	for i in $(seq 200); do [ -S "$d/fre-api.sock" ] && break; sleep 0.05; done
	curl -sf --unix-socket "$d/fre-api.sock" -X POST http://fre/functions \
		-d "{\"name\": \"hello\", \"template\": \"$fn/fn.yaml\", \"keepAlive\": \"30s\"}" >"$d/deploy.json" ||
		{ echo "demo: deploy failed:"; cat "$d/deploy.json" "$d/engine.log"; return 1; }
	echo "   deployed: $(tr -d '\n ' <"$d/deploy.json" | cut -c1-120)..."
	echo "-- first request (cold: a new instance)"
	"$BIN/fre" invoke --api "$api" --time hello '{"n": 1}'
	echo "-- second request (warm: the same instance)"
	"$BIN/fre" invoke --api "$api" --time hello '{"n": 2}'
	echo "-- metrics (GET /metrics)"
	curl -sf --unix-socket "$d/fre-api.sock" http://fre/metrics | grep -E '^fre_(cold_starts_total|warm_hits_total)\{|^fre_request_duration_seconds\{.*quantile="0.5"' || true
	kill -TERM "$epid"
	wait "$epid" || echo "demo: fre serve exited with $?"
}

demo_containerd() {
	if ! [ -x "$BIN/containerd-shim-fre-v1" ]; then
		echo "== containerd demo skipped: bin/containerd-shim-fre-v1 not built yet"
		return 0
	fi
	if ! [ -x "$CTRD_BIN/containerd" ]; then
		echo "== containerd demo skipped: run 'make containerd' first"
		return 0
	fi
	local d=$work/containerd
	mkdir -p "$d"
	cat >"$d/config.toml" <<TOML
version = 3
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$d/containerd.sock"
TOML
	PATH=$BIN:$CTRD_BIN:$PATH "$CTRD_BIN/containerd" --config "$d/config.toml" >"$d/log" 2>&1 &
	pids+=($!)
	local i
	for i in $(seq 100); do [ -S "$d/containerd.sock" ] && break; sleep 0.05; done
	local ctr=("$CTRD_BIN/ctr" -a "$d/containerd.sock")
	"$work/mkbundle" image "$d/busybox.tar" docker.io/library/busybox-fre:latest
	"${ctr[@]}" images import "$d/busybox.tar" >/dev/null
	echo "== ctr run --runtime io.containerd.fre.v1 (private containerd)"
	# The shim's state root is the demo's too (default /run/containerd/fre).
	printf '{"root": "%s"}\n' "$d/fre-state" >"$d/fre.json"
	t0=$EPOCHREALTIME
	rc=0
	PATH=$BIN:$CTRD_BIN:$PATH "${ctr[@]}" run --rm --runtime io.containerd.fre.v1 \
		--runtime-config-path "$d/fre.json" \
		docker.io/library/busybox-fre:latest "fre-demo-$$" \
		/bin/sh -c 'echo "hello from FRE under containerd: $(hostname)"' </dev/null || rc=$?
	echo "== exit $rc, took $(since "$t0") ms"
	# The function's image, from fre build's OCI layout.
	tar -C "$work/fn-layout" -cf "$d/fn.tar" .
	"${ctr[@]}" images import "$d/fn.tar" >/dev/null
	echo "== ctr run --runtime io.containerd.fre.v1 fre.dev/hello-fn:1 (the function's image)"
	t0=$EPOCHREALTIME
	rc=0
	PATH=$BIN:$CTRD_BIN:$PATH "${ctr[@]}" run --rm --runtime io.containerd.fre.v1 \
		--runtime-config-path "$d/fre.json" fre.dev/hello-fn:1 "fre-demo-fn-$$" </dev/null || rc=$?
	echo "== exit $rc, took $(since "$t0") ms"
	demo_engine "$d"
	# Let containerd unmount its snapshots before it goes.
	"${ctr[@]}" images rm docker.io/library/busybox-fre:latest fre.dev/hello-fn:1 >/dev/null 2>&1 || true
}
demo_containerd
