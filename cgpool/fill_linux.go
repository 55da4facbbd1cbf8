package cgpool

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/fre-runtime/fre/cgroup"
	"golang.org/x/sys/unix"
)

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
	p.sweepGone(l.roots, parent)
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
		err := p.drainNamed()
		if err == nil && !p.hasEntries() {
			p.unregister()
		}
		return err
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
	err := errors.Join(errs...)
	if parent == "" && err == nil && !p.hasEntries() {
		p.unregister() // nothing of this pool is left on the host
	}
	return err
}
