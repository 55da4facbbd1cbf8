package fnimage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fre-runtime/fre/fret"
)

// The packages part: a template's dependency packages, fetched by their
// own clients into the fetch cache (a directory beside the layer cache),
// unpacked there once, and taken into the image from there:
//
//   - Debian packages: apt-get download and dpkg-deb -x, with the Depends
//     the image does not have already (deps.go says which it has);
//   - npm packages: npm install (the npm registry's client, without
//     install scripts) into /node_modules, where Node finds them from any
//     directory by its walk up the tree;
//   - pip packages: pip install from the template's wheel directory only
//     (--no-index), into /usr/local/lib/python<V>/dist-packages, which
//     Debian's Python has on its path.
//
// Nothing is fetched twice: a .deb is kept by its file name (package,
// version, architecture), an npm or pip install by its inputs. The first
// resolution of an npm range stays until the fetch cache is removed, so a
// rebuild gives the same digests.

// NodeModules and the pip directory are where the packages part puts
// npm's and pip's packages in the image.
const NodeModules = "/node_modules"

func pipDir(version string) string { return "/usr/local/lib/python" + version + "/dist-packages" }

// fetched counts the fetches the clients made (apt-get download, npm
// install, pip install), for the tests of the cache.
var fetched int

// packagesPart makes the packages part of t in fetch (the fetch cache)
// and adds its ELF objects to c, whose search then sees the unpacked
// packages' libraries before the host's.
func packagesPart(ctx context.Context, t *fret.Template, version, fetch string, c *closure) (*part, error) {
	p := newPart("packages")
	pk := t.Packages
	if len(pk.Debian) > 0 {
		roots, err := debianRoots(ctx, t, version, filepath.Join(fetch, "deb"))
		if err != nil {
			return nil, err
		}
		for _, r := range roots {
			c.unpacked(r)
		}
		for _, r := range roots {
			if err := unpackedEntries(p, c, r, "/", true); err != nil {
				return nil, fmt.Errorf("packages.debian: %w", err)
			}
		}
	}
	if len(pk.Npm) > 0 {
		dir, err := npmInstall(ctx, pk.Npm, filepath.Join(fetch, "npm"))
		if err != nil {
			return nil, err
		}
		c.inside = append(c.inside, dir)
		if err := unpackedEntries(p, c, dir, NodeModules, false); err != nil {
			return nil, fmt.Errorf("packages.npm: %w", err)
		}
	}
	if pk.Pip != nil {
		dir, err := pipInstall(ctx, t, version, filepath.Join(fetch, "pip"))
		if err != nil {
			return nil, err
		}
		c.inside = append(c.inside, dir)
		if err := unpackedEntries(p, c, dir, pipDir(version), false); err != nil {
			return nil, fmt.Errorf("packages.pip: %w", err)
		}
	}
	return p, nil
}

// unpackedEntries adds the tree at host dir root to p at the image path
// at: directories, symlinks as they are (they resolve in the image),
// regular files without set-id bits; docs skipped (skipDocs: Debian's
// paths). Anything else (a device, a fifo) is refused.
func unpackedEntries(p *part, c *closure, root, at string, skipDocs bool) error {
	return filepath.WalkDir(root, func(host string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, host)
		name := path.Join(at, filepath.ToSlash(rel))
		if rel == "." {
			if at != "/" {
				p.dir(at, 0o755)
			}
			return nil
		}
		if skipDocs && skip(name) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		st, err := os.Lstat(host)
		if err != nil {
			return err
		}
		// A Debian package's .py installed here too: the host's byte code
		// is valid for it (the same mtime), as for the base's.
		withPyc := skipDocs && strings.HasSuffix(name, ".py") && st.Mode().IsRegular() && sameFile(st, name)
		return fileEntry(p, c, name, host, st, st.Mode().Perm(), withPyc)
	})
}

// sameFile: the host's file at path has st's size and mtime.
func sameFile(st fs.FileInfo, path string) bool {
	h, err := os.Stat(path)
	return err == nil && h.Mode().IsRegular() && h.Size() == st.Size() && h.ModTime().Equal(st.ModTime())
}

// npmInstall installs the npm packages with npm into a directory of the
// fetch cache keyed by them (and npm's version), once; the node_modules
// directory's path.
func npmInstall(ctx context.Context, pkgs []string, cache string) (string, error) {
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("packages.npm: the build host needs npm (Debian's package npm): %w", err)
	}
	ver, err := exec.CommandContext(ctx, npm, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("packages.npm: npm --version: %w", err)
	}
	sorted := append([]string(nil), pkgs...)
	sort.Strings(sorted)
	key := inputKey("npm", strings.TrimSpace(string(ver)), strings.Join(sorted, "\x00"))
	dir := filepath.Join(cache, key)
	if st, err := os.Stat(filepath.Join(dir, "node_modules")); err == nil && st.IsDir() {
		return filepath.Join(dir, "node_modules"), nil
	}
	tmp, err := scratch(cache)
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	// No install scripts on the build host (a package's preinstall is
	// anyone's code), nothing of dev or optional dependencies, no audit:
	// the registry's tarballs, unpacked, in npm's own tree.
	args := []string{"install", "--prefix", tmp, "--cache", filepath.Join(cache, ".npm-cache"),
		"--prefer-offline", "--ignore-scripts", "--omit=dev", "--omit=optional", "--no-audit",
		"--no-fund", "--no-save", "--no-package-lock", "--no-update-notifier", "--loglevel=error", "--"}
	cmd := exec.CommandContext(ctx, npm, append(args, pkgs...)...)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "NPM_CONFIG_UPDATE_NOTIFIER=false")
	fetched++
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("packages.npm: npm install %s: %v: %s", strings.Join(pkgs, " "), err, lastLines(out, 6))
	}
	nm := filepath.Join(tmp, "node_modules")
	if _, err := os.Stat(nm); err != nil {
		return "", fmt.Errorf("packages.npm: npm install made no node_modules: %w", err)
	}
	// npm's record of the install: its own, not the function's.
	os.Remove(filepath.Join(nm, ".package-lock.json"))
	os.Remove(filepath.Join(tmp, "package.json"))
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return filepath.Join(dir, "node_modules"), nil
}

// pipInstall installs the template's pip packages from its wheel
// directory (no index: --no-index --find-links) for the base's Python
// version, once per wheel directory's contents; the directory's path.
func pipInstall(ctx context.Context, t *fret.Template, version, cache string) (string, error) {
	w := t.Packages.Pip
	wheels := filepath.Join(t.Dir, w.Wheels)
	ents, err := os.ReadDir(wheels)
	if err != nil {
		return "", fmt.Errorf("packages.pip.wheels: %w", err)
	}
	py, pipVer, err := findPip(ctx)
	if err != nil {
		return "", err
	}
	in := []string{"pip", pipVer, version}
	for _, e := range ents {
		info, err := e.Info()
		if err != nil {
			return "", fmt.Errorf("packages.pip.wheels: %w", err)
		}
		in = append(in, fmt.Sprintf("%s %d %d", e.Name(), info.Size(), info.ModTime().UnixNano()))
	}
	in = append(in, "--")
	in = append(in, w.Packages...)
	dir := filepath.Join(cache, inputKey(in...))
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		return dir, nil
	}
	tmp, err := scratch(cache)
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	target := filepath.Join(tmp, "site")
	// Wheels only (nothing is built on the build host), for the base's
	// version rather than the host pip's own, no byte code (its
	// timestamps would make each build differ).
	args := []string{"-m", "pip", "install", "--target", target, "--no-index", "--find-links", wheels,
		"--only-binary=:all:", "--python-version", version, "--implementation", "cp",
		"--no-compile", "--no-cache-dir", "--disable-pip-version-check", "--no-warn-script-location",
		"--quiet", "--"}
	cmd := exec.CommandContext(ctx, py, append(args, w.Packages...)...)
	cmd.Env = append(os.Environ(), "PIP_NO_INPUT=1", "PIP_CONFIG_FILE=/dev/null")
	fetched++
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("packages.pip: pip install %s from %s: %v: %s", strings.Join(w.Packages, " "), w.Wheels, err, lastLines(out, 6))
	}
	if err := fixScripts(filepath.Join(target, "bin"), "/usr/bin/python"+version); err != nil {
		return "", fmt.Errorf("packages.pip: %w", err)
	}
	if err := os.Rename(target, dir); err != nil {
		return "", err
	}
	return dir, nil
}

// findPip is the build host's pip: $FRE_PIP_PYTHON's, else python3's on
// the PATH, else Debian's /usr/bin/python3's. The python and pip's version.
func findPip(ctx context.Context) (py, version string, err error) {
	cands := []string{"python3", "/usr/bin/python3"}
	if e := os.Getenv("FRE_PIP_PYTHON"); e != "" {
		cands = []string{e}
	}
	var last []byte
	for _, c := range cands {
		out, err := exec.CommandContext(ctx, c, "-m", "pip", "--version").CombinedOutput()
		if err == nil {
			f := strings.Fields(string(out))
			if len(f) >= 2 {
				return c, f[1], nil
			}
		}
		last = out
	}
	return "", "", fmt.Errorf("packages.pip: the build host needs pip (python3 -m pip; Debian's python3-pip): %s", lastLines(last, 2))
}

// fixScripts points the scripts pip wrote for the host's python at the
// image's.
func fixScripts(bin, python string) error {
	ents, err := os.ReadDir(bin)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(bin, e.Name())
		b, err := os.ReadFile(p)
		if err != nil || !bytes.HasPrefix(b, []byte("#!")) {
			continue
		}
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 || !bytes.Contains(b[:nl], []byte("python")) {
			continue
		}
		if err := os.WriteFile(p, append([]byte("#!"+python), b[nl:]...), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// inputKey names a cache entry by what made it.
func inputKey(in ...string) string {
	h := sha256.Sum256([]byte(strings.Join(in, "\x00")))
	return hex.EncodeToString(h[:16])
}

// scratch is a directory in the fetch cache for one fetch, renamed into
// place when whole (a failed or killed fetch leaves only a .tmp-).
func scratch(cache string) (string, error) {
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	return os.MkdirTemp(cache, ".tmp-")
}

// lastLines are the last n lines of a client's output, for its error.
func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
