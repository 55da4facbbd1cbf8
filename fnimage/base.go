package fnimage

import (
	"bytes"
	"context"
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
	// provides are the names (path.Match patterns) of Debian packages a
	// dependency on which the base satisfies: the language itself
	// (deps.go).
	provides []string
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
		provides: []string{"python3", "python{V}", "libpython3-stdlib", "libpython{V}"},
		check:    scriptCheck(".py", "-c", pythonCheck),
	},
	"perl": {
		packages: []string{"perl-base"},
		// perl's modules beyond perl-base's are for the check to find
		// missing, not for every function to carry (19 MB).
		provides: []string{"perl", "perl-modules-*", "libperl5.*"},
		check:    scriptCheck(".pl", "-c"),
	},
	"java": {
		packages: []string{"openjdk-{V}-jre-headless"},
		version:  func() (string, error) { return "17", nil },
		provides: []string{"default-jre-headless", "openjdk-{V}-jre", "default-jre"},
		// /usr/bin/java is the alternatives system's link, in no
		// package's list.
		links: map[string]string{"/usr/bin/java": "/usr/lib/jvm/java-{V}-openjdk-amd64/bin/java"},
		check: javaCheck,
	},
	"node": {
		packages: []string{"nodejs"},
		provides: []string{"libnode*", "nodejs-doc"},
		check:    scriptCheck(".js", "-e", nodeCheck),
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

// nodeCheck is node --check of the script, then a resolve of each module
// it names in a require() or import with a literal (comments taken out
// first), as Node would from the script's directory, without running it.
// A bare name counts as found when its package's directory is in a
// node_modules up the tree (an ESM-only package has no require path).
const nodeCheck = `const fs = require('fs'), path = require('path'), cp = require('child_process');
const { builtinModules } = require('module');
const f = process.argv[1];
const r = cp.spawnSync(process.execPath, ['--check', f], { stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status || 1);
const src = fs.readFileSync(f, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"])\/\/.*$/gm, '$1');
const re = /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)|\bimport\s+(?:[^'"();]*?\bfrom\s*)?['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g;
const missing = [];
const pkgDir = (name) => {
  const parts = name.split('/'), pkg = name.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
  for (let d = path.dirname(f); ; d = path.dirname(d)) {
    if (fs.existsSync(path.join(d, 'node_modules', pkg))) return true;
    if (d === path.dirname(d)) return false;
  }
};
for (const m of src.matchAll(re)) {
  const name = m[1] || m[2] || m[3];
  if (name.startsWith('node:') || builtinModules.includes(name) || builtinModules.includes(name.split('/')[0])) continue;
  try { require.resolve(name, { paths: [path.dirname(f)] }); } catch (e) {
    if (name.startsWith('.') || name.startsWith('/') || !pkgDir(name)) missing.push(name);
  }
}
if (missing.length) { console.error('Error: Cannot find module ' + missing.join(', ')); process.exit(1); }
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

// javaCheck is the entrypoint with java's --dry-run: the VM starts and
// loads the main class (from the class path or jar given) without
// running main, so a class path that does not hold it, or a VM that
// cannot start in the image, fails the build. None unless the
// entrypoint runs java.
func javaCheck(ep []string) []string {
	if len(ep) < 2 || path.Base(ep[0]) != "java" {
		return nil
	}
	return append([]string{ep[0], "--dry-run"}, ep[1:]...)
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
		return nil, fmt.Errorf("Debian package %s is not installed on this build host: %s", pkg, msg)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n"), nil
}

// baseVersion is the template's base version, else the base's default.
func baseVersion(t *fret.Template) (string, error) {
	spec, ok := baseSpecs[t.Base.Name]
	if t.Base.Version != "" || !ok || spec.version == nil {
		return t.Base.Version, nil
	}
	v, err := spec.version()
	if err != nil {
		return "", fmt.Errorf("base.version: %w", err)
	}
	return v, nil
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
// A package the build host does not have installed is fetched (apt-get
// download, dpkg-deb -x, into fetch: deps.go) and its files taken from
// there, its libraries still from the ELF closure.
func baseFiles(ctx context.Context, t *fret.Template, v, fetch string, p *part, c *closure) error {
	spec, ok := baseSpecs[t.Base.Name]
	if !ok {
		return nil // static: nothing
	}
	for _, pkgName := range spec.packages {
		pkg := strings.ReplaceAll(pkgName, "{V}", v)
		files, err := dpkgList(pkg)
		if err != nil {
			root, ferr := fetchPackage(ctx, pkg, filepath.Join(fetch, "deb"))
			if ferr != nil {
				return fmt.Errorf("base %s %s: %v, and fetching it failed: %w", t.Base.Name, v, err, ferr)
			}
			c.unpacked(root)
			if err := unpackedEntries(p, c, root, "/", true); err != nil {
				return fmt.Errorf("base %s: %s: %w", t.Base.Name, pkg, err)
			}
			continue
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
	return fileEntry(p, c, f, f, st, st.Mode().Perm()|st.Mode()&(fs.ModeSetuid|fs.ModeSetgid), true)
}

// fileEntry adds the host's file host (st: its Lstat) at the image's path
// name: a directory, a symlink as it is, a regular file with the mode bits
// perm (and its ELF closure). withPyc: a .py file keeps its mtime and gets
// the host's byte code of name with it. Anything else (a device, a fifo)
// is refused.
func fileEntry(p *part, c *closure, name, host string, st fs.FileInfo, perm fs.FileMode, withPyc bool) error {
	switch m := st.Mode(); {
	case m.IsDir():
		p.dir(name, m.Perm())
	case m&fs.ModeSymlink != 0:
		target, err := os.Readlink(host)
		if err != nil {
			return err
		}
		p.symlink(name, target)
	case m.IsRegular():
		p.file(name, host, perm)
		if err := c.add(host, name); err != nil {
			return err
		}
		if withPyc && strings.HasSuffix(name, ".py") {
			p.entries[clean(name)].mtime = st.ModTime().Truncate(time.Second)
			return compiled(p, name)
		}
	default:
		return fmt.Errorf("%s: a %s, not a file, directory or link", name, m.Type())
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
	// The loader takes a program's $ORIGIN (java's libjli.so is at
	// $ORIGIN/../lib) from /proc/self/exe, which the chroot lacks, else
	// from LD_ORIGIN_PATH: the directory of the program's own file (not
	// of a link to it).
	prog = resolveInImage(tree, prog)
	cmd := exec.Command(prog, argv[1:]...)
	cmd.Dir = "/"
	cmd.Env = []string{DefaultPath, "HOME=/root", "PYTHONDONTWRITEBYTECODE=1", "LD_ORIGIN_PATH=" + path.Dir(prog)}
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: tree}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return true, fmt.Errorf("entrypoint check %q in the image: %v: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return true, nil
}

// resolveInImage follows p's final symlinks inside the image's tree and
// returns the path in the image they end at (p itself when it is no link).
func resolveInImage(tree, p string) string {
	for range 40 {
		target, err := os.Readlink(filepath.Join(tree, p))
		if err != nil {
			return p
		}
		if path.IsAbs(target) {
			p = path.Clean(target)
		} else {
			p = path.Join(path.Dir(p), target)
		}
	}
	return p
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
