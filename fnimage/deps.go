package fnimage

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fre-runtime/fre/fret"
)

// A template's Debian packages and the Depends (and Pre-Depends) the image
// lacks, from this host's apt lists: each dependency is taken from the
// first of its alternatives that nothing satisfies already. Satisfied
// (and not walked further) is a dependency on
//
//   - the base itself: its packages and the language's own names
//     (baseSpec.provides: python3 for python, perl for perl, ...);
//   - an Essential package or debconf: install-time machinery a function
//     never runs (a package's maintainer scripts are not run either);
//   - a shared-library package (Section libs) installed on the build
//     host: the ELF closure takes the objects the image's programs load;
//   - a package already taken.
//
// Everything else is downloaded with apt-get download and unpacked with
// dpkg-deb -x, once, into the fetch cache. Version constraints of Depends
// are not solved: a dependency gets its candidate version (a template's
// name=version pins its own packages).

// debInfo is one package's apt record.
type debInfo struct {
	Package, Version, Architecture, Filename, Section string
	Essential                                         bool
	Depends                                           []string // groups: "a | b (>= 1)"
}

// hostInstalled reports whether a package is installed on the build host;
// a variable for tests.
var hostInstalled = func(pkg string) bool {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Status}", pkg).Output()
	return err == nil && strings.HasSuffix(strings.TrimSpace(string(out)), " installed")
}

// notWalked are dependencies satisfied without their files.
var notWalked = map[string]bool{"debconf": true, "debconf-2.0": true, "install-info": true}

type debResolver struct {
	ctx      context.Context
	provided []string // names and path.Match patterns
	show     map[string]*debInfo
	taken    map[string]*debInfo
}

// debianRoots resolves, fetches and unpacks t's Debian packages; their
// unpacked roots, by package name.
func debianRoots(ctx context.Context, t *fret.Template, version, cache string) ([]string, error) {
	r := &debResolver{ctx: ctx, show: map[string]*debInfo{}, taken: map[string]*debInfo{}}
	if spec, ok := baseSpecs[t.Base.Name]; ok {
		for _, n := range append(append([]string(nil), spec.packages...), spec.provides...) {
			r.provided = append(r.provided, strings.ReplaceAll(n, "{V}", version))
		}
	}
	var queue []*debInfo
	for i, want := range t.Packages.Debian {
		info, err := r.lookup(want)
		if err != nil {
			return nil, fmt.Errorf("packages.debian[%d]: %w", i, err)
		}
		if r.taken[info.Package] == nil {
			r.taken[info.Package] = info
			queue = append(queue, info)
		}
	}
	for len(queue) > 0 {
		info := queue[0]
		queue = queue[1:]
		for _, group := range info.Depends {
			dep, err := r.pick(group)
			if err != nil {
				return nil, fmt.Errorf("packages.debian: %s depends on %s: %w", info.Package, group, err)
			}
			if dep != nil {
				r.taken[dep.Package] = dep
				queue = append(queue, dep)
			}
		}
	}
	names := make([]string, 0, len(r.taken))
	for n := range r.taken {
		names = append(names, n)
	}
	sort.Strings(names)
	var roots []string
	for _, n := range names {
		root, err := r.unpacked(r.taken[n], cache)
		if err != nil {
			return nil, fmt.Errorf("packages.debian: %s: %w", n, err)
		}
		roots = append(roots, root)
	}
	return roots, nil
}

// fetchPackage fetches and unpacks one package (its candidate version),
// without its Depends; its unpacked root.
func fetchPackage(ctx context.Context, pkg, cache string) (string, error) {
	r := &debResolver{ctx: ctx, show: map[string]*debInfo{}}
	info, err := r.lookup(pkg)
	if err != nil {
		return "", err
	}
	return r.unpacked(info, cache)
}

// pick is the package a dependency group needs taken: nil when something
// satisfies it already.
func (r *debResolver) pick(group string) (*debInfo, error) {
	alts := strings.Split(group, "|")
	var names []string
	for _, a := range alts {
		f := strings.Fields(a)
		if len(f) == 0 {
			continue
		}
		name, _, _ := strings.Cut(f[0], ":") // :any, :amd64
		names = append(names, name)
	}
	for _, n := range names {
		if r.satisfied(n) {
			return nil, nil
		}
	}
	for _, n := range names {
		info, err := r.lookup(n)
		if err == nil {
			if r.satisfiedBy(info) {
				return nil, nil
			}
			return info, nil
		}
		// A virtual package: its providers, the first unsatisfied one
		// taken when none is satisfied.
		provs := r.providers(n)
		for _, p := range provs {
			if r.satisfied(p) {
				return nil, nil
			}
		}
		for _, p := range provs {
			if info, err := r.lookup(p); err == nil {
				if r.satisfiedBy(info) {
					return nil, nil
				}
				return info, nil
			}
		}
	}
	return nil, fmt.Errorf("none of it is in this host's apt lists")
}

// satisfied: by name alone (the base, install machinery, taken already).
func (r *debResolver) satisfied(name string) bool {
	if notWalked[name] || r.taken[name] != nil {
		return true
	}
	for _, p := range r.provided {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// satisfiedBy: by what the package is (Essential, an installed library).
func (r *debResolver) satisfiedBy(info *debInfo) bool {
	if r.satisfied(info.Package) || info.Essential {
		return true
	}
	return path.Base(info.Section) == "libs" && hostInstalled(info.Package)
}

// lookup is the candidate (or the pinned name=version) record of a real
// package.
func (r *debResolver) lookup(spec string) (*debInfo, error) {
	if info, ok := r.show[spec]; ok {
		if info == nil {
			return nil, fmt.Errorf("no Debian package %s in this host's apt lists", spec)
		}
		return info, nil
	}
	out, err := exec.CommandContext(r.ctx, "apt-cache", "show", "--no-all-versions", spec).Output()
	infos := parseDebInfo(out)
	if err != nil || len(infos) == 0 || infos[0].Filename == "" {
		r.show[spec] = nil
		return nil, fmt.Errorf("no Debian package %s in this host's apt lists", spec)
	}
	r.show[spec] = infos[0]
	return infos[0], nil
}

// providers are the packages that provide a virtual one.
func (r *debResolver) providers(name string) []string {
	out, err := exec.CommandContext(r.ctx, "apt-cache", "showpkg", name).Output()
	if err != nil {
		return nil
	}
	_, rest, ok := bytes.Cut(out, []byte("Reverse Provides: \n"))
	if !ok {
		return nil
	}
	var provs []string
	for _, l := range strings.Split(string(rest), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			provs = append(provs, f[0])
		}
	}
	sort.Strings(provs)
	return provs
}

// parseDebInfo reads apt-cache show's records.
func parseDebInfo(out []byte) []*debInfo {
	var infos []*debInfo
	var cur *debInfo
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			cur = nil
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // a continued field (Description)
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if cur == nil {
			cur = &debInfo{}
			infos = append(infos, cur)
		}
		switch k {
		case "Package":
			cur.Package = v
		case "Version":
			cur.Version = v
		case "Architecture":
			cur.Architecture = v
		case "Filename":
			cur.Filename = v
		case "Section":
			cur.Section = v
		case "Essential":
			cur.Essential = v == "yes"
		case "Depends", "Pre-Depends":
			for _, g := range strings.Split(v, ",") {
				if g = strings.TrimSpace(g); g != "" {
					cur.Depends = append(cur.Depends, g)
				}
			}
		}
	}
	return infos
}

// unpacked is the package's files unpacked in the fetch cache: the .deb
// downloaded (apt-get download) unless it is there, then dpkg-deb -x.
func (r *debResolver) unpacked(info *debInfo, cache string) (string, error) {
	file := path.Base(info.Filename)
	if !strings.HasSuffix(file, ".deb") || strings.HasPrefix(file, ".") {
		return "", fmt.Errorf("apt's file name %q is not a .deb", info.Filename)
	}
	root := filepath.Join(cache, "root", strings.TrimSuffix(file, ".deb"))
	if st, err := os.Stat(root); err == nil && st.IsDir() {
		return root, nil
	}
	deb := filepath.Join(cache, file)
	if _, err := os.Stat(deb); err != nil {
		tmp, err := scratch(cache)
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(tmp)
		cmd := exec.CommandContext(r.ctx, "apt-get", "download", "-q", "-o", "APT::Sandbox::User=root",
			info.Package+"="+info.Version)
		cmd.Dir = tmp
		fetched++
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("apt-get download %s=%s: %v: %s", info.Package, info.Version, err, lastLines(out, 4))
		}
		if err := os.Rename(filepath.Join(tmp, file), deb); err != nil {
			return "", fmt.Errorf("apt-get download %s=%s: %w", info.Package, info.Version, err)
		}
	}
	tmp, err := scratch(filepath.Join(cache, "root"))
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if out, err := exec.CommandContext(r.ctx, "dpkg-deb", "-x", deb, tmp).CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb -x %s: %v: %s", file, err, lastLines(out, 4))
	}
	// dpkg-deb gives the root the package's mode for "./"; the image's
	// directories keep their own.
	if err := os.Rename(tmp, root); err != nil {
		return "", err
	}
	return root, nil
}
