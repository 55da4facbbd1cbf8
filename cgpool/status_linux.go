package cgpool

import (
	"path"

	"github.com/fre-runtime/fre/cgroup"
)

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
	// Host is every pool's cgroups on the host, per parent and owner:
	// this pool's, other live pools', and those of pools that are gone
	// (GC removes them) or unknown.
	Host []Entry `json:"host,omitempty"`
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
	st.Host, _ = p.Entries()
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
