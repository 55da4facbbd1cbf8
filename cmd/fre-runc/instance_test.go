package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/fre-runtime/fre/internal/testutil"
)

// instanceEnv is a runtime root whose config puts tenants and channels in
// the test's own directories.
func instanceEnv(t *testing.T) (e *env, tenants, channels string) {
	dir := t.TempDir()
	tenants, channels = filepath.Join(dir, "tenants"), filepath.Join(dir, "channels")
	cfg := filepath.Join(dir, "fre.json")
	body := fmt.Sprintf(`{"tenantRoot": %q, "channelRoot": %q, "netnsPolicy": "host"}`, tenants, channels)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return newEnv(t, "--config", cfg), tenants, channels
}

// fnBundle is a busybox bundle with the tests' function at /fre-testfn
// and the given annotations, its root read-only.
func fnBundle(t *testing.T, ann map[string]string, args ...string) string {
	t.Helper()
	b := bundle(t, args...)
	if _, err := testutil.TestFn(filepath.Join(b, "rootfs")); err != nil {
		t.Fatal(err)
	}
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		s.Root.Readonly = true
		s.Annotations = ann
	})
	return b
}

func unixClient(sock string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}}
}

// waitSocket polls until the function accepts on sock.
func waitSocket(t *testing.T, sock string) *http.Client {
	t.Helper()
	c := unixClient(sock)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := c.Get("http://fn/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("function on %s not ready: %v", sock, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func get(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b)
}

// Two instances of one tenant share its workDir, under the host netns
// policy each reached only through its own channel; another tenant sees
// none of it; the workDir outlives the instances and the channels go with
// them.
func TestTenantWorkDirAndChannel(t *testing.T) {
	e, tenants, channels := instanceEnv(t)
	ids := []string{newID(), newID(), newID()}
	tenantOf := []string{"acme", "acme", "beta"}
	for i, id := range ids {
		b := fnBundle(t, map[string]string{"run.fre.tenant": tenantOf[i], "run.fre.channel": "true"}, "/fre-testfn")
		e.must("run", "-d", "--bundle", b, id)
	}
	clients := make([]*http.Client, len(ids))
	for i, id := range ids {
		clients[i] = waitSocket(t, filepath.Join(channels, id, "fn.sock"))
	}
	// Both acme instances listen at once (no port, no netns of their own).
	seen := map[string]bool{}
	for i := range ids {
		var info struct {
			Instance string `json:"instance"`
		}
		json.Unmarshal([]byte(get(t, clients[i], "http://fn/")), &info)
		seen[info.Instance] = true
	}
	if len(seen) != 3 {
		t.Fatalf("instances answered as %v, want three", seen)
	}
	resp, err := clients[0].Post("http://fn/write?name=shared", "text/plain", strings.NewReader("from instance 0"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("write: %v %v", resp, err)
	}
	resp.Body.Close()
	if got := get(t, clients[1], "http://fn/read?name=shared"); got != "from instance 0" {
		t.Fatalf("acme's second instance reads %q", got)
	}
	if r, err := clients[2].Get("http://fn/read?name=shared"); err != nil || r.StatusCode != 404 {
		t.Fatalf("beta reads acme's file: %v %v", r, err)
	} else {
		r.Body.Close()
	}
	for _, id := range ids {
		e.must("kill", id, "KILL")
		e.waitStatus(id, specs.StateStopped)
		e.must("delete", id)
		if _, err := os.Stat(filepath.Join(channels, id)); !os.IsNotExist(err) {
			t.Errorf("channel of %s left after delete: %v", id, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(tenants, "acme", "shared")); err != nil || string(b) != "from instance 0" {
		t.Fatalf("acme's workDir after delete: %q %v", b, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(tenants, "beta")); len(ents) != 0 {
		t.Fatalf("beta's workDir has %v", ents)
	}
}

// Bad tenant names, workDirs, sizes and channels are refused with the
// annotation named, and leave no state, channel or tenant directory.
func TestInstanceBadInput(t *testing.T) {
	e, tenants, channels := instanceEnv(t)
	for _, tc := range []struct {
		ann  map[string]string
		want string
	}{
		{map[string]string{"run.fre.tenant": "../etc"}, `tenant "../etc"`},
		{map[string]string{"run.fre.tenant": "a/b"}, `tenant "a/b"`},
		{map[string]string{"run.fre.tenant": ".."}, `tenant ".."`},
		{map[string]string{"run.fre.tenant": "Acme"}, `tenant "Acme"`},
		{map[string]string{"run.fre.tenant": "ok", "run.fre.workdir": "relative"}, "run.fre.workdir"},
		{map[string]string{"run.fre.tenant": "ok", "run.fre.workdir": "/"}, "run.fre.workdir"},
		{map[string]string{"run.fre.tenant": "ok", "run.fre.workdir": "/run/fre/x"}, "overlaps"},
		{map[string]string{"run.fre.tenant": "ok", "run.fre.tenant.size": "lots"}, "run.fre.tenant.size"},
		{map[string]string{"run.fre.workdir": "/w"}, "without run.fre.tenant"},
		{map[string]string{"run.fre.channel": "../x"}, "run.fre.channel"},
	} {
		id := newID()
		b := bundle(t, "true")
		testutil.MutateSpec(t, b, func(s *specs.Spec) { s.Annotations = tc.ann })
		_, errOut, code := e.run(nil, "run", "--bundle", b, id)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want an error with %q", tc.ann, code, errOut, tc.want)
		}
		if _, err := os.Stat(filepath.Join(e.root, id)); err == nil {
			t.Errorf("%v: state left behind", tc.ann)
		}
	}
	if ents, _ := os.ReadDir(channels); len(ents) != 0 {
		t.Errorf("channels left: %v", ents)
	}
	for _, bad := range []string{"etc", "Acme", "a", "ok"} {
		if _, err := os.Stat(filepath.Join(tenants, bad)); err == nil {
			t.Errorf("tenant dir %s made by a refused create", bad)
		}
	}
	// A channel name in use is refused; the first instance keeps it.
	id := newID()
	b := fnBundle(t, map[string]string{"run.fre.channel": "taken"}, "/fre-testfn")
	e.must("run", "-d", "--bundle", b, id)
	c := waitSocket(t, filepath.Join(channels, "taken", "fn.sock"))
	_, errOut, code := e.run(nil, "run", "--bundle", b, newID())
	if code == 0 || !strings.Contains(errOut, "channel taken is in use") {
		t.Errorf("second channel 'taken': exit %d, %q", code, errOut)
	}
	get(t, c, "http://fn/health")
	e.must("delete", "--force", id)
}

// A tenant's size limit: where the file system has project quota (the
// v2 guest's disk), a write past it fails with EDQUOT in the container;
// elsewhere the limit is refused clearly. Either way what the tenant had
// is kept.
func TestTenantSize(t *testing.T) {
	e, tenants, _ := instanceEnv(t)
	os.MkdirAll(filepath.Join(tenants, "acme"), 0o770)
	os.WriteFile(filepath.Join(tenants, "acme", "keep"), []byte("data"), 0o644)
	b := bundle(t, "sh", "-c", "dd if=/dev/zero of=/work/big bs=64k count=64 2>&1; echo rc=$?")
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		s.Annotations = map[string]string{"run.fre.tenant": "acme", "run.fre.tenant.size": "1Mi"}
	})
	out, errOut, code := e.run(nil, "run", "--bundle", b, newID())
	if code == 0 {
		// Limited: 4 MiB into 1 MiB fails.
		if !strings.Contains(out, "quota exceeded") || strings.Contains(out, "rc=0") {
			t.Errorf("a 4 MiB write under a 1 MiB limit: %s", out)
		}
		if fi, err := os.Stat(filepath.Join(tenants, "acme", "big")); err != nil || fi.Size() > 1<<20 {
			t.Errorf("the tenant's file past its limit: %v %v", fi, err)
		}
	} else if !strings.Contains(errOut, "project") {
		t.Errorf("refused without saying why: %q", errOut)
	} else {
		t.Logf("refused: %s", errOut)
	}
	if b, err := os.ReadFile(filepath.Join(tenants, "acme", "keep")); err != nil || string(b) != "data" {
		t.Errorf("tenant data: %q %v", b, err)
	}
}
