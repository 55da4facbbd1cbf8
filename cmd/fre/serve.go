package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/client"

	"github.com/fre-runtime/fre/engine"
	"github.com/fre-runtime/fre/fnimage"
	"github.com/fre-runtime/fre/fret"
)

// serve runs the engine until SIGINT or SIGTERM.
func serve(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fre serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "the API's `address`: host:port, or unix:PATH")
	address := fs.String("containerd", "", "containerd's `socket` (default: an embedded containerd of the engine's own, below --state)")
	ns := fs.String("namespace", "fre", "containerd `namespace` of the instances and images")
	rt := fs.String("runtime", engine.FRERuntime, "containerd runtime `type` of the instances ("+engine.RuncRuntime+" to compare)")
	rtConfig := fs.String("runtime-config", "", "the runtime's options as a JSON `file` (the fre shim's, as ctr's --runtime-config-path)")
	name := fs.String("name", "fre", "the engine's `name`: its instances are labelled with it, and a restart cleans up after it")
	state := fs.String("state", "", "the engine's state `dir`: channels and logs (default /run/fre/engine/NAME)")
	tenants := fs.String("tenant-root", "", "tenants' workDirs (default $FRE_TENANT_ROOT, else /var/lib/fre/tenants)")
	maxBody := fs.Int64("max-body", engine.DefaultMaxBody, "the largest request body, in `bytes`")
	group := fs.Bool("group", false, "a function's instances share one shim (default: one per instance)")
	store := fs.String("store", "", "FRE's shared store, for templates' trees (default $FRE_STORE_ROOT or /var/lib/fre/store)")
	debug := fs.Bool("debug", false, "log every invocation")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintln(stderr, "fre serve: no arguments; see the flags")
		return 2
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	if *state == "" {
		*state = filepath.Join("/run/fre/engine", *name)
	}
	var rtOpts any
	if *rtConfig != "" {
		rtOpts = &runtimeoptions.Options{ConfigPath: *rtConfig}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *address == "" {
		emb, err := startEmbedded(*state)
		if err != nil {
			fmt.Fprintln(stderr, "fre serve: embedded containerd:", err)
			return 1
		}
		// Stopped last: after the engine has removed its instances.
		defer emb.stop()
		*address = emb.sock
		log.Info("embedded containerd", "socket", emb.sock, "pid", emb.cmd.Process.Pid)
	}
	b, err := engine.NewContainerd(engine.ContainerdConfig{Address: *address, Namespace: *ns, Runtime: *rt,
		RuntimeOptions: rtOpts, Group: *group, LogDir: filepath.Join(*state, "logs")}, *name)
	if err != nil {
		fmt.Fprintln(stderr, "fre serve:", err)
		return 1
	}
	e, err := engine.New(ctx, engine.Config{Name: *name, StateDir: *state, TenantRoot: *tenants, MaxBody: *maxBody, Log: log}, b)
	if err != nil {
		b.Close()
		fmt.Fprintln(stderr, "fre serve:", err)
		return 1
	}
	e.SetTemplateBuilder(templateBuilder(b.Client(), *store, *state))
	l, err := listener(*listen)
	if err != nil {
		e.Close(context.Background())
		fmt.Fprintln(stderr, "fre serve:", err)
		return 1
	}
	srv := &http.Server{Handler: e.Handler(), ReadHeaderTimeout: 10 * time.Second}
	log.Info("serving", "address", l.Addr().String(), "containerd", *address, "namespace", *ns, "runtime", *rt)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	status := 0
	select {
	case <-ctx.Done():
	case err := <-done:
		log.Error("serve", "err", err.Error())
		status = 1
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	if err := e.Close(sctx); err != nil {
		log.Error("close", "err", err.Error())
		status = 1
	}
	log.Info("stopped")
	return status
}

func listener(addr string) (net.Listener, error) {
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		os.Remove(p)
		return net.Listen("unix", p)
	}
	return net.Listen("tcp", addr)
}

// templateBuilder builds a template into an OCI layout (its tree in the
// store too), imports that into containerd and names the image in f.
func templateBuilder(cl *client.Client, store, state string) engine.TemplateBuilder {
	return func(ctx context.Context, path string, f *engine.Function) error {
		t, err := fret.Load(path)
		if err != nil {
			return err
		}
		dir, err := os.MkdirTemp(state, "build-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o := fnimage.Options{Layout: filepath.Join(dir, "layout")}
		if st, err := openStore(store); err == nil {
			o.Store = st
			o.Cache = filepath.Join(filepath.Dir(filepath.Clean(st.Root())), "build-cache")
		} else {
			return err
		}
		res, err := fnimage.Build(ctx, t, o)
		if err != nil {
			return err
		}
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(fnimage.LayoutTar(pw, o.Layout)) }()
		imgs, err := cl.Import(ctx, pr)
		pr.Close()
		if err != nil {
			return fmt.Errorf("import into containerd: %w", err)
		}
		if len(imgs) == 0 {
			return errors.New("import into containerd: no image")
		}
		f.Image = res.Ref
		if f.Tenant == "" {
			f.Tenant = t.Tenant
		}
		if f.WorkDir == "" {
			f.WorkDir = t.WorkDir
		}
		return nil
	}
}
