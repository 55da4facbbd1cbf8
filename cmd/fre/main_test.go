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
// function answers.
func TestBuildAndRun(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs the function with fre-runc")
	}
	bb, err := testutil.FindBusybox()
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "code"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "code", "busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	tpl := filepath.Join(dir, "fn.yaml")
	os.WriteFile(tpl, []byte(`apiVersion: fre.dev/v1alpha1
id: hello
version: "1"
base: {name: static}
code: code
entrypoint: [/code/busybox, sh, -c, "echo hello from $(hostname); ls /"]
resources: {memory: 32Mi, pids: 16}
tenant: ops
`), 0o644)
	work := t.TempDir()
	store, layout, bundle := filepath.Join(work, "store"), filepath.Join(work, "layout"), filepath.Join(work, "bundle")
	var out, errOut bytes.Buffer
	if code := run([]string{"build", "--store", store, "--layout", layout, "--bundle", bundle, tpl}, &out, &errOut); code != 0 {
		t.Fatalf("fre build: exit %d: %s", code, errOut.String())
	}
	t.Logf("fre build: %s", out.String())
	if !strings.HasPrefix(out.String(), "fre.dev/hello:1 sha256:") {
		t.Errorf("output %q", out.String())
	}
	freRunc := filepath.Join(work, "fre-runc")
	if err := testutil.GoBuild(freRunc, "../fre-runc"); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(work, "state")
	id := "fre-build-test-" + strconv.Itoa(os.Getpid())
	cmd := exec.Command(freRunc, "--root", root, "run", "--bundle", bundle, id)
	cmd.Env = append(os.Environ(), "FRE_STORE_ROOT="+store)
	got, err := cmd.CombinedOutput()
	exec.Command(freRunc, "--root", root, "delete", "--force", id).Run()
	if err != nil {
		t.Fatalf("fre-runc run: %v: %s", err, got)
	}
	// Only what the image has: the skeleton and the code, no host path.
	want := "hello from hello\ncode\ndev\netc\nproc\nroot\nrun\nsys\ntmp\nwork\n"
	if string(got) != want {
		t.Errorf("the function said %q, want %q", got, want)
	}
}
