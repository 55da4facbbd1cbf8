package cgpool

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fre-runtime/fre/cgroup"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/internal/flock"
)

const (
	idlePrefix = ".fre-pool-" // an idle cgroup, ready to claim
	newPrefix  = ".fre-new-"  // being made by Fill or Release; never claimed

	// DefaultSize is the number of idle cgroups kept per parent.
	DefaultSize = 16

	emptyTimeout = 10 * time.Second
)

// Config configures a Pool.
type Config struct {
	// StateDir holds the lock files, counters and the list of parents seen
	// (fre-runc: <root>/cgpool).
	StateDir string
	// Size is how many idle cgroups each parent keeps (0: DefaultSize).
	Size int
	// Parents are pre-warmed by Fill("", n) besides the ones seen.
	Parents []string
	// Enabled turns the pool on; off, Claim creates and Release destroys.
	Enabled bool
	// Registry is the host-wide record of pools and their parents
	// (default DefaultRegistry; see owners_linux.go).
	Registry string
}

// Pool is a cgroup pool. Its methods are safe for concurrent use, within
// and across processes sharing StateDir.
type Pool struct {
	idle       string // idlePrefix + this pool's tag
	staging    string // newPrefix + this pool's tag
	cfg        Config
	tag        string      // hash of stateDir: two pools' names never meet
	stateDir   string      // cfg.StateDir, absolute
	registered atomic.Bool // register's record is known to be there
	enabled    bool
	named      bool // cgroup v2: ClaimNamed's pool of FRE-named cgroups (named_linux.go)
	note       string
	// newManager is cgroup.New; tests of other layouts replace it.
	newManager func(string) (cgroup.Manager, error)

	cOnce sync.Once
	c     *counters
	cErr  error
}

// Open opens (and makes) the pool's state directory. On a host where
// cgroups cannot be renamed (cgroup v2), the pool is disabled.
func Open(cfg Config) (*Pool, error) {
	if cfg.Size <= 0 {
		cfg.Size = DefaultSize
	}
	for _, d := range []string{cfg.StateDir, filepath.Join(cfg.StateDir, "locks"), filepath.Join(cfg.StateDir, "parents"), filepath.Join(cfg.StateDir, "slots"), filepath.Join(cfg.StateDir, "named")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("cgpool: state dir: %w", err)
		}
	}
	abs, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(abs))
	tag := hex.EncodeToString(sum[:4])
	// Names carry the pool's tag: two pools (two --root dirs) over one
	// parent never take, fill or sweep each other's cgroups.
	p := &Pool{cfg: cfg, tag: tag, stateDir: abs, enabled: cfg.Enabled, newManager: cgroup.New, idle: idlePrefix + tag + "-", staging: newPrefix + tag + "-"}
	switch md := cgroup.Mode(); {
	case !cfg.Enabled:
		p.note = "disabled by configuration"
	case md == cgroup.Unified:
		// No rename: only the cgroups FRE names itself are pooled.
		p.enabled, p.named = false, true
		p.note = "cgroup v2 cannot rename cgroups: only those FRE names itself (a spec without cgroupsPath) are pooled, as /" + p.idle + "n<k>"
	case md == cgroup.Unavailable:
		p.enabled = false
		p.note = "disabled: no cgroup filesystem"
	}
	return p, nil
}

// Enabled reports whether Claim and Release use the pool.
func (p *Pool) Enabled() bool { return p.enabled }

// Close unmaps the counters.
func (p *Pool) Close() error { return p.c.close() }

func (p *Pool) count(i int) {
	p.cOnce.Do(func() { p.c, p.cErr = openCounters(p.cfg.StateDir) })
	p.c.add(i) // nil-safe: counting never fails a claim
}

// layout is a cgroup's directory in each hierarchy, in claim order, as
// (hierarchy root, cgroup path) pairs, so the same cgroup under another
// name is root+newPath.
type layout struct {
	roots []string
}

func layoutOf(m cgroup.Manager) layout {
	paths := m.Paths()
	keys := make([]string, 0, len(paths))
	for k := range paths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var l layout
	seen := map[string]bool{}
	for _, k := range keys {
		d := paths[k]
		if seen[d] {
			continue // co-mounted controllers share one directory
		}
		seen[d] = true
		l.roots = append(l.roots, strings.TrimSuffix(d, m.Path()))
	}
	return l
}

// renameAll renames from -> to in every hierarchy, first hierarchy first
// (claim) or last (into the pool).
func (l layout) renameAll(from, to string, firstLast bool) error {
	n := len(l.roots)
	for i := 0; i < n; i++ {
		r := l.roots[i]
		if firstLast {
			r = l.roots[n-1-i]
		}
		if err := unix.Rename(r+from, r+to); err != nil {
			return &os.LinkError{Op: "rename", Old: r + from, New: r + to, Err: err}
		}
	}
	return nil
}

// Claim returns the cgroup at cgroupsPath, made: renamed from an idle one
// of its parent (hit) or created (miss). Errors are those of creating it.
func (p *Pool) Claim(cgroupsPath string) (cgroup.Manager, bool, error) {
	m, slot, err := p.ClaimSlot(cgroupsPath)
	return m, slot >= 0, err
}

// ClaimSlot is Claim, and says which slot a hit came from (-1 on a miss):
// given to ReleaseAt, it is where the cgroup most likely goes back. A
// cgroup that is there already and frozen or with processes is refused
// (cgroup.ErrFrozen, cgroup.ErrNotEmpty) before anything is made.
func (p *Pool) ClaimSlot(cgroupsPath string) (cgroup.Manager, int, error) {
	m, err := p.newManager(cgroupsPath)
	if err != nil {
		return nil, -1, err
	}
	if p.enabled {
		if slot := p.claim(m); slot >= 0 {
			p.count(cHits)
			return m, slot, nil
		}
	}
	// A cgroup that is there already must be neither frozen nor in use,
	// as runc insists. (Missing, the usual miss: Frozen fails.)
	if frozen, err := m.Frozen(); err == nil {
		if frozen {
			return nil, -1, cgroup.ErrFrozen
		}
		if pids, err := m.Pids(); err == nil && len(pids) > 0 {
			return nil, -1, fmt.Errorf("%w: %d process(es) found", cgroup.ErrNotEmpty, len(pids))
		}
	}
	if err := m.Create(); err != nil {
		return nil, -1, err
	}
	if p.enabled {
		p.count(cMisses)
		p.remember(path.Dir(m.Path()))
	}
	return m, -1, nil
}

// Manager is the cgroup Claim(cgroupsPath) returns, without claiming or
// making anything: its Paths are where the claimed cgroup will be.
func (p *Pool) Manager(cgroupsPath string) (cgroup.Manager, error) {
	return p.newManager(cgroupsPath)
}

// claim renames an idle cgroup of m's parent to m's path; false when none
// could be taken. Idle cgroups sit in numbered slots, so a claim tries
// renames straight away, from a random slot on, and never lists the
// parent (a cgroupfs readdir of a big parent costs more than the claim).
func (p *Pool) claim(m cgroup.Manager) int {
	l := layoutOf(m)
	if len(l.roots) == 0 {
		return -1
	}
	parent := path.Dir(m.Path())
	slots := p.slots(parent)
	if slots == 0 {
		return -1 // no pool for this parent
	}
	// Claims share the parent's lock; Fill and Release take it alone, so
	// a release never picks a slot a claim is still renaming.
	unlock, err := p.lockMode(parent, unix.LOCK_SH)
	if err != nil {
		return -1
	}
	defer unlock()
	// Concurrent claimers take consecutive tickets, so each starts at a
	// different slot instead of colliding on random ones (a lost rename
	// race costs a retry on cgroupfs).
	off := int(randUint32() % uint32(slots))
	p.cOnce.Do(func() { p.c, p.cErr = openCounters(p.cfg.StateDir) })
	if t, ok := p.c.next(cTicket); ok {
		off = int(t % uint64(slots))
	}
	target := m.Path()
	for i := 0; i < slots; i++ {
		k := (off + i) % slots
		idle := slotPath(p.idle, parent, k)
		err := unix.Rename(l.roots[0]+idle, l.roots[0]+target)
		if err == unix.ENOENT {
			continue // taken by another claimer, or not refilled yet
		}
		if err != nil {
			return -1 // e.g. EEXIST: the cgroup exists, Create joins it
		}
		for _, r := range l.roots[1:] {
			if err := unix.Rename(r+idle, r+target); err != nil {
				// Should not happen (see the package doc); Create makes
				// what is missing and Fill sweeps the leftover.
				if cerr := m.Create(); cerr != nil {
					return -1
				}
				break
			}
		}
		return k
	}
	return -1
}

func slotPath(prefix, parent string, slot int) string {
	return path.Join(parent, prefix+strconv.Itoa(slot))
}

// slots is how many slots parent's pool has (0: no pool), from a small
// file under StateDir written by Fill and Release.
func (p *Pool) slots(parent string) int {
	b, err := os.ReadFile(p.slotsFile(parent))
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func (p *Pool) slotsFile(parent string) string {
	return filepath.Join(p.cfg.StateDir, "slots", escapeParent(parent))
}

// setSlots raises parent's slot count to at least n (under its lock).
func (p *Pool) setSlots(parent string, n int) (int, error) {
	cur := p.slots(parent)
	if cur >= n {
		return cur, nil
	}
	f := p.slotsFile(parent)
	tmp := f + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(n)), 0o600); err != nil {
		return cur, fmt.Errorf("cgpool: %w", err)
	}
	if err := os.Rename(tmp, f); err != nil {
		return cur, fmt.Errorf("cgpool: %w", err)
	}
	return n, nil
}

// idleNames lists the idle cgroups in dir.
func idleNames(prefix, dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	all, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, n := range all {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	return names, nil
}

// parents is the configured parents plus the ones seen, sorted.
// pooled reports whether parent keeps idle cgroups: the hierarchy root,
// a configured parent, or one given to Fill (it has a slots file).
func (p *Pool) pooled(parent string) bool {
	if parent == "/" || p.slots(parent) > 0 {
		return true
	}
	for _, pa := range p.cfg.Parents {
		if c, err := cleanParent(pa); err == nil && c == parent {
			return true
		}
	}
	return false
}

// parents are the pooled parents: configured ones and those with slots.
func (p *Pool) parents() []string {
	set := map[string]bool{}
	for _, pa := range p.cfg.Parents {
		if c, err := cleanParent(pa); err == nil {
			set[c] = true
		}
	}
	ents, _ := os.ReadDir(filepath.Join(p.cfg.StateDir, "slots"))
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		if pa, err := unescapeParent(e.Name()); err == nil {
			set[pa] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// remember records parent so that Fill("") warms it, and the pool and
// the parent in the host's registry, so that a sweep finds them if the
// pool's StateDir goes.
func (p *Pool) remember(parent string) {
	p.register()
	p.registerParent(parent)
	f := filepath.Join(p.cfg.StateDir, "parents", escapeParent(parent))
	if _, err := os.Stat(f); err == nil {
		return
	}
	os.WriteFile(f, nil, 0o600)
}

// lock takes parent's lock file.
func (p *Pool) lock(parent string) (func(), error) { return p.lockMode(parent, unix.LOCK_EX) }

func (p *Pool) lockMode(parent string, how int) (func(), error) {
	f := filepath.Join(p.cfg.StateDir, "locks", escapeParent(parent)+".lock")
	fd, err := unix.Open(f, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cgpool: lock %s: %w", f, err)
	}
	err = flock.Lock(fd, how)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("cgpool: lock %s: %w", f, err)
	}
	return func() { unix.Close(fd) }, nil
}

func cleanParent(parent string) (string, error) {
	if parent == "" || strings.ContainsAny(parent, "\n\x00") {
		return "", fmt.Errorf("%w: %q", ErrBadParent, parent)
	}
	return path.Clean("/" + parent), nil
}

// randName is a unique enough name: math/rand's generator is seeded per
// process from the kernel's random bytes.
func randName() string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], mrand.Uint64())
	return hex.EncodeToString(b[:])
}

// randUint32 picks where a probe of the slots starts: math/rand's
// generator, which the runtime seeds per process from the kernel's random
// bytes, is enough to spread processes over the slots, and costs nothing;
// crypto/rand's first read in a process set up its state first (70 µs of
// every fre-runc create and delete).
func randUint32() uint32 { return mrand.Uint32() }
