package cgpool

import (
	"errors"
	"os"
	"path"
	"strings"
	"syscall"

	"github.com/fre-runtime/fre/cgroup"
	"golang.org/x/sys/unix"
)

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
	p.register() // it goes back under this pool's name
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
