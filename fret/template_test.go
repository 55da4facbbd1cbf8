package fret

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The README's examples (testdata/*.yaml) validate, with what they say.
func TestExamples(t *testing.T) {
	for _, name := range []string{"python", "node", "java", "perl", "static"} {
		t.Run(name, func(t *testing.T) {
			tp, err := Load(filepath.Join("testdata", name+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if tp.Base.Name != name || tp.ID == "" || tp.Tenant == "" || len(tp.Entrypoint) == 0 {
				t.Errorf("%+v", tp)
			}
			if !filepath.IsAbs(tp.WorkDir) {
				t.Errorf("workDir %q", tp.WorkDir)
			}
		})
	}
	tp, err := Load("testdata/python.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if tp.WorkDir != "/work" || tp.Packages.Pip == nil || tp.Packages.Pip.Packages[0] != "pillow" || tp.Env["PYTHONUNBUFFERED"] != "1" {
		t.Errorf("python: %+v", tp)
	}
	if st, _ := Load("testdata/static.yaml"); st == nil || st.WorkDir != "/data" {
		t.Errorf("static: workDir %+v", st)
	}
}

// A template that does not validate names the field, wraps ErrInvalid,
// and (YAML's own errors) the line.
func TestBadTemplates(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "code"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "code.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	const good = "apiVersion: fre.dev/v1alpha1\nid: f\nversion: \"1\"\nbase: {name: python}\ncode: code\nentrypoint: [python3]\ntenant: t\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", good + "memroy: 1Gi\n", "line 8: unknown key memroy"},
		{"unknown nested key", strings.Replace(good, "{name: python}", "{name: python, flavour: x}", 1), "unknown key flavour"},
		{"missing apiVersion", strings.Replace(good, "apiVersion: fre.dev/v1alpha1\n", "", 1), "apiVersion: "},
		{"other apiVersion", strings.Replace(good, "v1alpha1", "v9", 1), "apiVersion: "},
		{"missing base", strings.Replace(good, "base: {name: python}\n", "", 1), "base.name: "},
		{"unknown base", strings.Replace(good, "python}", "cobol}", 1), "not a base FRE builds"},
		{"bad id", strings.Replace(good, "id: f", "id: F/../x", 1), "id: "},
		{"missing code", strings.Replace(good, "code: code\n", "", 1), "code: "},
		{"code not there", strings.Replace(good, "code: code", "code: nope", 1), "code: "},
		{"code outside", strings.Replace(good, "code: code", "code: ../code", 1), "inside it"},
		{"code absolute", strings.Replace(good, "code: code", "code: /etc", 1), "code: "},
		{"code not an archive", strings.Replace(good, "code: code", "code: code.txt", 1), "neither a directory nor an archive"},
		{"no entrypoint", strings.Replace(good, "entrypoint: [python3]\n", "", 1), "entrypoint: "},
		{"bad memory", good + "resources: {memory: lots}\n", "resources.memory: "},
		{"memory too small", good + "resources: {memory: 1Ki}\n", "below the smallest"},
		{"negative memory", good + "resources: {memory: -1Gi}\n", "resources.memory: "},
		{"bad cpu", good + "resources: {cpu: fast}\n", "resources.cpu: "},
		{"zero cpu", good + "resources: {cpu: \"0\"}\n", "below 1m"},
		{"negative pids", good + "resources: {pids: -3}\n", "resources.pids: "},
		{"pids not a number", good + "resources: {pids: many}\n", "line 8"},
		{"bad env", good + "env: {\"A-B\": x}\n", "env: "},
		{"bad lib", good + "libs: [lib/x.so]\n", "libs[0]: "},
		{"bad debian package", good + "packages: {debian: [\"Bad Pkg\"]}\n", "packages.debian[0]: "},
		{"npm for python", good + "packages: {npm: [x]}\n", "takes no npm packages"},
		{"pip without wheels", good + "packages: {pip: {packages: [x]}}\n", "packages.pip.wheels: "},
		{"pip wheels not there", good + "packages: {pip: {wheels: w, packages: [x]}}\n", "packages.pip.wheels: "},
		{"pip option", good + "packages: {pip: {wheels: ., packages: [--index-url=http://x]}}\n", "packages.pip.packages[0]: "},
		{"missing tenant", strings.Replace(good, "tenant: t\n", "", 1), "tenant: "},
		{"relative workDir", good + "workDir: work\n", "workDir: "},
		{"root workDir", good + "workDir: /\n", "workDir: "},
		{"two documents", good + "---\n" + good, "more than one YAML document"},
		{"empty", "", "empty"},
		{"not yaml", "{{{", "invalid template"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "fret.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			if err == nil {
				t.Fatalf("no error")
			}
			var te *Error
			if !errors.As(err, &te) || !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v (%T): want a *Error wrapping ErrInvalid", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q: want it to say %q and the file", err, tt.want)
			}
		})
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing template: %v", err)
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"128Mi": 128 << 20, "1Gi": 1 << 30, "1G": 1e9, "5000000": 5e6, "0.5Gi": 1 << 29, "64M": 64e6} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "Mi", "1.5.5Mi", "1e9", "-5Mi", "+5Mi", "NaN", "1Pi", "99999999999999Ti"} {
		if got, err := ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q) = %d, want an error", in, got)
		}
	}
}

func TestParseCPU(t *testing.T) {
	for in, want := range map[string]int64{"500m": 500, "0.5": 500, "2": 2000, "1m": 1, "1.25": 1250} {
		if got, err := ParseCPU(in); err != nil || got != want {
			t.Errorf("ParseCPU(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "m", "0", "0.0001", "-1", "1e3", "2000", "x"} {
		if got, err := ParseCPU(in); err == nil {
			t.Errorf("ParseCPU(%q) = %d, want an error", in, got)
		}
	}
}
