package cgpool

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Ownership. Idle cgroups are a host-wide resource, but a pool's state
// (its slots, locks and counters) lives in its StateDir. fre-runc and the
// shim use one host-wide StateDir by default (DefaultStateDir), so every
// --root shares one pool per parent and its size bounds the idle cgroups
// there. A pool with a StateDir of its own (a configured cgroupPoolDir,
// tests) names its cgroups with its tag; if that directory goes away, no
// one will ever claim, refill or drain them again. So each pool that puts
// cgroups on the host records itself in a host-wide registry (Registry:
// owners/<tag> holds the StateDir; parents/<escaped parent> lists every
// parent any pool used), and a sweep removes the idle cgroups of a pool
// whose StateDir is gone: Fill does it for the parent it fills, GC for
// every parent on the host. A cgroup of an unknown tag (an older FRE's,
// or one whose registration was removed) is removed by GC only when told.

// DefaultStateDir is the host-wide pool's state (a tmpfs, as the cgroups
// it describes do not outlive a reboot).
const DefaultStateDir = "/run/fre/cgpool"

// DefaultRegistry is where pools record themselves, unless $RegistryEnv
// names another (tests).
const (
	DefaultRegistry = "/run/fre/cgpool-owners"
	RegistryEnv     = "FRE_CGPOOL_REGISTRY"
)

func (p *Pool) registry() string {
	if p.cfg.Registry != "" {
		return p.cfg.Registry
	}
	if r := os.Getenv(RegistryEnv); r != "" {
		return r
	}
	return DefaultRegistry
}

func (p *Pool) ownerFile(tag string) string {
	return filepath.Join(p.registry(), "owners", tag)
}

// register records this pool in the registry, once per process: a stat
// when it is there already (the content follows from the tag).
func (p *Pool) register() {
	if p.registered.Load() {
		return
	}
	f := p.ownerFile(p.tag)
	if _, err := os.Stat(f); err != nil {
		if os.MkdirAll(filepath.Dir(f), 0o700) != nil || writeAtomic(f, []byte(p.stateDir+"\n")) != nil {
			return
		}
	}
	p.registered.Store(true)
}

// registerParent records parent in the host-wide list of pooled parents.
func (p *Pool) registerParent(parent string) {
	f := filepath.Join(p.registry(), "parents", escapeParent(parent))
	if _, err := os.Stat(f); err == nil {
		return
	}
	if os.MkdirAll(filepath.Dir(f), 0o700) == nil {
		os.WriteFile(f, nil, 0o600)
	}
}

// unregister removes this pool's record once it has nothing on the host.
func (p *Pool) unregister() {
	p.registered.Store(false)
	os.Remove(p.ownerFile(p.tag))
}

func writeAtomic(f string, b []byte) error {
	tmp := fmt.Sprintf("%s.%s.tmp", f, randName())
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, f); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// Owner states of a pool's cgroups.
const (
	OwnerLive    = "live"    // its StateDir exists
	OwnerGone    = "gone"    // registered, StateDir removed: swept
	OwnerUnknown = "unknown" // not registered (GC removes them when told)
)

// Entry is the idle (or named) cgroups of one pool in one parent.
type Entry struct {
	Parent string `json:"parent"`
	Tag    string `json:"tag"`
	// Owner is the pool's StateDir ("" when unknown), State one of
	// OwnerLive, OwnerGone, OwnerUnknown; Self marks the pool asked.
	Owner string `json:"owner,omitempty"`
	State string `json:"state"`
	Self  bool   `json:"self,omitempty"`
	// Idle counts the cgroups in the first hierarchy; Names lists them.
	Idle  int      `json:"idle"`
	Names []string `json:"-"`
}

// poolTag parses a name of a pool's cgroup: ".fre-pool-<tag>-..." or
// ".fre-new-<tag>-...".
func poolTag(name string) (tag string, ok bool) {
	rest, ok := strings.CutPrefix(name, idlePrefix)
	if !ok {
		if rest, ok = strings.CutPrefix(name, newPrefix); !ok {
			return "", false
		}
	}
	if len(rest) < 9 || rest[8] != '-' {
		return "", false
	}
	for _, c := range rest[:8] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", false
		}
	}
	return rest[:8], true
}

// ownerOf reads tag's registration.
func (p *Pool) ownerOf(tag string) (owner, state string) {
	if tag == p.tag {
		return p.stateDir, OwnerLive
	}
	b, err := os.ReadFile(p.ownerFile(tag))
	if err != nil {
		return "", OwnerUnknown
	}
	owner = strings.TrimSpace(string(b))
	if _, err := os.Stat(owner); err != nil {
		return owner, OwnerGone
	}
	return owner, OwnerLive
}

// hostParents: the root, every parent in the registry and this pool's.
func (p *Pool) hostParents() []string {
	set := map[string]bool{"/": true}
	for _, pa := range p.parents() {
		set[pa] = true
	}
	ents, _ := os.ReadDir(filepath.Join(p.registry(), "parents"))
	for _, e := range ents {
		if pa, err := unescapeParent(e.Name()); err == nil {
			if c, err := cleanParent(pa); err == nil {
				set[c] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// hierarchyRoots are the mount points of the host's hierarchies, in claim
// order.
func (p *Pool) hierarchyRoots() ([]string, error) {
	m, err := p.newManager(path.Join("/", p.staging+"probe"))
	if err != nil {
		return nil, err
	}
	return layoutOf(m).roots, nil
}

// Entries lists every pool's cgroups in every parent on the host: this
// pool's and others', with their owners.
func (p *Pool) Entries() ([]Entry, error) {
	roots, err := p.hierarchyRoots()
	if err != nil || len(roots) == 0 {
		return nil, err
	}
	var out []Entry
	for _, pa := range p.hostParents() {
		out = append(out, p.entriesIn(roots, pa)...)
	}
	return out, nil
}

// entriesIn groups the pool cgroups of parent by tag. A name counts if it
// is in any hierarchy (a crash may leave it in some only); Idle counts
// the first hierarchy's idle names.
func (p *Pool) entriesIn(roots []string, parent string) []Entry {
	byTag := map[string]*Entry{}
	seen := map[string]bool{}
	for i, r := range roots {
		names, err := readDirNames(r + parent)
		if err != nil {
			continue
		}
		for _, n := range names {
			tag, ok := poolTag(n)
			if !ok {
				continue
			}
			e := byTag[tag]
			if e == nil {
				e = &Entry{Parent: parent, Tag: tag, Self: tag == p.tag}
				e.Owner, e.State = p.ownerOf(tag)
				byTag[tag] = e
			}
			if i == 0 && strings.HasPrefix(n, idlePrefix) {
				e.Idle++
			}
			if !seen[n] {
				seen[n] = true
				e.Names = append(e.Names, n)
			}
		}
	}
	tags := make([]string, 0, len(byTag))
	for t := range byTag {
		tags = append(tags, t)
	}
	sort.Strings(tags)
	out := make([]Entry, 0, len(tags))
	for _, t := range tags {
		sort.Strings(byTag[t].Names)
		out = append(out, *byTag[t])
	}
	return out
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// GCResult is what GC did.
type GCResult struct {
	Removed int      `json:"removed"` // cgroups removed
	Busy    []string `json:"busy,omitempty"`
	Owners  []string `json:"owners,omitempty"` // registrations dropped
}

// GC removes the cgroups of pools whose StateDir is gone, in every parent
// on the host, and their registrations; with unknown, also those of tags
// no pool registered (an older FRE's). This pool's cgroups and those of
// live pools are left alone. A cgroup with a process or a child in it is
// never removed (rmdir refuses): it is reported busy.
func (p *Pool) GC(unknown bool) (GCResult, error) {
	var res GCResult
	roots, err := p.hierarchyRoots()
	if err != nil {
		return res, err
	}
	busyTag := map[string]bool{}
	for _, pa := range p.hostParents() {
		for _, e := range p.entriesIn(roots, pa) {
			if e.Self || e.State == OwnerLive || (e.State == OwnerUnknown && !unknown) {
				continue
			}
			n, busy := removeOrphans(roots, pa, e.Names)
			res.Removed += n
			res.Busy = append(res.Busy, busy...)
			if len(busy) > 0 {
				busyTag[e.Tag] = true
			}
		}
	}
	// Registrations of pools that are gone and have nothing left.
	ents, _ := os.ReadDir(filepath.Join(p.registry(), "owners"))
	for _, e := range ents {
		tag := e.Name()
		if tag == p.tag || busyTag[tag] || strings.HasSuffix(tag, ".tmp") {
			continue
		}
		if _, st := p.ownerOf(tag); st == OwnerGone && os.Remove(p.ownerFile(tag)) == nil {
			res.Owners = append(res.Owners, tag)
		}
	}
	sort.Strings(res.Owners)
	return res, nil
}

// sweepGone removes, in parent, the cgroups of registered pools whose
// StateDir is gone (Fill's part of GC).
func (p *Pool) sweepGone(roots []string, parent string) {
	for _, e := range p.entriesIn(roots, parent) {
		if e.State == OwnerGone {
			removeOrphans(roots, parent, e.Names)
		}
	}
}

// removeOrphans rmdirs each name in every hierarchy, the first one first
// (as a claim renames). Nothing is killed: a cgroup rmdir refuses (EBUSY:
// a process or a child in it) is reported busy and left whole in the
// hierarchies after it.
func removeOrphans(roots []string, parent string, names []string) (removed int, busy []string) {
	for _, n := range names {
		ok := true
		for _, r := range roots {
			d := r + path.Join(parent, n)
			if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
				ok = false
				busy = append(busy, d)
				break
			}
		}
		if ok {
			removed++
		}
	}
	return removed, busy
}

// hasEntries reports whether any cgroup of this pool's name is on the host
// (in any parent the registry knows).
func (p *Pool) hasEntries() bool {
	roots, err := p.hierarchyRoots()
	if err != nil {
		return true
	}
	for _, pa := range p.hostParents() {
		for _, e := range p.entriesIn(roots, pa) {
			if e.Self {
				return true
			}
		}
	}
	return false
}
