package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
