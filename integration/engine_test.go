package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"

	"github.com/fre-runtime/fre/cgpool"
	"github.com/fre-runtime/fre/engine"
	"github.com/fre-runtime/fre/internal/testutil"
	"github.com/fre-runtime/fre/shim/task"
)

// The engine's tests: the engine (package engine, and fre serve) on the
// shared containerd with the fre shim, its instances the tests' function
// (internal/testfn) in a busybox image.

const fnImageRef = "docker.io/library/fre-testfn:latest"

var fnImageOnce sync.Once

// fnImage imports the tests' function image (once).
func fnImage(t *testing.T, c *containerd) {
	t.Helper()
	var err error
	fnImageOnce.Do(func() {
		dir := t.TempDir()
		rootfs := filepath.Join(dir, "rootfs")
		if err = testutil.WriteBusyboxRootfs(rootfs); err != nil {
			return
		}
		if _, err = testutil.TestFn(rootfs); err != nil {
			return
		}
		os.MkdirAll(filepath.Join(rootfs, "run", "fre"), 0o755)
		os.MkdirAll(filepath.Join(rootfs, "work"), 0o755)
		tar := filepath.Join(dir, "fn.tar")
		if err = testutil.WriteOCIImageLayoutTar(tar, fnImageRef, rootfs, "/fre-testfn"); err != nil {
			return
		}
		var out string
		if out, err = c.ctr("images", "import", tar); err != nil {
			err = fmt.Errorf("%v: %s", err, out)
		}
	})
	if err != nil {
		t.Fatalf("function image: %v", err)
	}
}

// engineHarness is an engine on the shared containerd, served over HTTP.
type engineHarness struct {
	e       *engine.Engine
	srv     *httptest.Server
	tenants string
	state   string
	name    string
}

func newEngine(t *testing.T, c *containerd, name string) *engineHarness {
	t.Helper()
	fnImage(t, c)
	dir := t.TempDir()
	h := &engineHarness{tenants: filepath.Join(dir, "tenants"), state: filepath.Join(dir, "state"), name: name}
	b, err := engine.NewContainerd(engine.ContainerdConfig{Address: c.sock, Namespace: namespace, Runtime: runtimeName,
		LogDir: filepath.Join(h.state, "logs")}, name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	h.e, err = engine.New(ctx, engine.Config{Name: name, StateDir: h.state, TenantRoot: h.tenants, MaxBody: 1 << 20, Log: log}, b)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = httptest.NewServer(h.e.Handler())
	t.Cleanup(func() {
		h.srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := h.e.Close(ctx); err != nil {
			t.Errorf("engine close: %v", err)
		}
		h.checkClean(t, c)
	})
	return h
}

// checkClean: no container of the engine and no channel is left.
func (h *engineHarness) checkClean(t *testing.T, c *containerd) {
	t.Helper()
	if n := engineContainers(t, c, h.name); n != 0 {
		t.Errorf("engine %s left %d containers", h.name, n)
	}
	if ents, _ := os.ReadDir(filepath.Join(h.state, "channels")); len(ents) != 0 {
		t.Errorf("engine %s left channels %v", h.name, ents)
	}
}

func engineContainers(t *testing.T, c *containerd, name string) int {
	cl, err := client.New(c.sock, client.WithDefaultNamespace(namespace))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctrs, err := cl.Containers(context.Background(), `labels."`+engine.LabelEngine+`"==`+fmt.Sprintf("%q", name))
	if err != nil {
		t.Fatal(err)
	}
	return len(ctrs)
}

// engineTasks counts the engine's containers that have a task.
func engineTasks(t *testing.T, c *containerd, name string) int {
	cl, err := client.New(c.sock, client.WithDefaultNamespace(namespace))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	ctrs, err := cl.Containers(ctx, `labels."`+engine.LabelEngine+`"==`+fmt.Sprintf("%q", name))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ctr := range ctrs {
		if _, err := ctr.Task(ctx, nil); err == nil {
			n++
		}
	}
	return n
}

type reply struct {
	status int
	body   string
	hdr    http.Header
}

func (h *engineHarness) do(t *testing.T, method, path string, body string) reply {
	t.Helper()
	req, _ := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, string(b), resp.Header}
}

func (h *engineHarness) deploy(t *testing.T, f engine.Function) reply {
	t.Helper()
	b, _ := json.Marshal(f)
	return h.do(t, "POST", "/functions", string(b))
}

func (h *engineHarness) mustDeploy(t *testing.T, f engine.Function) {
	t.Helper()
	if r := h.deploy(t, f); r.status != 201 {
		t.Fatalf("deploy %s: %d %s", f.Name, r.status, r.body)
	}
}

func TestEngineColdWarmTenantsChannels(t *testing.T) {
	c := setup(t)
	h := newEngine(t, c, "e-basic")
	h.mustDeploy(t, engine.Function{Name: "acme-fn", Image: fnImageRef, Tenant: "acme"})
	h.mustDeploy(t, engine.Function{Name: "beta-fn", Image: fnImageRef, Tenant: "beta"})

	r := h.do(t, "POST", "/functions/acme-fn/invoke", "{}")
	if r.status != 200 || r.hdr.Get("Fre-Cold") != "true" {
		t.Fatalf("first invoke: %d cold=%s %s", r.status, r.hdr.Get("Fre-Cold"), r.body)
	}
	first := r.hdr.Get("Fre-Instance")
	r = h.do(t, "POST", "/functions/acme-fn/invoke", "{}")
	if r.status != 200 || r.hdr.Get("Fre-Cold") != "false" || r.hdr.Get("Fre-Instance") != first {
		t.Fatalf("second invoke: %d cold=%s instance %s (first %s)", r.status, r.hdr.Get("Fre-Cold"), r.hdr.Get("Fre-Instance"), first)
	}
	var info struct {
		Event string `json:"event"`
		Path  string `json:"path"`
	}
	if json.Unmarshal([]byte(r.body), &info); info.Event == "" || info.Path != "/" {
		t.Errorf("the function saw event %q path %q", info.Event, info.Path)
	}

	// Two at once: a second instance, under the host netns, beside the
	// first (each on its own socket).
	var wg sync.WaitGroup
	insts := make([]string, 2)
	for i := range insts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rr := h.do(t, "GET", "/fn/acme-fn/sleep?ms=500", "")
			if rr.status == 200 {
				insts[i] = rr.hdr.Get("Fre-Instance")
			}
		}()
	}
	wg.Wait()
	if insts[0] == "" || insts[1] == "" || insts[0] == insts[1] {
		t.Fatalf("two requests at once went to instances %q", insts)
	}

	// The tenant's workDir: shared by acme's instances, not beta's.
	if r := h.do(t, "POST", "/fn/acme-fn/write?name=note", "acme's data"); r.status != 200 {
		t.Fatalf("write: %d %s", r.status, r.body)
	}
	for i := 0; i < 3; i++ {
		if r := h.do(t, "GET", "/fn/acme-fn/read?name=note", ""); r.body != "acme's data" {
			t.Fatalf("acme reads %d %q", r.status, r.body)
		}
	}
	if r := h.do(t, "GET", "/fn/beta-fn/read?name=note", ""); r.status != 404 {
		t.Fatalf("beta reads acme's note: %d %q", r.status, r.body)
	}

	// Bad input: clear errors, and the engine goes on.
	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{"POST", "/functions/nope/invoke", "", 404},
		{"POST", "/functions/acme-fn/invoke", strings.Repeat("x", 2<<20), 413},
		{"GET", "/fn/acme-fn/garbage", "", 502},
		{"GET", "/fn/acme-fn/close", "", 502},
		{"GET", "/fn/acme-fn/exit?code=3", "", 502},
		{"POST", "/functions", `{"name": "x", "image": "` + fnImageRef + `", "tenant": "a/b"}`, 400},
		{"POST", "/functions", `{"name": "../x", "image": "` + fnImageRef + `", "tenant": "a"}`, 400},
		{"POST", "/functions", `{"name": "acme-fn", "image": "` + fnImageRef + `", "tenant": "acme"}`, 409},
		{"POST", "/functions", `{"name": "y", "image": "no/such:image", "tenant": "a"}`, 400},
		{"POST", "/functions", `{"name": "y", "bogus": 1}`, 400},
	} {
		r := h.do(t, tc.method, tc.path, tc.body)
		if r.status != tc.want || !strings.Contains(r.body, `"error"`) {
			t.Errorf("%s %s: %d %s, want %d and an error", tc.method, tc.path, r.status, r.body, tc.want)
		}
		if r := h.do(t, "POST", "/functions/acme-fn/invoke", ""); r.status != 200 {
			t.Fatalf("after %s %s: invoke %d %s", tc.method, tc.path, r.status, r.body)
		}
	}

	// A function that never listens, and one that exits at once.
	h.mustDeploy(t, engine.Function{Name: "late", Image: fnImageRef, Tenant: "acme", Args: []string{"/fre-testfn", "delay", "60000"},
		ReadyTimeout: engine.Duration(time.Second)})
	h.mustDeploy(t, engine.Function{Name: "crash", Image: fnImageRef, Tenant: "acme", Args: []string{"/bin/false"}})
	if r := h.do(t, "POST", "/functions/late/invoke", ""); r.status != 504 || !strings.Contains(r.body, "nothing listened") {
		t.Errorf("late: %d %s", r.status, r.body)
	}
	if r := h.do(t, "POST", "/functions/crash/invoke", ""); r.status != 502 || !strings.Contains(r.body, "exited before it listened") {
		t.Errorf("crash: %d %s", r.status, r.body)
	}

	m := h.do(t, "GET", "/metrics", "").body
	for _, want := range []string{`fre_cold_starts_total{function="acme-fn",runtime="io.containerd.fre.v1"}`,
		`fre_warm_hits_total{function="acme-fn"`, `fre_request_duration_seconds{function="acme-fn",runtime="io.containerd.fre.v1",quantile="0.99"}`,
		`fre_invocations_total{function="acme-fn",runtime="io.containerd.fre.v1",code="413"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, m)
		}
	}

	// Scale: instances ready before any request; then to zero.
	var st engine.FunctionStatus
	r = h.do(t, "PUT", "/functions/beta-fn/scale", `{"instances": 3}`)
	if json.Unmarshal([]byte(r.body), &st); r.status != 200 || st.Idle != 3 {
		t.Fatalf("scale to 3: %d %s", r.status, r.body)
	}
	if r := h.do(t, "POST", "/functions/beta-fn/invoke", ""); r.hdr.Get("Fre-Cold") != "false" {
		t.Errorf("invoke after scale: cold=%s", r.hdr.Get("Fre-Cold"))
	}
	r = h.do(t, "PUT", "/functions/beta-fn/scale", `{"instances": 0}`)
	if json.Unmarshal([]byte(r.body), &st); st.Instances != 0 {
		t.Fatalf("scale to 0: %s", r.body)
	}

	// Remove: the instances go, the tenant's workDir stays.
	if r := h.do(t, "DELETE", "/functions/acme-fn", ""); r.status != 204 {
		t.Fatalf("remove: %d %s", r.status, r.body)
	}
	if b, err := os.ReadFile(filepath.Join(h.tenants, "acme", "note")); err != nil || string(b) != "acme's data" {
		t.Errorf("acme's workDir after remove: %q %v", b, err)
	}
}

// An idle instance is stopped after its keep-alive: scale to zero.
func TestEngineKeepAlive(t *testing.T) {
	c := setup(t)
	h := newEngine(t, c, "e-idle")
	h.mustDeploy(t, engine.Function{Name: "fn", Image: fnImageRef, Tenant: "t", KeepAlive: engine.Duration(300 * time.Millisecond)})
	if r := h.do(t, "POST", "/functions/fn/invoke", ""); r.status != 200 {
		t.Fatalf("invoke: %d %s", r.status, r.body)
	}
	// Scaled to zero: no instance, the one prepared container (no task).
	if !pollFor(20*time.Second, func() bool {
		var st engine.FunctionStatus
		json.Unmarshal([]byte(h.do(t, "GET", "/functions/fn", "").body), &st)
		return st.Instances == 0 && engineContainers(t, c, h.name) == 1 && engineTasks(t, c, h.name) == 0
	}) {
		t.Fatalf("the idle instance outlived its keep-alive")
	}
	if r := h.do(t, "POST", "/functions/fn/invoke", ""); r.status != 200 || r.hdr.Get("Fre-Cold") != "true" {
		t.Fatalf("after scale to zero: %d cold=%s", r.status, r.hdr.Get("Fre-Cold"))
	}
}

// At most MaxInstances, and the queue bounded: a request over both is
// refused at once, the queued ones are served.
func TestEngineQueue(t *testing.T) {
	c := setup(t)
	h := newEngine(t, c, "e-queue")
	h.mustDeploy(t, engine.Function{Name: "fn", Image: fnImageRef, Tenant: "t", MaxInstances: 1, Queue: 1})
	var wg sync.WaitGroup
	codes := make([]int, 3)
	// In order: the first takes the one instance, the second waits, the
	// third finds the queue full (each sent once the engine shows the
	// one before in place).
	inPlace := []func(engine.FunctionStatus) bool{
		func(st engine.FunctionStatus) bool { return st.Busy+st.Starting == 1 },
		func(st engine.FunctionStatus) bool { return st.Waiting == 1 },
		nil,
	}
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = h.do(t, "GET", "/fn/fn/sleep?ms=3000", "").status
		}()
		if inPlace[i] != nil && !pollFor(30*time.Second, func() bool {
			var st engine.FunctionStatus
			return json.Unmarshal([]byte(h.do(t, "GET", "/functions/fn", "").body), &st) == nil && inPlace[i](st)
		}) {
			t.Fatalf("request %d not in place", i)
		}
	}
	wg.Wait()
	ok, busy := 0, 0
	for _, c := range codes {
		switch c {
		case 200:
			ok++
		case 503:
			busy++
		}
	}
	if ok != 2 || busy != 1 {
		t.Fatalf("codes %v: want two served and one refused", codes)
	}
}

// fre serve killed mid-request leaves instances; the next start of that
// engine removes them, their channels and cgroups; SIGTERM stops it
// cleanly.
func TestEngineKilledAndRestarted(t *testing.T) {
	c := setup(t)
	fnImage(t, c)
	dir := t.TempDir()
	fre := filepath.Join(dir, "fre")
	if err := testutil.GoBuild(fre, "../cmd/fre"); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "api.sock")
	state := filepath.Join(dir, "state")
	start := func() *exec.Cmd {
		cmd := exec.Command(fre, "serve", "--listen", "unix:"+sock, "--containerd", c.sock, "--namespace", namespace,
			"--name", "e-killed", "--state", state, "--tenant-root", filepath.Join(dir, "tenants"))
		var logs bytes.Buffer
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stopServe(t, cmd, state) })
		if !pollFor(30*time.Second, func() bool {
			c, err := net.Dial("unix", sock)
			if err == nil {
				c.Close()
			}
			return err == nil
		}) {
			t.Fatalf("fre serve did not listen: %s", logs.String())
		}
		return cmd
	}
	api := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return net.Dial("unix", sock)
	}}}
	call := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, "http://fre"+path, strings.NewReader(body))
		resp, err := api.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	cmd := start()
	if code, body := call("POST", "/functions", `{"name": "fn", "image": "`+fnImageRef+`", "tenant": "t"}`); code != 201 {
		t.Fatalf("deploy: %d %s", code, body)
	}
	go call("GET", "/fn/fn/sleep?ms=30000", "")
	// Mid-request: the instance listens (its socket is there) and has the
	// request (its served count is not read: the sleep holds it).
	if !pollFor(30*time.Second, func() bool {
		socks, _ := filepath.Glob(filepath.Join(state, "channels", "*", "fn.sock"))
		return len(socks) == 1 && engineTasks(t, c, "e-killed") == 1
	}) {
		t.Fatal("no instance for the request")
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	// Left behind: the instance and the prepared container.
	if n := engineContainers(t, c, "e-killed"); n != 2 {
		t.Fatalf("after the kill: %d containers, want the instance and the prepared one", n)
	}
	cmd = start()
	if n := engineContainers(t, c, "e-killed"); n != 0 {
		t.Errorf("after the restart: %d instances left", n)
	}
	if ents, _ := os.ReadDir(filepath.Join(state, "channels")); len(ents) != 0 {
		t.Errorf("after the restart: channels %v", ents)
	}
	// (Read only: a cgroup of the engine's instance, by its name.)
	for _, pat := range []string{"/sys/fs/cgroup/" + namespace + "/e-killed-*", "/sys/fs/cgroup/*/" + namespace + "/e-killed-*"} {
		if left, _ := filepath.Glob(pat); len(left) > 0 {
			t.Errorf("cgroups of the killed engine's instance left: %v", left)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("fre serve after SIGTERM: %v", err)
	}
}

// The runtime's annotations through the shim (as CRI passes them): the
// tenant's workDir and the channel, with ctr alone.
func TestShimTenantAndChannel(t *testing.T) {
	c := setup(t)
	fnImage(t, c)
	ids := []string{"fre-chan-a", "fre-chan-b"}
	for _, id := range ids {
		t.Cleanup(func() { c.removeTask(id) })
		if out, err := c.ctr("run", "-d", "--runtime", runtimeName, "--annotation", "run.fre.tenant=shim-acme",
			"--annotation", "run.fre.channel=true", fnImageRef, id); err != nil {
			t.Fatalf("ctr run -d: %v: %s", err, out)
		}
	}
	clients := make([]*http.Client, len(ids))
	for i, id := range ids {
		sock := filepath.Join(c.channelRoot(), id, "fn.sock")
		cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return net.Dial("unix", sock)
		}}}
		if !pollFor(20*time.Second, func() bool {
			r, err := cl.Get("http://fn/health")
			if err == nil {
				r.Body.Close()
			}
			return err == nil
		}) {
			t.Fatalf("%s: nothing listens on its channel %s", id, sock)
		}
		clients[i] = cl
	}
	r, err := clients[0].Post("http://fn/write?name=via-shim", "text/plain", strings.NewReader("shared"))
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("write: %v %v", r, err)
	}
	r.Body.Close()
	r, err = clients[1].Get("http://fn/read?name=via-shim")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if string(b) != "shared" {
		t.Fatalf("the tenant's second container reads %q", b)
	}
	for _, id := range ids {
		c.removeTask(id)
		if _, err := os.Stat(filepath.Join(c.channelRoot(), id)); !os.IsNotExist(err) {
			t.Errorf("channel of %s after delete: %v", id, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(c.tenantRoot(), "shim-acme", "via-shim")); err != nil || string(b) != "shared" {
		t.Errorf("the tenant's workDir after delete: %q %v", b, err)
	}
}

// fre serve with no --containerd runs an embedded one of its own (as make
// demo's), deploys a template it builds and imports there, serves it, and
// stops the containerd when it stops.
func TestEngineEmbeddedContainerdTemplate(t *testing.T) {
	c := setup(t)
	dir := t.TempDir()
	fre := filepath.Join(dir, "fre")
	if err := testutil.GoBuild(fre, "../cmd/fre"); err != nil {
		t.Fatal(err)
	}
	code := filepath.Join(dir, "fn", "code")
	os.MkdirAll(code, 0o755)
	if _, err := testutil.TestFn(code); err != nil {
		t.Fatal(err)
	}
	tpl := filepath.Join(dir, "fn", "fn.yaml")
	os.WriteFile(tpl, []byte("apiVersion: fre.dev/v1alpha1\nid: emb\nversion: \"1\"\nbase: {name: static}\ncode: code\n"+
		"entrypoint: [/code/fre-testfn]\ntenant: emb\nworkDir: /data\n"), 0o644)
	sock := filepath.Join(dir, "api.sock")
	state := filepath.Join(dir, "state")
	// The shared containerd's namespace: its clean-up (cgroups under
	// /fre-test, the shim root's pool) covers this one's too.
	cmd := exec.Command(fre, "serve", "--listen", "unix:"+sock, "--name", "e-emb", "--namespace", namespace, "--state", state,
		"--tenant-root", filepath.Join(dir, "tenants"), "--store", filepath.Join(dir, "store"))
	cmd.Env = append(os.Environ(), "FRE_CONTAINERD_BIN_DIR="+c.binDir, "PATH="+c.shimDir+":"+os.Getenv("PATH"),
		"FRE_CGPOOL_DIR="+c.cgpoolDir(), "FRE_NETNS_POOL_DIR="+c.netnsPoolDir(), cgpool.RegistryEnv+"="+c.cgpoolRegistry(),
		task.ShimRegistryEnv+"="+filepath.Join(c.dir, "shims"))
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopServe(t, cmd, state) })
	if !pollFor(60*time.Second, func() bool {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		t.Fatalf("fre serve did not listen: %s", logs.String())
	}
	api := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return net.Dial("unix", sock)
	}}}
	call := func(method, path, body string) (int, string, http.Header) {
		req, _ := http.NewRequest(method, "http://fre"+path, strings.NewReader(body))
		resp, err := api.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	if code, body, _ := call("POST", "/functions", `{"name": "emb", "template": "`+tpl+`"}`); code != 201 ||
		!strings.Contains(body, `"image": "fre.dev/emb:1"`) || !strings.Contains(body, `"workDir": "/data"`) {
		t.Fatalf("deploy from a template: %d %s\n%s", code, body, logs.String())
	}
	if code, body, h := call("POST", "/functions/emb/invoke", ""); code != 200 || h.Get("Fre-Cold") != "true" {
		t.Fatalf("invoke: %d %s", code, body)
	}
	if code, body, _ := call("POST", "/fn/emb/write?name=x", "kept"); code != 200 {
		t.Fatalf("write: %d %s", code, body)
	}
	pid, _ := os.ReadFile(filepath.Join(state, "containerd", "containerd.pid"))
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("fre serve after SIGTERM: %v\n%s", err, logs.String())
	}
	if p, err := strconv.Atoi(strings.TrimSpace(string(pid))); err != nil || syscall.Kill(p, 0) == nil {
		t.Errorf("the embedded containerd (pid %q) still runs after fre serve stopped", pid)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "tenants", "emb", "x")); err != nil || string(b) != "kept" {
		t.Errorf("the tenant's workDir: %q %v", b, err)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(mi, []byte(dir)) {
		t.Errorf("mounts left under %s", dir)
	}
}

// stopServe stops a fre serve that a failed test left running: SIGTERM
// (it removes its instances and stops its embedded containerd), then
// SIGKILL, and its embedded containerd by the pid it recorded.
func stopServe(t *testing.T, cmd *exec.Cmd, state string) {
	if cmd.ProcessState != nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(60 * time.Second):
	}
	cmd.Process.Kill()
	<-done
	if b, err := os.ReadFile(filepath.Join(state, "containerd", "containerd.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	t.Errorf("fre serve ignored SIGTERM for 60 s")
}
