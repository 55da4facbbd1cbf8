package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/internal/flock"
	"github.com/fre-runtime/fre/internal/quickjson"
)

// A create that dies before it saves the state (kill -9, a crash, the
// host's OOM killer) leaves a state directory without state.json, and
// may hold a cgroup, a pooled netns, a store ref and an instance channel.
// runc's `delete --force` only removes such a directory; FRE also gives
// those back, from a journal the create writes as it takes them
// (pending.json: what delete needs, a few hundred bytes, one write to
// the state dir's file system each time something is taken). The init,
// if one was cloned, dies with its creator until its set-up is done
// (PDEATHSIG); after that it is in the cgroup, which recovery empties.

const pendingFile = "pending.json"

// pendingState is the part of savedState a delete of an unfinished create
// needs.
type pendingState struct {
	CgroupPaths   map[string]string `json:"cgroup_paths,omitempty"`
	CgroupSlot    int               `json:"cgroup_slot,omitempty"`
	CgroupUnified string            `json:"cgroup_unified,omitempty"`
	NetnsPooled   string            `json:"netns_pooled,omitempty"`
	Channel       string            `json:"channel,omitempty"`
	SystemdUnit   string            `json:"systemd_unit,omitempty"`
	RootfsStore   *rootfsState      `json:"rootfs_store,omitempty"`
}

// journal records what the create has taken so far. Written in place
// (one write of a small buffer): a recovery that finds it torn or empty
// frees nothing but the directory.
func (j *createJob) journal() {
	st := j.st
	p := pendingState{CgroupPaths: st.CgroupPaths, CgroupSlot: j.claimedSlot + 1, CgroupUnified: st.CgroupUnified, NetnsPooled: st.NetnsPooled,
		Channel: st.Channel, SystemdUnit: st.SystemdUnit, RootfsStore: st.RootfsStore}
	if p.CgroupPaths == nil && p.NetnsPooled == "" && p.Channel == "" && p.SystemdUnit == "" && p.RootfsStore == nil {
		return
	}
	b, err := quickjson.Marshal(&p)
	if err != nil {
		return
	}
	fd, err := unix.Open(filepath.Join(j.dir, pendingFile), unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return
	}
	unix.Write(fd, b)
	unix.Close(fd)
}

// RemoveAbandoned removes what a create that died left of container id:
// a state directory without state.json, and what its journal says it had
// taken (the cgroup, emptied first; the pooled netns; the store ref; the
// channel; the systemd scope). A directory whose create is still running
// (it holds the directory's lock) is left alone. removed reports whether
// there was such a directory.
func (r *Runtime) RemoveAbandoned(id string) (removed bool, err error) {
	if err := ValidateID(id); err != nil {
		return false, err
	}
	dir := r.dir(id)
	f, err := os.Open(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	defer f.Close()
	if err := flock.Lock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return false, nil // its create is running
	}
	if _, err := os.Stat(filepath.Join(dir, stateFile)); err == nil {
		return false, nil // created meanwhile: a container, not a leftover
	}
	var errs []error
	if b, err := os.ReadFile(filepath.Join(dir, pendingFile)); err == nil {
		var p pendingState
		if quickjson.Unmarshal(b, &p) == nil {
			st := &savedState{ID: id, CgroupPaths: existing(p.CgroupPaths), CgroupSlot: p.CgroupSlot, CgroupUnified: p.CgroupUnified,
				NetnsPooled: p.NetnsPooled, Channel: p.Channel, SystemdUnit: p.SystemdUnit, RootfsStore: p.RootfsStore}
			c := &Container{rt: r, id: id, dir: dir, state: st, pidfd: -1}
			errs = append(errs, c.release(r.phases()))
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", dir, err))
	}
	return true, errors.Join(errs...)
}

// existing drops a journal's cgroup paths when the cgroup was never made
// (killed before its claim).
func existing(paths map[string]string) map[string]string {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return paths
		}
	}
	return nil
}
