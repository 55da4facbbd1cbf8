package cgroup

import (
	"strconv"
	"time"
)

// A hybrid host (v1 controllers, and a cgroup2 with no controllers at
// /sys/fs/cgroup/unified) has the container's cgroup in the unified
// hierarchy too, as runc has it: the same path, no limits, so that the
// last line of /proc/<pid>/cgroup ("0::/<path>") names the container's
// cgroup as the v1 lines do. It cannot be renamed (cgroup2 refuses), so
// it is made and removed per container beside the pooled v1 cgroup; the
// init is born in it (clone3's CLONE_INTO_CGROUP: no migration, no
// cgroup_threadgroup_rwsem).

// HybridDir is cgroupsPath's directory in the unified hierarchy of a
// hybrid host, "" on any other layout (or for an invalid path).
func HybridDir(cgroupsPath string) string {
	hm, err := hostCgroupMounts()
	if err != nil || len(hm.v1) == 0 || hm.v2 == "" {
		return ""
	}
	p, err := cleanPath(cgroupsPath)
	if err != nil {
		return ""
	}
	return hm.v2 + p
}

// MakeHybrid makes dir (from HybridDir) and its missing parents; one
// there already is kept (made reports which).
func MakeHybrid(dir string) (made bool, err error) {
	hm, err := hostCgroupMounts()
	if err != nil {
		return false, err
	}
	err = mkdirCgroup(hm.v2, dir, func(string) error { made = true; return nil })
	return made, err
}

// RemoveHybrid removes dir and any cgroups below it, waiting for dying
// processes to leave (as Destroy); one already gone is no error.
func RemoveHybrid(dir string) error {
	if dir == "" {
		return nil
	}
	return rmTree(dir, time.Now().Add(destroyTimeout))
}

// JoinHybrid moves process pid into dir (where it could not be born
// there: a kernel before 5.7).
func JoinHybrid(dir string, pid int) error {
	return writeFile(dir, "cgroup.procs", strconv.Itoa(pid))
}
