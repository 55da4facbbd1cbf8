package fnimage

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/fre-runtime/fre/fret"
)

// baseSpec is how a base environment is made from Debian's packages: the
// packages whose files are the interpreter and its standard library (a
// {V} in a name is the base's version); their libraries come from the ELF
// closure, not from their packages.
type baseSpec struct {
	packages []string
	// version finds the default version (python: the installed
	// python3.X-minimal) when the template gives none.
	version func() (string, error)
	// links are symlinks the base needs that no package lists.
	links map[string]string
	// check is the language's own import or compile check of the
	// entrypoint, run in the image at build time, without running the
	// function; nil: none.
	check func(entrypoint []string) []string
}

var baseSpecs = map[string]baseSpec{
	"python": {
		packages: []string{"python3-minimal", "python{V}-minimal", "libpython{V}-minimal", "libpython{V}-stdlib"},
		version:  installedPythonVersion,
		check:    scriptCheck(".py", "-c", pythonCheck),
	},
	"perl": {
		packages: []string{"perl-base"},
		check:    scriptCheck(".pl", "-c"),
	},
	"java": {
		packages: []string{"openjdk-{V}-jre-headless"},
		version:  func() (string, error) { return "17", nil },
		// /usr/bin/java is the alternatives system's link, in no
		// package's list.
		links: map[string]string{"/usr/bin/java": "/usr/lib/jvm/java-{V}-openjdk-amd64/bin/java"},
	},
	"node": {
		packages: []string{"nodejs"},
		check:    scriptCheck(".js", "--check"),
	},
}

// pythonCheck compiles the script and finds every module it imports
// (absolute imports, by their top-level package) on the image's path,
// without running the script: a handler that serves at its top level
// would never return from an import.
const pythonCheck = `import ast, importlib.util, os, sys
script = sys.argv[1]
sys.path.insert(0, os.path.dirname(script))
tree = ast.parse(open(script).read(), script)
missing = set()
for n in ast.walk(tree):
    if isinstance(n, ast.Import):
        names = [a.name for a in n.names]
    elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
        names = [n.module]
    else:
        continue
    for m in names:
        if importlib.util.find_spec(m.split(".")[0]) is None:
            missing.add(m)
if missing:
    sys.exit("ModuleNotFoundError: No module named " + ", ".join(sorted(missing)))
`

// scriptCheck is a check that runs the entrypoint's interpreter with
// flags and the entrypoint's script (its first absolute argument ending in
// ext); none without such a script.
func scriptCheck(ext string, flags ...string) func(ep []string) []string {
	return func(ep []string) []string {
		for _, a := range ep[1:] {
			if strings.HasSuffix(a, ext) && path.IsAbs(a) {
				return append(append([]string{ep[0]}, flags...), a)
			}
		}
		return nil
	}
}

// skipped are the parts of a package a function never reads: docs, C
// headers, and npm (the build's client for packages, not the function's).
var skipped = []string{"/usr/share/doc/", "/usr/share/man/", "/usr/share/info/", "/usr/share/lintian/",
	"/usr/share/doc-base/", "/usr/share/bug/", "/usr/share/binfmts/", "/usr/lib/binfmt.d/",
	"/usr/include/", "/usr/lib/node_modules/npm/", "/usr/lib/node_modules/corepack/"}

// dpkgList is a package's file list (dpkg-query -L); a variable for tests.
var dpkgList = func(pkg string) ([]string, error) {
	out, err := exec.Command("dpkg-query", "-L", pkg).Output()
	if err != nil {
		var msg []byte
		if ee, ok := err.(*exec.ExitError); ok {
			msg = bytes.TrimSpace(ee.Stderr)
		}
		return nil, fmt.Errorf("Debian package %s is not installed on this build host (fetching bases with apt-get download is to come): %s", pkg, msg)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n"), nil
}

func installedPythonVersion() (string, error) {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Package} ${Status}\n", "python3.*-minimal").Output()
	if err != nil {
		return "", fmt.Errorf("no python3.X-minimal installed on this build host")
	}
	var vs []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) >= 4 && f[3] == "installed" {
			vs = append(vs, strings.TrimSuffix(strings.TrimPrefix(f[0], "python"), "-minimal"))
		}
	}
	if len(vs) != 1 {
		return "", fmt.Errorf("python versions installed here: %v; give base.version", vs)
	}
	return vs[0], nil
}

// baseFiles adds the base environment's files to p (the skeleton is there
// already) and the ELF objects among them to c.
func baseFiles(t *fret.Template, p *part, c *closure) error {
	spec, ok := baseSpecs[t.Base.Name]
	if !ok {
		return nil // static: nothing
	}
	v := t.Base.Version
	if v == "" && spec.version != nil {
		var err error
		if v, err = spec.version(); err != nil {
			return fmt.Errorf("base.version: %w", err)
		}
	}
	for _, pkgName := range spec.packages {
		pkg := strings.ReplaceAll(pkgName, "{V}", v)
		files, err := dpkgList(pkg)
		if err != nil {
			return fmt.Errorf("base %s %s: %w", t.Base.Name, v, err)
		}
		sort.Strings(files)
		for _, f := range files {
			if f == "/." || f == "" || skip(f) {
				continue
			}
			if err := hostEntry(p, c, f); err != nil {
				return fmt.Errorf("base %s: %s: %w", t.Base.Name, pkg, err)
			}
		}
	}
	for at, target := range spec.links {
		p.symlink(at, strings.ReplaceAll(target, "{V}", v))
	}
	return nil
}

func skip(f string) bool {
	for _, s := range skipped {
		if strings.HasPrefix(f+"/", s) {
			return true
		}
	}
	return false
}

// hostEntry adds the host's file f at the same path: a directory, a
// symlink as it is, a regular file with its mode (an ELF one's closure
// too). A path through a host symlink (merged /usr's /lib) is kept as the
// package names it, as a real directory in the image.
func hostEntry(p *part, c *closure, f string) error {
	st, err := os.Lstat(f)
	if err != nil {
		if os.IsNotExist(err) {
			return nil // diverted or removed on this host: not needed to run
		}
		return err
	}
	switch m := st.Mode(); {
	case m.IsDir():
		p.dir(f, m.Perm())
	case m&fs.ModeSymlink != 0:
		target, err := os.Readlink(f)
		if err != nil {
			return err
		}
		p.symlink(f, target)
	case m.IsRegular():
		p.file(f, f, m.Perm()|m&(fs.ModeSetuid|fs.ModeSetgid))
		p.entries[clean(f)].mtime = st.ModTime().Truncate(time.Second)
		if err := c.add(f, f); err != nil {
			return err
		}
		if strings.HasSuffix(f, ".py") {
			return compiled(p, f)
		}
	}
	return nil
}

// compiled adds the host's byte-compiled copies of a packaged .py file
// (Debian compiles them at install; they are in no file list): on a
// read-only root Python cannot write them, and would compile the module on
// every start. They are valid only beside a source of the same mtime,
// which the base keeps.
func compiled(p *part, py string) error {
	stem := strings.TrimSuffix(filepath.Base(py), ".py")
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(py), "__pycache__", stem+".cpython-*.pyc"))
	for _, pyc := range matches {
		if !strings.HasSuffix(pyc, "."+strings.Split(filepath.Base(pyc), ".")[1]+".pyc") {
			continue // opt-1/opt-2 variants are not read without -O
		}
		st, err := os.Stat(pyc)
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		p.file(pyc, pyc, st.Mode().Perm())
	}
	return nil
}

// runCheck runs the base's check of the entrypoint in the image's tree
// (chroot, as root; the image has no /proc or /dev mounted, which an
// import or compile check does not need): a module or library the code
// needs and the image lacks fails the build here.
func runCheck(t *fret.Template, tree string) (ran bool, err error) {
	spec, ok := baseSpecs[t.Base.Name]
	if !ok || spec.check == nil {
		return false, nil
	}
	argv := spec.check(t.Entrypoint)
	if argv == nil || os.Geteuid() != 0 {
		return false, nil
	}
	prog := argv[0]
	if !path.IsAbs(prog) {
		prog = lookInImage(tree, prog)
		if prog == "" {
			return true, fmt.Errorf("entrypoint: %s is in none of the image's PATH directories", argv[0])
		}
	}
	cmd := exec.Command(prog, argv[1:]...)
	cmd.Dir = "/"
	cmd.Env = []string{DefaultPath, "HOME=/root", "PYTHONDONTWRITEBYTECODE=1"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: tree}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return true, fmt.Errorf("entrypoint check %q in the image: %v: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return true, nil
}

// lookInImage finds prog in the image's PATH directories; the path in the
// image, "" when none has it.
func lookInImage(tree, prog string) string {
	for _, d := range strings.Split(strings.TrimPrefix(DefaultPath, "PATH="), ":") {
		if st, err := os.Stat(filepath.Join(tree, d, prog)); err == nil && st.Mode().IsRegular() {
			return path.Join(d, prog)
		}
	}
	return ""
}
