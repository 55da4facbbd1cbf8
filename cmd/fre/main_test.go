package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fre-runtime/fre/internal/testutil"
)

func TestTemplateCheck(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"template", "check", "../../fret/testdata/python.yaml"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got["id"] != "resize-image" || got["workDir"] != "/work" {
		t.Fatalf("output %s: %v", out.String(), err)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: fre.dev/v1alpha1\nid: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errOut.Reset()
	if code := run([]string{"template", "check", "../../fret/testdata/node.yaml", bad}, &out, &errOut); code != 1 {
		t.Fatalf("a bad template: exit %d, want 1", code)
	}
	if !strings.Contains(errOut.String(), bad) || !strings.Contains(errOut.String(), "version") {
		t.Errorf("stderr %q: want the file and the field", errOut.String())
	}
	if !strings.Contains(out.String(), `"thumbnail"`) {
		t.Errorf("the good one is still printed: %q", out.String())
	}
	if code := run([]string{"build"}, &out, &errOut); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}

// fre build writes a layout, the store's tree and a bundle, and the
// bundle runs with fre-runc on that tree with nothing of the host: the
// function answers, for the static base and the language bases.
func TestBuildAndRun(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs the function with fre-runc")
	}
	work := t.TempDir()
	freRunc := filepath.Join(work, "fre-runc")
	if err := testutil.GoBuild(freRunc, "../fre-runc"); err != nil {
		t.Fatal(err)
	}
	bb, err := testutil.FindBusybox()
	if err != nil {
		t.Skip(err)
	}
	for _, tc := range []struct {
		name, base, needs, file, code, entrypoint, want string
	}{
		{"static", "static", "", "busybox", "", `[/code/busybox, sh, -c, "echo hello from $(hostname); ls /"]`,
			"hello from fn-static\ncode\ndev\netc\nproc\nroot\nrun\nsys\ntmp\nwork\n"},
		{"python", "{name: python, version: \"3.11\"}", "libpython3.11-stdlib", "handler.py",
			"import json, os\nprint(json.dumps({'hello': os.uname().nodename}))\n", "[python3, /code/handler.py]", `{"hello": "fn-python"}` + "\n"},
		{"node", "node", "nodejs", "handler.js", "console.log(JSON.stringify({hello: require('os').hostname()}));\n",
			"[node, /code/handler.js]", `{"hello":"fn-node"}` + "\n"},
		{"java", "{name: java, version: \"17\"}", "openjdk-17-jre-headless", "Hello.java",
			"public class Hello { public static void main(String[] a) { System.out.println(\"hello from java \" + Runtime.version().feature()); } }\n",
			"[java, -Xmx32m, -XX:+UseSerialGC, -cp, /code, Hello]", "hello from java 17\n"},
		{"perl", "perl", "perl-base", "handler.pl", "print \"hello from perl\\n\";\n", "[perl, /code/handler.pl]", "hello from perl\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needs != "" && exec.Command("dpkg-query", "-W", tc.needs).Run() != nil {
				t.Skipf("%s is not installed here", tc.needs)
			}
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, "code"), 0o755); err != nil {
				t.Fatal(err)
			}
			data := []byte(tc.code)
			mode := os.FileMode(0o644)
			if tc.code == "" {
				if data, err = os.ReadFile(bb); err != nil {
					t.Fatal(err)
				}
				mode = 0o755
			}
			if err := os.WriteFile(filepath.Join(dir, "code", tc.file), data, mode); err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(tc.file, ".java") {
				// The code is the compiled class, as javac on the build host makes it.
				src := filepath.Join(dir, "code", tc.file)
				if out, err := exec.Command("javac", "-d", filepath.Join(dir, "code"), src).CombinedOutput(); err != nil {
					t.Skipf("javac: %v: %s", err, out)
				}
				os.Remove(src)
			}
			tpl := filepath.Join(dir, "fn.yaml")
			base := tc.base
			if !strings.HasPrefix(base, "{") {
				base = "{name: " + base + "}"
			}
			os.WriteFile(tpl, []byte("apiVersion: fre.dev/v1alpha1\nid: fn-"+tc.name+"\nversion: \"1\"\nbase: "+base+
				"\ncode: code\nentrypoint: "+tc.entrypoint+"\nresources: {memory: 64Mi, pids: 16}\ntenant: ops\n"), 0o644)
			out := t.TempDir()
			store, layout, bundle := filepath.Join(out, "store"), filepath.Join(out, "layout"), filepath.Join(out, "bundle")
			var stdout, stderr bytes.Buffer
			if code := run([]string{"build", "--store", store, "--layout", layout, "--bundle", bundle, tpl}, &stdout, &stderr); code != 0 {
				t.Fatalf("fre build: exit %d: %s", code, stderr.String())
			}
			t.Logf("fre build: %s", stdout.String())
			if !strings.HasPrefix(stdout.String(), "fre.dev/fn-"+tc.name+":1 sha256:") {
				t.Errorf("output %q", stdout.String())
			}
			root := filepath.Join(out, "state")
			id := "fre-build-test-" + tc.name + "-" + strconv.Itoa(os.Getpid())
			cmd := exec.Command(freRunc, "--root", root, "run", "--bundle", bundle, id)
			tenants := filepath.Join(out, "tenants")
			// The test's own pools (host-wide by default), drained below.
			env := append(os.Environ(), "FRE_STORE_ROOT="+store, "FRE_TENANT_ROOT="+tenants,
				"FRE_CGPOOL_DIR="+filepath.Join(out, "cgpool"), "FRE_NETNS_POOL_DIR="+filepath.Join(out, "netns-pool"),
				"FRE_CGPOOL_REGISTRY="+filepath.Join(out, "cgpool-owners"))
			cmd.Env = env
			got, err := cmd.CombinedOutput()
			del := exec.Command(freRunc, "--root", root, "delete", "--force", id)
			del.Env = env
			del.Run()
			// The cgroup pool keeps idle cgroups by design (v1): the
			// test's pool goes with the test, and so do they.
			drain := exec.Command(freRunc, "--root", root, "pool", "drain")
			drain.Env = env
			if out, err := drain.CombinedOutput(); err != nil {
				t.Errorf("pool drain: %v: %s", err, out)
			}
			if err != nil {
				t.Fatalf("fre-runc run: %v: %s", err, got)
			}
			if fi, err := os.Stat(filepath.Join(tenants, "ops")); err != nil || !fi.IsDir() {
				t.Errorf("the tenant's workDir: %v", err)
			}
			// Only what the image has: no host path.
			if string(got) != tc.want {
				t.Errorf("the function said %q, want %q", got, tc.want)
			}
		})
	}
}
