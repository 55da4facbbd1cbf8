package cgpool

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/cgroup"
)

// The named pool: cgroup v2 has no rename, so an idle cgroup can never
// become the one at a cgroupsPath someone else chose (containerd's,
// kubelet's). What still pays there is a container whose cgroup FRE
// names itself (a spec without cgroupsPath: runc's default spec, FRE's
// own function instances): it gets one of the pool's cgroups as it is,
// /.fre-pool-<tag>-n<k> below the hierarchy's root, made ahead and reset
// at release, so neither mkdir nor rmdir is on its path (make bench-v2's
// BenchmarkCreateStartV2/precreated measures what that saves).
//
// Slot k's state is two files in StateDir/named: "k.busy" is the token of
// whoever holds the slot (made with O_EXCL, so one holder at a time), and
// "k.idle" says the slot's cgroup is there, reset, and free, and counts
// only while no k.busy exists. Claim: take k.busy, then drop k.idle (a
// hit) or make the cgroup (a miss). Release: reset the cgroup, then
// rename k.busy to k.idle (RENAME_NOREPLACE). A holder that dies leaves
// its k.busy: that slot is out of use until `fre-runc pool drain` (which
// takes only slots no one holds) or a host reboot (StateDir on a tmpfs).

// namedSlot is the cgroup path of named slot k.
func (p *Pool) namedSlot(k int) string { return "/" + p.idle + "n" + strconv.Itoa(k) }

// namedIndex is the slot of a named cgroup path, or -1.
func (p *Pool) namedIndex(cgroupPath string) int {
	rest, ok := strings.CutPrefix(cgroupPath, "/"+p.idle+"n")
	if !ok {
		return -1
	}
	k, err := strconv.Atoi(rest)
	if err != nil || k < 0 || strconv.Itoa(k) != rest {
		return -1
	}
	return k
}

func (p *Pool) namedFile(k int, state string) string {
	return filepath.Join(p.cfg.StateDir, "named", strconv.Itoa(k)+"."+state)
}

// NamesCgroups reports whether ClaimNamed hands out cgroups (cgroup v2
// with the pool on).
func (p *Pool) NamesCgroups() bool { return p.named }

// ClaimNamed returns a cgroup of the pool's own naming below the
// hierarchy's root, for a container whose cgroup FRE names: an idle one
// (a hit) or one made in a free slot (a miss), and its slot. Every slot
// in use: a nil Manager, slot -1, no error (the caller names its own).
func (p *Pool) ClaimNamed() (cgroup.Manager, int, error) {
	if !p.named {
		return nil, -1, ErrDisabled
	}
	size := p.cfg.Size
	off := int(randUint32() % uint32(size))
	p.cOnce.Do(func() { p.c, p.cErr = openCounters(p.cfg.StateDir) })
	if t, ok := p.c.next(cTicket); ok {
		off = int(t % uint64(size))
	}
	// Idle slots first, then free ones.
	for pass := 0; pass < 2; pass++ {
		for i := 0; i < size; i++ {
			k := (off + i) % size
			if pass == 0 && !exists(p.namedFile(k, "idle")) {
				continue
			}
			if !p.takeNamed(k) {
				continue
			}
			if pass == 1 {
				p.register() // a miss makes a cgroup of this pool's name
			}
			m, err := p.namedReady(k)
			if err != nil {
				os.Remove(p.namedFile(k, "busy"))
				return nil, -1, err
			}
			if m != nil {
				return m, k, nil
			}
		}
	}
	return nil, -1, nil
}

// takeNamed takes slot k's token.
func (p *Pool) takeNamed(k int) bool {
	fd, err := unix.Open(p.namedFile(k, "busy"), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

// namedReady makes slot k (held) ready for a container: its idle cgroup
// (a hit), or a new one (a miss). A leftover that is in use or frozen
// (not made by this pool's release) leaves the slot held and out of use:
// nil, nil.
func (p *Pool) namedReady(k int) (cgroup.Manager, error) {
	m, err := p.newManager(p.namedSlot(k))
	if err != nil {
		return nil, err
	}
	if os.Remove(p.namedFile(k, "idle")) == nil {
		if frozen, err := m.Frozen(); err == nil {
			if pids, _ := m.Pids(); !frozen && len(pids) == 0 {
				p.count(cHits)
				return m, nil
			}
			return nil, nil // someone else's use of our name: not ours to take
		}
		// The idle cgroup is gone (removed by hand): make it again.
	} else if frozen, err := m.Frozen(); err == nil && (frozen || func() bool { pids, _ := m.Pids(); return len(pids) > 0 }()) {
		return nil, nil
	}
	if err := m.Create(); err != nil {
		return nil, err
	}
	p.count(cMisses)
	return m, nil
}

// releaseNamed resets m, the cgroup of named slot k (held), and gives the
// slot back idle; a cgroup that cannot be reused is removed and the slot
// freed.
func (p *Pool) releaseNamed(m cgroup.Manager, k int, reset func() error) error {
	busy := p.namedFile(k, "busy")
	reusable := removeChildren(m) == nil && reset() == nil
	if n, err := m.OOMKillCount(); err == nil && n > 0 {
		reusable = false // the kernel's count of OOM kills cannot be reset
	}
	if reusable {
		if err := unix.Renameat2(unix.AT_FDCWD, busy, unix.AT_FDCWD, p.namedFile(k, "idle"), unix.RENAME_NOREPLACE); err == nil {
			p.count(cReleased)
			return nil
		}
	}
	p.count(cRemoved)
	err := m.Destroy()
	if rerr := os.Remove(busy); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

// fillNamed tops the named pool up to n idle cgroups.
func (p *Pool) fillNamed(n int) error {
	if n > p.cfg.Size {
		n = p.cfg.Size
	}
	idle := 0
	for k := 0; k < p.cfg.Size; k++ {
		if exists(p.namedFile(k, "idle")) && !exists(p.namedFile(k, "busy")) {
			idle++
		}
	}
	p.register()
	var errs []error
	for k := 0; k < p.cfg.Size && idle < n; k++ {
		if exists(p.namedFile(k, "idle")) || !p.takeNamed(k) {
			continue
		}
		m, err := p.newManager(p.namedSlot(k))
		if err == nil {
			err = m.Create()
		}
		if err == nil {
			err = unix.Renameat2(unix.AT_FDCWD, p.namedFile(k, "busy"), unix.AT_FDCWD, p.namedFile(k, "idle"), unix.RENAME_NOREPLACE)
		}
		if err != nil {
			os.Remove(p.namedFile(k, "busy"))
			errs = append(errs, fmt.Errorf("cgpool: fill %s: %w", p.namedSlot(k), err))
			continue
		}
		idle++
	}
	return errors.Join(errs...)
}

// drainNamed removes every idle named cgroup (slots no one holds).
func (p *Pool) drainNamed() error {
	var errs []error
	for k := 0; k < p.cfg.Size; k++ {
		if !exists(p.namedFile(k, "idle")) || !p.takeNamed(k) {
			continue
		}
		os.Remove(p.namedFile(k, "idle"))
		if m, err := p.newManager(p.namedSlot(k)); err == nil {
			if err := m.Destroy(); err != nil {
				errs = append(errs, err)
			}
		}
		os.Remove(p.namedFile(k, "busy"))
	}
	return errors.Join(errs...)
}

// namedStatus counts the named slots idle and held.
func (p *Pool) namedStatus() ParentStatus {
	ps := ParentStatus{Parent: "/", Named: true}
	for k := 0; k < p.cfg.Size; k++ {
		switch busy := exists(p.namedFile(k, "busy")); {
		case busy:
			ps.InUse++
		case exists(p.namedFile(k, "idle")):
			ps.Idle++
		}
	}
	return ps
}

func exists(f string) bool {
	var st unix.Stat_t
	return unix.Stat(f, &st) == nil
}

// isNamed: m is one of the named pool's cgroups (at the root).
func (p *Pool) isNamed(m cgroup.Manager) (int, bool) {
	if !p.named || path.Dir(m.Path()) != "/" {
		return -1, false
	}
	k := p.namedIndex(m.Path())
	return k, k >= 0 && k < p.cfg.Size
}
