package main

// The engine scenario (issue 17; the research's figures 7 and 8 as a user
// meets them): request to response through FRE's engine (package engine,
// what fre serve runs) for a Python and a Node.js HTTP function built from
// templates, with the instances run by containerd's fre shim against the
// same engine, same containerd, same image with runtime_type switched to
// containerd's runc shim (Debian's runc):
//
//   (a) cold, sequential: each request finds no instance and starts one
//       (the engine is scaled to zero between requests), interleaved;
//   (b) cold, C at once: C requests to a function with no instance, so C
//       instances start together (every request must be answered);
//   (c) warm: requests to a running instance through the engine, against
//       the same instance called on its socket directly.

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/client"

	"github.com/fre-runtime/fre/bench/chart"
	"github.com/fre-runtime/fre/engine"
	"github.com/fre-runtime/fre/fnimage"
	"github.com/fre-runtime/fre/fret"
)

var engineOpts struct {
	n, concurrency, warm int
	langs                string
	group                bool
}

func init() {
	flag.IntVar(&engineOpts.n, "engine-n", 20, "cold requests per function and runtime, sequential (engine)")
	flag.IntVar(&engineOpts.concurrency, "engine-concurrency", 256, "cold requests at once per function and runtime (engine)")
	flag.IntVar(&engineOpts.warm, "engine-warm", 300, "warm requests per function and runtime, and as many on the socket directly (engine)")
	flag.StringVar(&engineOpts.langs, "engine-langs", "python,node", "the functions' languages (engine)")
	flag.BoolVar(&engineOpts.group, "engine-group", false, "a function's instances share one shim (engine)")
}

const engineNS = "frebench-engine"

// engineFns are the functions: an HTTP server on the channel's socket
// (docs/function-contract.md) that answers with the body's size.
var engineFns = map[string]struct{ base, entry, file, code string }{
	"python": {"{name: python}", "[python3, /code/fn.py]", "fn.py", `import http.server, json, os, socketserver

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        out = json.dumps({"hello": "python", "got": len(body)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    do_GET = do_POST
    def log_message(self, *args):
        pass

sock = "/run/fre/fn.sock"
if os.path.exists(sock):
    os.unlink(sock)
socketserver.ThreadingUnixStreamServer(sock, Handler).serve_forever()
`},
	"node": {"{name: node}", "[node, /code/fn.js]", "fn.js", `const http = require('http');
const fs = require('fs');
const sock = '/run/fre/fn.sock';
try { fs.unlinkSync(sock); } catch (e) {}
http.createServer((req, res) => {
  let n = 0;
  req.on('data', (c) => { n += c.length; });
  req.on('end', () => {
    const b = JSON.stringify({ hello: 'node', got: n });
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(b) });
    res.end(b);
  });
}).listen(sock);
`},
}

// benchEngine is one engine (one runtime) served over HTTP.
type benchEngine struct {
	name  string // fre or runc
	e     *engine.Engine
	srv   *httptest.Server
	state string
	steps *stepTimes
}

// stepTimes collects the engine's per-instance start steps.
type stepTimes struct {
	mu sync.Mutex
	d  map[string][]time.Duration
}

func (s *stepTimes) add(step string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.d == nil {
		s.d = map[string][]time.Duration{}
	}
	s.d[step] = append(s.d[step], d)
}

func (s *stepTimes) reset() {
	s.mu.Lock()
	s.d = nil
	s.mu.Unlock()
}

// line is each step's mean, in the order of a start.
func (s *stepTimes) line() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var parts []string
	for _, step := range []string{"container", "task", "start", "ready"} {
		parts = append(parts, fmt.Sprintf("%s %.1f", step, summarize(s.d[step]).mean))
	}
	return strings.Join(parts, ", ") + " ms"
}

func engineScenario(e *env) error {
	fmt.Printf("\n== engine: request to response through FRE's engine, fre shim vs runc shim (runc %s), containerd %s\n", runcVersion(), ctdVersion)
	binDir, err := filepath.Abs(e.opts.binDir)
	if err != nil {
		return err
	}
	ctdBin, err := containerdBins(binDir)
	if err != nil {
		return err
	}
	c, err := startCtd(ctdBin, binDir)
	if err != nil {
		return err
	}
	defer c.cleanup()
	dir, err := os.MkdirTemp(e.opts.memDir, "frebench-engine-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cl, err := client.New(c.sock, client.WithDefaultNamespace(engineNS))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx := context.Background()

	var langs []string
	images := map[string]string{}
	for _, l := range strings.Split(engineOpts.langs, ",") {
		fn, ok := engineFns[l]
		if !ok {
			return fmt.Errorf("engine: no function for %q", l)
		}
		ref, err := buildEngineFn(ctx, cl, filepath.Join(dir, l), l, fn.base, fn.entry, fn.file, fn.code)
		if err != nil {
			return fmt.Errorf("engine: %s: %w", l, err)
		}
		langs = append(langs, l)
		images[l] = ref
	}

	var engines []*benchEngine
	defer func() {
		for _, be := range engines {
			be.srv.Close()
			cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			be.e.Close(cctx)
			cancel()
		}
	}()
	for _, r := range []struct{ name, runtime string }{{"fre", engine.FRERuntime}, {"runc", engine.RuncRuntime}} {
		var opts any
		if r.name == "fre" {
			opts = &runtimeoptions.Options{ConfigPath: c.freOptions}
		}
		steps := &stepTimes{}
		b, err := engine.NewContainerd(engine.ContainerdConfig{Address: c.sock, Namespace: engineNS, Runtime: r.runtime, RuntimeOptions: opts,
			Group: engineOpts.group, Trace: steps.add}, "frebench-"+r.name)
		if err != nil {
			return err
		}
		state := filepath.Join(c.run, "engine-"+r.name)
		en, err := engine.New(ctx, engine.Config{Name: "frebench-" + r.name, StateDir: state, TenantRoot: filepath.Join(dir, "tenants"),
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Trace: steps.add}, b)
		if err != nil {
			b.Close()
			return err
		}
		be := &benchEngine{name: r.name, e: en, srv: httptest.NewServer(en.Handler()), state: state, steps: steps}
		engines = append(engines, be)
		for _, l := range langs {
			if _, err := en.Deploy(ctx, engine.Function{Name: l, Image: images[l], Tenant: "bench", Memory: 256 << 20,
				MaxInstances: max(engineOpts.concurrency, 1), Queue: 4 * engineOpts.concurrency,
				KeepAlive: engine.Duration(time.Hour), ReadyTimeout: engine.Duration(2 * time.Minute),
				RequestTimeout: engine.Duration(time.Minute), QueueTimeout: engine.Duration(5 * time.Minute)}); err != nil {
				return fmt.Errorf("engine %s: deploy %s: %w", r.name, l, err)
			}
		}
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * engineOpts.concurrency, MaxConnsPerHost: 0}}
	invoke := func(be *benchEngine, l string) (time.Duration, string, bool, error) {
		t0 := time.Now()
		resp, err := hc.Post(be.srv.URL+"/functions/"+l+"/invoke", "application/json", strings.NewReader(`{"x": 1}`))
		if err != nil {
			return 0, "", false, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		if err != nil || resp.StatusCode != 200 {
			return d, "", false, fmt.Errorf("%s %s: %s %s %v", be.name, l, resp.Status, b, err)
		}
		return d, resp.Header.Get("Fre-Instance"), resp.Header.Get("Fre-Cold") == "true", nil
	}
	scaleZero := func(be *benchEngine, l string) error {
		_, err := be.e.Scale(ctx, l, 0)
		return err
	}
	// One cold and one warm request each, untimed.
	for _, be := range engines {
		for _, l := range langs {
			for i := 0; i < 2; i++ {
				if _, _, _, err := invoke(be, l); err != nil {
					return err
				}
			}
			if err := scaleZero(be, l); err != nil {
				return err
			}
		}
	}

	for _, be := range engines {
		be.steps.reset()
	}
	var rows [][]string
	type key struct{ lang, rt, kind string }
	lat := map[key][]time.Duration{}

	// (a) cold, sequential, interleaved.
	fmt.Printf("(a) cold requests, sequential: %d per function and runtime, interleaved\n", engineOpts.n)
	for round := 0; round < engineOpts.n; round++ {
		for _, l := range langs {
			for j := range engines {
				be := engines[(round+j)%len(engines)]
				d, _, cold, err := invoke(be, l)
				if err != nil {
					return err
				}
				if !cold {
					return fmt.Errorf("engine %s %s: a request meant to be cold found an instance", be.name, l)
				}
				lat[key{l, be.name, "cold"}] = append(lat[key{l, be.name, "cold"}], d)
				rows = append(rows, []string{l, be.name, "cold", strconv.Itoa(round), ms(float64(d) / 1e6)})
				if err := scaleZero(be, l); err != nil {
					return err
				}
			}
		}
	}
	for _, be := range engines {
		fmt.Printf("    %-4s instance start, mean per step: %s; %s\n", be.name, be.steps.line(), preparedStarts(be))
	}
	// (b) C at once.
	C := engineOpts.concurrency
	fmt.Printf("(b) cold requests, %d at once (%d instances start together)\n", C, C)
	failed := map[key]int{}
	for _, l := range langs {
		for _, be := range engines {
			be.steps.reset()
			var wg sync.WaitGroup
			var mu sync.Mutex
			start := make(chan struct{})
			k := key{l, be.name, "burst"}
			for i := 0; i < C; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					d, _, _, err := invoke(be, l)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						failed[k]++
						return
					}
					lat[k] = append(lat[k], d)
				}()
			}
			t0 := time.Now()
			close(start)
			wg.Wait()
			fmt.Printf("    %-7s %-4s %d at once: all answered in %.0f ms; instance start, mean per step: %s\n", l, be.name, C, float64(time.Since(t0).Microseconds())/1000, be.steps.line())
			for i, d := range lat[k] {
				rows = append(rows, []string{l, be.name, "burst", strconv.Itoa(i), ms(float64(d) / 1e6)})
			}
			if err := scaleZero(be, l); err != nil {
				return err
			}
		}
	}
	// (c) warm, through the engine and on the socket.
	fmt.Printf("(c) warm requests: %d through the engine, %d on the instance's socket directly\n", engineOpts.warm, engineOpts.warm)
	for _, l := range langs {
		for _, be := range engines {
			_, inst, _, err := invoke(be, l)
			if err != nil {
				return err
			}
			direct := engine.UnixClient(filepath.Join(be.state, "channels", inst, "fn.sock"))
			for i := 0; i < engineOpts.warm; i++ {
				d, got, _, err := invoke(be, l)
				if err != nil {
					return err
				}
				if got != inst {
					return fmt.Errorf("engine %s %s: warm request went to %s, not %s", be.name, l, got, inst)
				}
				lat[key{l, be.name, "warm"}] = append(lat[key{l, be.name, "warm"}], d)
				t0 := time.Now()
				resp, err := direct.Post("http://fn/", "application/json", bytes.NewReader([]byte(`{"x": 1}`)))
				if err != nil {
					return fmt.Errorf("engine %s %s: direct: %w", be.name, l, err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat[key{l, be.name, "direct"}] = append(lat[key{l, be.name, "direct"}], time.Since(t0))
			}
			if err := scaleZero(be, l); err != nil {
				return err
			}
		}
	}
	for k, ds := range lat {
		if k.kind == "warm" || k.kind == "direct" {
			for i, d := range ds {
				rows = append(rows, []string{k.lang, k.rt, k.kind, strconv.Itoa(i), ms(float64(d) / 1e6)})
			}
		}
	}
	if err := writeCSV(e.opts.results, "engine.csv", []string{"function", "runtime", "kind", "i", "ms"}, rows); err != nil {
		return err
	}

	fmt.Printf("    %-7s %-5s %-6s %5s %9s %9s %9s %9s\n", "fn", "shim", "kind", "n", "mean ms", "p50 ms", "p99 ms", "max ms")
	sums := map[key]summary{}
	for _, l := range langs {
		for _, kind := range []string{"cold", "burst", "warm", "direct"} {
			for _, be := range engines {
				k := key{l, be.name, kind}
				s := summarize(lat[k])
				sums[k] = s
				extra := ""
				if n := failed[k]; n > 0 {
					extra = fmt.Sprintf("  %d NOT ANSWERED", n)
				}
				fmt.Printf("    %-7s %-5s %-6s %5d %9.2f %9.2f %9.2f %9.2f%s\n", l, be.name, kind, s.n, s.mean, s.p50, s.p99, s.max, extra)
			}
		}
	}
	var sumRows [][]string
	fmt.Println("    ratios fre/runc (targets: cold <= 0.5, mean and max; warm through the engine within 0.2 ms of direct):")
	for _, l := range langs {
		for _, kind := range []string{"cold", "burst"} {
			f, r := sums[key{l, "fre", kind}], sums[key{l, "runc", kind}]
			mean, mx := f.mean/r.mean, f.max/r.max
			fmt.Printf("    %-7s %-6s mean %.3fx %s, max %.3fx %s\n", l, kind, mean, verdict(mean, 0.5), mx, verdict(mx, 0.5))
			sumRows = append(sumRows, []string{l, kind, ms(f.mean), ms(r.mean), ratio(mean), ms(f.max), ms(r.max), ratio(mx)})
		}
		for _, be := range engines {
			w, d := sums[key{l, be.name, "warm"}], sums[key{l, be.name, "direct"}]
			over := w.mean - d.mean
			fmt.Printf("    %-7s warm   %s: engine %.3f ms, direct %.3f ms: +%.3f ms %s\n", l, be.name, w.mean, d.mean, over, verdict(over, 0.2))
			sumRows = append(sumRows, []string{l, "warm-" + be.name, ms(w.mean), ms(d.mean), ms(over), "", "", ""})
		}
		for k, n := range failed {
			if k.lang == l && n > 0 {
				fmt.Printf("    %-7s %s %s: %d requests not answered\n", l, k.rt, k.kind, n)
			}
		}
	}
	if err := writeCSV(e.opts.results, "engine-summary.csv",
		[]string{"function", "kind", "fre_mean_ms", "runc_mean_ms", "mean_ratio", "fre_max_ms", "runc_max_ms", "max_ratio"}, sumRows); err != nil {
		return err
	}
	for _, kind := range []string{"cold", "burst"} {
		var series []chart.Series
		for _, l := range langs {
			for _, be := range engines {
				var v []float64
				for _, d := range lat[key{l, be.name, kind}] {
					v = append(v, float64(d)/1e6)
				}
				series = append(series, chart.Series{Name: l + ", " + be.name + " shim", Values: v})
			}
		}
		title := fmt.Sprintf("Cold request to response, sequential (%d each)", engineOpts.n)
		if kind == "burst" {
			title = fmt.Sprintf("Cold request to response, %d at once", C)
		}
		png := filepath.Join(e.opts.results, "engine-"+kind+".png")
		if err := chart.CDF(png, title, "ms", false, series); err != nil {
			return err
		}
		fmt.Printf("    CDF: %s\n", png)
	}
	for k, n := range failed {
		if n > 0 {
			return fmt.Errorf("engine: %d of %s %s's requests were not answered", n, k.lang, k.rt)
		}
	}
	return nil
}

// preparedStarts is the engine's fre_prepared_starts_total lines.
func preparedStarts(be *benchEngine) string {
	rec := httptest.NewRecorder()
	be.e.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	var out []string
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(l, "fre_prepared_starts_total{") {
			f := strings.Fields(l)
			name := l[strings.Index(l, `function="`)+10:]
			out = append(out, name[:strings.IndexByte(name, '"')]+" "+f[len(f)-1])
		}
	}
	return "starts on a prepared container: " + strings.Join(out, ", ")
}

func ratio(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }

// buildEngineFn builds a function's template and imports its image.
func buildEngineFn(ctx context.Context, cl *client.Client, dir, name, base, entry, file, code string) (string, error) {
	if err := os.MkdirAll(filepath.Join(dir, "code"), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "code", file), []byte(code), 0o644); err != nil {
		return "", err
	}
	tpl := filepath.Join(dir, "fn.yaml")
	y := "apiVersion: fre.dev/v1alpha1\nid: " + name + "-http\nversion: \"1\"\nbase: " + base + "\ncode: code\nentrypoint: " + entry + "\ntenant: bench\n"
	if err := os.WriteFile(tpl, []byte(y), 0o644); err != nil {
		return "", err
	}
	t, err := fret.Load(tpl)
	if err != nil {
		return "", err
	}
	layout := filepath.Join(dir, "layout")
	res, err := fnimage.Build(ctx, t, fnimage.Options{Layout: layout})
	if err != nil {
		return "", err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(fnimage.LayoutTar(pw, layout)) }()
	_, err = cl.Import(ctx, pr)
	pr.Close()
	if err != nil {
		return "", fmt.Errorf("import: %w", err)
	}
	return res.Ref, nil
}
