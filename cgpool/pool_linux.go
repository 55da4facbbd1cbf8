package cgpool

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fre-runtime/fre/cgroup"
	"golang.org/x/sys/unix"
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
}

// Pool is a cgroup pool. Its methods are safe for concurrent use, within
// and across processes sharing StateDir.
type Pool struct {
	idle    string // idlePrefix + this pool's tag
	staging string // newPrefix + this pool's tag
	cfg     Config
	enabled bool
	named   bool // cgroup v2: ClaimNamed's pool of FRE-named cgroups (named_linux.go)
	note    string
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
	p := &Pool{cfg: cfg, enabled: cfg.Enabled, newManager: cgroup.New, idle: idlePrefix + tag + "-", staging: newPrefix + tag + "-"}
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

// Release empties m, resets its limits and puts it back into its parent's
// pool, or removes it when the pool is full, disabled, or the reset fails.
func (p *Pool) Release(m cgroup.Manager) error { return p.release(m, m.Reset, -1) }

// ReleaseAt is Release with the slot ClaimSlot gave (-1: none), tried
// first.
func (p *Pool) ReleaseAt(m cgroup.Manager, slot int) error { return p.release(m, m.Reset, slot) }

// ReleaseOnlyAt is ReleaseAt for a cgroup whose limits changed only
// through Set of resources touching ctrls (cgroup.Controllers): only those
// and the freezer are reset. The caller vouches that nothing else could
// write the cgroup's files (no writable cgroupfs, no CAP_SYS_ADMIN inside).
func (p *Pool) ReleaseOnlyAt(m cgroup.Manager, ctrls []string, slot int) error {
	return p.release(m, func() error { return m.ResetOnly(ctrls) }, slot)
}

func (p *Pool) release(m cgroup.Manager, reset func() error, hint int) error {
	if err := empty(m); err != nil {
		return err
	}
	if k, ok := p.isNamed(m); ok {
		return p.releaseNamed(m, k, reset)
	}
	if !p.enabled {
		return m.Destroy()
	}
	if err := removeChildren(m); err != nil || reset() != nil {
		p.count(cRemoved)
		return m.Destroy()
	}
	// The kernel's count of OOM kills cannot be reset: a cgroup that saw
	// one would report it again to its next container's OOM watch.
	if n, err := m.OOMKillCount(); err == nil && n > 0 {
		p.count(cRemoved)
		return m.Destroy()
	}
	parent := path.Dir(m.Path())
	l := layoutOf(m)
	// Only pooled parents keep idle cgroups: one merely seen (a pod's
	// cgroup, a one-off parent) must stay removable by whoever made it.
	if !p.pooled(parent) {
		p.count(cRemoved)
		return m.Destroy()
	}
	if p.slots(parent) == p.cfg.Size && len(l.roots) > 0 {
		return p.releaseShared(m, l, parent, hint)
	}
	// A first release, or one after the pool's size changed: the slot
	// count is set and the idle cgroups counted under the parent's lock
	// alone.
	unlock, err := p.lock(parent)
	if err != nil {
		return errors.Join(err, m.Destroy())
	}
	defer unlock()
	if !p.pooled(parent) {
		p.count(cRemoved)
		return m.Destroy()
	}
	slots, err := p.setSlots(parent, p.cfg.Size)
	free := -1
	if err == nil {
		free = p.freeSlot(l, parent, slots)
	}
	if free < 0 {
		p.count(cRemoved)
		return m.Destroy()
	}
	idle := slotPath(p.idle, parent, free)
	if err := l.renameAll(m.Path(), idle, true); err != nil {
		// Part of it may be renamed already: remove both names.
		p.count(cRemoved)
		derr := m.Destroy()
		if im, ierr := cgroup.Load(pathsFor(l, m, idle)); ierr == nil {
			derr = errors.Join(derr, im.Destroy())
		}
		return derr
	}
	p.count(cReleased)
	return nil
}

// releaseShared puts m into a free slot of parent's pool, whose slot count
// is its size (so a free slot means room), holding the parent's lock
// shared: with claims and other releases, against Fill, Drain and sweeps.
// Releases used to take it alone, and at a few hundred containers at once
// that lock made a convoy: each holder, preempted on a crowded CPU, held
// every other release (and their containers' run) up. The renames now
// settle who gets a slot (see putInSlot). The claim's slot comes first:
// the slot it left is most likely still free.
func (p *Pool) releaseShared(m cgroup.Manager, l layout, parent string, hint int) error {
	unlock, err := p.lockMode(parent, unix.LOCK_SH)
	if err != nil {
		return errors.Join(err, m.Destroy())
	}
	defer unlock()
	slots := p.cfg.Size
	last := l.roots[len(l.roots)-1]
	try := func(k int) (bool, error) {
		var st unix.Stat_t
		if unix.Lstat(last+slotPath(p.idle, parent, k), &st) != unix.ENOENT {
			return false, nil // held, or being filled or emptied
		}
		return p.putInSlot(l, m, parent, k)
	}
	if hint >= 0 && hint < slots {
		if ok, err := try(hint); ok || err != nil {
			return p.released(m, err)
		}
	}
	off := int(randUint32() % uint32(slots))
	for i := 0; i < slots; i++ {
		if ok, err := try((off + i) % slots); ok || err != nil {
			return p.released(m, err)
		}
	}
	p.count(cRemoved) // full
	return m.Destroy()
}

// released counts a release, or removes m when putInSlot failed.
func (p *Pool) released(m cgroup.Manager, err error) error {
	if err != nil {
		p.count(cRemoved)
		return errors.Join(err, m.Destroy())
	}
	p.count(cReleased)
	return nil
}

// putInSlot renames m into idle slot k of parent, last hierarchy first:
// a claim takes a slot by its first hierarchy's rename and empties the
// others in order, so a slot whose last hierarchy is free is free in all,
// and an idle name in the first hierarchy (what claims look for) appears
// only once all the others are in place. Two releases that pick one slot
// meet at the first rename, where the kernel lets one through (the other
// gets EEXIST); so does a release that meets a claim still emptying the
// slot. false, nil: the slot was taken, nothing of m moved. An error:
// the renames done were undone (m is whole at its path again, unless
// the error says otherwise).
func (p *Pool) putInSlot(l layout, m cgroup.Manager, parent string, k int) (bool, error) {
	idle := slotPath(p.idle, parent, k)
	from := m.Path()
	n := len(l.roots)
	for i := n - 1; i >= 0; i-- {
		r := l.roots[i]
		err := unix.Rename(r+from, r+idle)
		if err == nil {
			continue
		}
		var undo error
		for j := i + 1; j < n; j++ {
			if uerr := unix.Rename(l.roots[j]+idle, l.roots[j]+from); uerr != nil {
				undo = errors.Join(undo, &os.LinkError{Op: "rename", Old: l.roots[j] + idle, New: l.roots[j] + from, Err: uerr})
			}
		}
		if (err == unix.EEXIST || err == unix.ENOTEMPTY) && undo == nil {
			return false, nil // taken (or a crash's leftover there)
		}
		return false, errors.Join(&os.LinkError{Op: "rename", Old: r + from, New: r + idle, Err: err}, undo)
	}
	return true, nil
}

// freeSlot is a slot of parent with no idle cgroup, or -1 when the pool
// holds its size already (or more slots than that are in use). Called
// under parent's exclusive lock: claims only empty slots meanwhile. It
// probes slots from a random one on with stat (a cgroupfs readdir of a
// big parent costs more than the whole release).
func (p *Pool) freeSlot(l layout, parent string, slots int) int {
	if slots <= 0 {
		return -1
	}
	// With as many slots as the pool's size, a free slot means room.
	// More slots (a bigger size configured before) need a full count.
	full := slots > p.cfg.Size
	idle, free := p.probeSlots(l, parent, slots, int(randUint32()%uint32(slots)), full)
	if full && idle >= p.cfg.Size {
		return -1
	}
	return free
}

// empty kills what is left in m and waits for it to go.
func empty(m cgroup.Manager) error {
	pids, err := m.Pids()
	if err != nil || len(pids) == 0 {
		return nil // missing cgroup: nothing to empty; Destroy copes
	}
	if err := m.Kill(syscall.SIGKILL); err != nil {
		return err
	}
	return m.WaitEmpty(emptyTimeout)
}

// removeChildren removes the cgroups a container made below its own.
func removeChildren(m cgroup.Manager) error {
	seen := map[string]bool{}
	for _, d := range m.Paths() {
		if seen[d] {
			continue
		}
		seen[d] = true
		// A kernfs directory's link count is 2 + its subdirectories: one
		// stat instead of listing every control file.
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err == nil && st.Nlink <= 2 {
			continue
		}
		ents, err := os.ReadDir(d)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if !e.IsDir() {
				continue
			}
			root := strings.TrimSuffix(d, m.Path())
			sub, err := cgroup.Load(pathsFor(layout{roots: []string{root}}, m, path.Join(m.Path(), e.Name())))
			if err != nil {
				return err
			}
			if err := sub.Destroy(); err != nil {
				return err
			}
		}
	}
	return nil
}

// pathsFor is m.Paths() for the same hierarchies (restricted to roots)
// with the cgroup at newPath.
func pathsFor(l layout, m cgroup.Manager, newPath string) map[string]string {
	in := map[string]bool{}
	for _, r := range l.roots {
		in[r] = true
	}
	out := map[string]string{}
	for k, d := range m.Paths() {
		r := strings.TrimSuffix(d, m.Path())
		if in[r] {
			out[k] = r + newPath
		}
	}
	return out
}

// Fill tops parent's pool up to n idle cgroups (n <= 0: the pool's size).
// parent "" fills every configured and seen parent. It also sweeps what an
// interrupted Fill, Release or Claim left behind.
func (p *Pool) Fill(parent string, n int) error {
	if n <= 0 {
		n = p.cfg.Size
	}
	if p.named {
		if parent != "" && path.Clean("/"+parent) != "/" {
			return fmt.Errorf("%w for parent %s: cgroup v2 pools only the cgroups FRE names itself, below the root (--parent /)", ErrDisabled, parent)
		}
		return p.fillNamed(n)
	}
	if !p.enabled {
		return ErrDisabled
	}
	if parent == "" {
		var errs []error
		for _, pa := range p.parents() {
			errs = append(errs, p.fill(pa, n))
		}
		return errors.Join(errs...)
	}
	return p.fill(parent, n)
}

func (p *Pool) fill(parent string, n int) error {
	parent, err := cleanParent(parent)
	if err != nil {
		return err
	}
	// The parent itself must exist for renames below it.
	pm, err := p.newManager(path.Join(parent, p.staging+"probe"))
	if err != nil {
		return err
	}
	l := layoutOf(pm)
	unlock, err := p.lock(parent)
	if err != nil {
		return err
	}
	p.remember(parent)
	p.sweep(l, pm, parent)
	names, err := idleNames(p.idle, l.roots[0]+parent)
	if err != nil && !os.IsNotExist(err) {
		unlock()
		return fmt.Errorf("cgpool: list %s: %w", l.roots[0]+parent, err)
	}
	slots, err := p.setSlots(parent, max(n, p.cfg.Size))
	unlock()
	if err != nil {
		return err
	}
	// Each cgroup is made outside the lock (claims meanwhile go on) and
	// renamed into a free slot under it, the slots looked at afresh.
	for need := n - len(names); need > 0; need-- {
		staging := path.Join(parent, p.staging+randName())
		m, err := p.newManager(staging)
		if err != nil {
			return err
		}
		if err := m.Create(); err != nil {
			m.Destroy()
			return err
		}
		unlock, err := p.lock(parent)
		if err != nil {
			m.Destroy()
			return err
		}
		idle, free := p.slotsInUse(l, parent, slots)
		if idle >= n || free < 0 {
			unlock()
			return m.Destroy()
		}
		err = l.renameAll(staging, slotPath(p.idle, parent, free), true)
		unlock()
		if err != nil {
			m.Destroy()
			return fmt.Errorf("cgpool: fill %s: %w", parent, err)
		}
	}
	return nil
}

// slotsInUse counts the idle cgroups in parent's slots and names the first
// free slot (-1: none). The caller holds the parent's lock.
func (p *Pool) slotsInUse(l layout, parent string, slots int) (idle, free int) {
	return p.probeSlots(l, parent, slots, 0, true)
}

// probeSlots looks at parent's slots from slot off on, one lstat each
// (cheaper than reading a big parent), and returns how many hold an idle
// cgroup and the first free one (-1: none); without all it stops at that
// free slot.
func (p *Pool) probeSlots(l layout, parent string, slots, off int, all bool) (idle, free int) {
	free = -1
	for i := 0; i < slots; i++ {
		k := (off + i) % slots
		var st unix.Stat_t
		if err := unix.Lstat(l.roots[0]+slotPath(p.idle, parent, k), &st); err != unix.ENOENT {
			idle++
			continue
		}
		if free < 0 {
			free = k
		}
		if !all {
			break
		}
	}
	return idle, free
}

// sweep removes, under the parent's lock, staging cgroups and idle names
// missing from the first hierarchy (left by a crash or by a claim that
// fell back to Create). Claims in flight are not hurt: a claimer that
// loses a name here makes the cgroup instead.
func (p *Pool) sweep(l layout, pm cgroup.Manager, parent string) {
	primary := map[string]bool{}
	if names, err := idleNames(p.idle, l.roots[0]+parent); err == nil {
		for _, n := range names {
			primary[n] = true
		}
	}
	for i, r := range l.roots {
		ents, err := os.ReadDir(r + parent)
		if err != nil {
			continue
		}
		for _, e := range ents {
			n := e.Name()
			stale := strings.HasPrefix(n, p.staging) || (i > 0 && strings.HasPrefix(n, p.idle) && !primary[n])
			if !e.IsDir() || !stale {
				continue
			}
			if m, err := cgroup.Load(pathsFor(layout{roots: []string{r}}, pm, path.Join(parent, n))); err == nil {
				empty(m)
				m.Destroy()
			}
		}
	}
}

// Drain removes every idle cgroup of parent ("" : all parents).
func (p *Pool) Drain(parent string) error {
	if p.named {
		return p.drainNamed()
	}
	parents := []string{parent}
	if parent == "" {
		parents = p.parents()
	}
	var errs []error
	for _, pa := range parents {
		pa, err := cleanParent(pa)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		pm, err := p.newManager(path.Join(pa, p.staging+"probe"))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		l := layoutOf(pm)
		unlock, err := p.lock(pa)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.sweep(l, pm, pa)
		names, _ := idleNames(p.idle, l.roots[0]+pa)
		for _, n := range names {
			idle := path.Join(pa, n)
			// Claim it first, so no one else does meanwhile.
			gone := path.Join(pa, p.staging+randName())
			if l.renameAll(idle, gone, false) != nil {
				continue
			}
			if m, err := cgroup.Load(pathsFor(l, pm, gone)); err == nil {
				errs = append(errs, m.Destroy())
			}
		}
		unlock()
	}
	return errors.Join(errs...)
}

// Status is what `fre-runc pool status` shows.
type Status struct {
	Enabled bool           `json:"enabled"`
	Note    string         `json:"note,omitempty"`
	Mode    string         `json:"cgroupMode"`
	Size    int            `json:"size"`
	Hits    uint64         `json:"hits"`
	Misses  uint64         `json:"misses"`
	Claimed uint64         `json:"claimed"`  // claimed and not yet released
	Release uint64         `json:"released"` // put back into the pool
	Removed uint64         `json:"removed"`  // released but removed (pool full)
	Parents []ParentStatus `json:"parents"`
}

// ParentStatus is one parent's pool.
type ParentStatus struct {
	Parent string `json:"parent"`
	Idle   int    `json:"idle"`
	// Named: the pool of cgroups FRE names itself (cgroup v2); InUse is
	// how many of its slots are held.
	Named bool `json:"named,omitempty"`
	InUse int  `json:"inUse,omitempty"`
}

// Status reads the counters and counts the idle cgroups of every parent.
func (p *Pool) Status() (Status, error) {
	p.cOnce.Do(func() { p.c, p.cErr = openCounters(p.cfg.StateDir) })
	if p.cErr != nil {
		return Status{}, p.cErr
	}
	st := Status{
		Enabled: p.enabled || p.named, Note: p.note, Mode: cgroup.Mode().String(), Size: p.cfg.Size,
		Hits: p.c.get(cHits), Misses: p.c.get(cMisses), Release: p.c.get(cReleased), Removed: p.c.get(cRemoved),
	}
	if out := st.Release + st.Removed; st.Hits+st.Misses > out {
		st.Claimed = st.Hits + st.Misses - out
	}
	if p.named {
		st.Parents = []ParentStatus{p.namedStatus()}
		return st, nil
	}
	for _, pa := range p.parents() {
		ps := ParentStatus{Parent: pa}
		if m, err := p.newManager(path.Join(pa, p.staging+"probe")); err == nil {
			if l := layoutOf(m); len(l.roots) > 0 {
				names, _ := idleNames(p.idle, l.roots[0]+pa)
				ps.Idle = len(names)
			}
		}
		st.Parents = append(st.Parents, ps)
	}
	return st, nil
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
	out := make([]string, 0, len(set))
	for pa := range set {
		out = append(out, pa)
	}
	sort.Strings(out)
	return out
}

// remember records parent so that Fill("") warms it.
func (p *Pool) remember(parent string) {
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
	for {
		err = unix.Flock(fd, how)
		if err != unix.EINTR {
			break
		}
	}
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
