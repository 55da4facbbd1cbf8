// Package fret reads FRE's function environment templates (FRET, the
// research's runtime environment templates, sections 4.3 and 5): a YAML
// file that names a function's id, version, base environment, code,
// entrypoint, extra libraries, dependency packages, resource limits,
// tenant and workDir, from which `fre build` assembles a minimal function
// image out of the shared store.
//
// This is the format and its validation: every error names the field (and
// the line, for YAML's own), and a template that validates says what the
// build will need. A template is versioned by apiVersion; an unknown key
// is an error, not ignored, so a misspelt limit never passes silently.
package fret

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// APIVersion is the template format this package reads.
const APIVersion = "fre.dev/v1alpha1"

// Template is a function environment template.
type Template struct {
	APIVersion string `yaml:"apiVersion" json:"apiVersion"`
	// ID and Version name the function (and its image: ID:Version).
	ID      string `yaml:"id" json:"id"`
	Version string `yaml:"version" json:"version"`
	// Base is the language environment the function runs in.
	Base Base `yaml:"base" json:"base"`
	// Code is a local directory or archive (.tar, .tar.gz, .tgz, .zip)
	// with the function's code, relative to the template's directory;
	// it goes in the image at /code, last.
	Code string `yaml:"code" json:"code"`
	// Entrypoint is the program and its arguments.
	Entrypoint []string `yaml:"entrypoint" json:"entrypoint"`
	// Env is the environment besides the base's (PATH and the like).
	Env map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
	// Libs are extra shared libraries (sonames, e.g. libz.so.1, or
	// absolute paths on the build host), resolved with their DT_NEEDED
	// closure.
	Libs []string `yaml:"libs,omitempty" json:"libs,omitempty"`
	// Packages are the dependencies, fetched by their own clients.
	Packages Packages `yaml:"packages,omitempty" json:"packages,omitempty"`
	// Resources are the function instance's limits.
	Resources Resources `yaml:"resources,omitempty" json:"resources,omitempty"`
	// Tenant owns the function: its instances share the tenant's
	// persistent workDir.
	Tenant string `yaml:"tenant" json:"tenant"`
	// WorkDir is the absolute path, inside the instance, of the tenant's
	// persistent directory (default /work).
	WorkDir string `yaml:"workDir,omitempty" json:"workDir,omitempty"`

	// Dir is the template's directory (what Code is relative to).
	Dir string `yaml:"-" json:"-"`
}

// Base is a base environment and its version.
type Base struct {
	Name    string `yaml:"name" json:"name"`
	Version string `yaml:"version,omitempty" json:"version,omitempty"`
}

// Packages are a function's dependency packages.
type Packages struct {
	// Debian packages (apt-get download), with their Depends.
	Debian []string `yaml:"debian,omitempty" json:"debian,omitempty"`
	// Npm packages (npm pack), name or name@version.
	Npm []string `yaml:"npm,omitempty" json:"npm,omitempty"`
	// Pip packages, from a local wheel directory (no index is reachable).
	Pip *Pip `yaml:"pip,omitempty" json:"pip,omitempty"`
}

// Pip is pip packages from a directory of wheels.
type Pip struct {
	Wheels   string   `yaml:"wheels" json:"wheels"` // relative to the template's directory
	Packages []string `yaml:"packages" json:"packages"`
}

// Resources are limits: memory ("128Mi", "1G", bytes), cpu ("500m",
// "0.5", "2": CPUs) and pids.
type Resources struct {
	Memory string `yaml:"memory,omitempty" json:"memory,omitempty"`
	CPU    string `yaml:"cpu,omitempty" json:"cpu,omitempty"`
	Pids   int64  `yaml:"pids,omitempty" json:"pids,omitempty"`
}

// Bases are the base environments FRE builds, and what each needs of the
// template: the languages of the research's examples and a static binary.
var Bases = map[string]struct {
	// Debian is the package whose files (and their libraries' closure)
	// make the base; "" for none.
	Debian string
	// Pip: the base can take pip packages; Npm: npm packages.
	Pip, Npm bool
}{
	"python": {Debian: "python3-minimal", Pip: true},
	"node":   {Debian: "nodejs", Npm: true},
	"java":   {Debian: "openjdk-17-jre-headless"},
	"perl":   {Debian: "perl-base"},
	"static": {},
}

// Error is a template that does not validate: the field and why.
type Error struct {
	File  string // the template's path
	Field string // e.g. "base.name", "resources.memory"
	Err   error
}

func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("template %s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("template %s: %s: %v", e.File, e.Field, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrInvalid is what every validation error wraps.
var ErrInvalid = errors.New("invalid template")

// Load reads and validates the template at path.
func Load(path string) (*Template, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{File: path, Err: err}
	}
	defer f.Close()
	return Parse(f, path)
}

// maxTemplate bounds a template's size: it is a few lines of YAML.
const maxTemplate = 1 << 20

// Parse reads a template from r (path names it, and its directory is what
// relative paths in it are relative to) and validates it.
func Parse(r io.Reader, path string) (*Template, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxTemplate+1))
	if err != nil {
		return nil, &Error{File: path, Err: err}
	}
	if len(data) > maxTemplate {
		return nil, &Error{File: path, Err: fmt.Errorf("%w: larger than %d bytes", ErrInvalid, maxTemplate)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true) // an unknown key is an error
	var t Template
	if err := dec.Decode(&t); err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("empty")
		}
		return nil, &Error{File: path, Err: fmt.Errorf("%w: %v", ErrInvalid, yamlError(err))}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &Error{File: path, Err: fmt.Errorf("%w: more than one YAML document", ErrInvalid)}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &Error{File: path, Err: err}
	}
	t.Dir = filepath.Dir(abs)
	if err := t.validate(); err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			return nil, &Error{File: path, Field: fe.field, Err: fmt.Errorf("%w: %v", ErrInvalid, fe.err)}
		}
		return nil, &Error{File: path, Err: err}
	}
	return &t, nil
}

// unknownField is how the YAML decoder says a key is not the format's.
var unknownField = regexp.MustCompile(`field (\S+) not found in type \S+`)

// yamlError is the decoder's error on one line: its messages (one per
// line of the template) joined, an unknown key called one.
func yamlError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		msgs[i] = unknownField.ReplaceAllString(m, "unknown key $1")
	}
	return errors.New(strings.Join(msgs, "; "))
}

type fieldError struct {
	field string
	err   error
}

func (e *fieldError) Error() string { return e.field + ": " + e.err.Error() }

func bad(field, format string, args ...any) error {
	return &fieldError{field: field, err: fmt.Errorf(format, args...)}
}

// Names: a function's id, tenant and version become image references,
// directory names and cgroup names, so they are kept to what all of those
// take.
var (
	nameRE    = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$`)
	versionRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
	envKeyRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	pkgRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]*(=[A-Za-z0-9.+:~-]+)?$`)
	// pip: a name, extras, version specifiers (PEP 508 without URLs or
	// markers); never an option.
	pipRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?(\[[A-Za-z0-9._,-]+\])?((~=|==|!=|<=|>=|<|>|===)[A-Za-z0-9.*+!_-]+(,(~=|==|!=|<=|>=|<|>|===)[A-Za-z0-9.*+!_-]+)*)?$`)
	npmRE = regexp.MustCompile(`^(@[a-z0-9-~][a-z0-9-._~]*/)?[a-z0-9-~][a-z0-9-._~]*(@[A-Za-z0-9.^~<>=*|+ -]+)?$`)
)

func (t *Template) validate() error {
	switch t.APIVersion {
	case APIVersion:
	case "":
		return bad("apiVersion", "missing (want %q)", APIVersion)
	default:
		return bad("apiVersion", "%q is not a version this fre reads (want %q)", t.APIVersion, APIVersion)
	}
	if !nameRE.MatchString(t.ID) {
		return bad("id", "%q: want lower-case letters, digits, '.', '_' or '-', at most 64, starting and ending with a letter or digit", t.ID)
	}
	if !versionRE.MatchString(t.Version) {
		return bad("version", "%q: want letters, digits, '.', '_' or '-' (an image tag)", t.Version)
	}
	if t.Base.Name == "" {
		return bad("base.name", "missing (one of %s)", baseNames())
	}
	base, ok := Bases[t.Base.Name]
	if !ok {
		return bad("base.name", "%q is not a base FRE builds (one of %s)", t.Base.Name, baseNames())
	}
	if t.Base.Version != "" && !versionRE.MatchString(t.Base.Version) {
		return bad("base.version", "%q is not a version", t.Base.Version)
	}
	if err := t.checkCode(); err != nil {
		return err
	}
	if len(t.Entrypoint) == 0 || t.Entrypoint[0] == "" {
		return bad("entrypoint", "missing (the program and its arguments)")
	}
	for k := range t.Env {
		if !envKeyRE.MatchString(k) {
			return bad("env", "%q is not a variable name", k)
		}
	}
	for i, l := range t.Libs {
		if l == "" || strings.ContainsAny(l, "\x00\n") || (!filepath.IsAbs(l) && strings.Contains(l, "/")) {
			return bad(fmt.Sprintf("libs[%d]", i), "%q: a soname (libz.so.1) or an absolute path", l)
		}
	}
	if err := t.checkPackages(base.Pip, base.Npm); err != nil {
		return err
	}
	if err := t.Resources.check(); err != nil {
		return err
	}
	if !nameRE.MatchString(t.Tenant) {
		return bad("tenant", "%q: want lower-case letters, digits, '.', '_' or '-', at most 64", t.Tenant)
	}
	if t.WorkDir == "" {
		t.WorkDir = "/work"
	}
	if !filepath.IsAbs(t.WorkDir) || filepath.Clean(t.WorkDir) != t.WorkDir || t.WorkDir == "/" {
		return bad("workDir", "%q: want a clean absolute path other than /", t.WorkDir)
	}
	return nil
}

func baseNames() string {
	names := make([]string, 0, len(Bases))
	for n := range Bases {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// checkCode: the code exists, inside reach of the template (a relative
// path, not climbing out of its directory), and is a directory or an
// archive. Links inside it are checked when it is read (build).
func (t *Template) checkCode() error {
	if t.Code == "" {
		return bad("code", "missing (a directory or archive, relative to the template)")
	}
	if filepath.IsAbs(t.Code) || !filepath.IsLocal(t.Code) {
		return bad("code", "%q: want a path relative to the template's directory, inside it", t.Code)
	}
	p := filepath.Join(t.Dir, t.Code)
	st, err := os.Stat(p)
	if err != nil {
		return bad("code", "%v", err)
	}
	if st.IsDir() {
		return nil
	}
	for _, ext := range []string{".tar", ".tar.gz", ".tgz", ".zip"} {
		if strings.HasSuffix(t.Code, ext) && st.Mode().IsRegular() {
			return nil
		}
	}
	return bad("code", "%q is neither a directory nor an archive (.tar, .tar.gz, .tgz, .zip)", t.Code)
}

func (t *Template) checkPackages(pip, npm bool) error {
	for i, p := range t.Packages.Debian {
		if !pkgRE.MatchString(p) {
			return bad(fmt.Sprintf("packages.debian[%d]", i), "%q is not a Debian package name (name or name=version)", p)
		}
	}
	if len(t.Packages.Npm) > 0 && !npm {
		return bad("packages.npm", "base %q takes no npm packages", t.Base.Name)
	}
	for i, p := range t.Packages.Npm {
		if !npmRE.MatchString(p) {
			return bad(fmt.Sprintf("packages.npm[%d]", i), "%q is not an npm package (name or name@version)", p)
		}
	}
	if w := t.Packages.Pip; w != nil {
		if !pip {
			return bad("packages.pip", "base %q takes no pip packages", t.Base.Name)
		}
		if w.Wheels == "" || filepath.IsAbs(w.Wheels) || !filepath.IsLocal(w.Wheels) {
			return bad("packages.pip.wheels", "%q: want a directory of wheels relative to the template's directory", w.Wheels)
		}
		if st, err := os.Stat(filepath.Join(t.Dir, w.Wheels)); err != nil || !st.IsDir() {
			if err == nil {
				err = errors.New("not a directory")
			}
			return bad("packages.pip.wheels", "%v", err)
		}
		if len(w.Packages) == 0 {
			return bad("packages.pip.packages", "missing (the packages to install from the wheels)")
		}
		for i, p := range w.Packages {
			if !pipRE.MatchString(p) {
				return bad(fmt.Sprintf("packages.pip.packages[%d]", i), "%q is not a pip requirement (name, name[extra], name==version)", p)
			}
		}
	}
	return nil
}

func (r *Resources) check() error {
	if r.Memory != "" {
		if _, err := ParseBytes(r.Memory); err != nil {
			return bad("resources.memory", "%v", err)
		}
	}
	if r.CPU != "" {
		if _, err := ParseCPU(r.CPU); err != nil {
			return bad("resources.cpu", "%v", err)
		}
	}
	if r.Pids < 0 {
		return bad("resources.pids", "%d: want a positive count (or none)", r.Pids)
	}
	return nil
}
