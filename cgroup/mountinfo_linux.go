package cgroup

import (
	"bufio"
	"os"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// managedV1 are the v1 controllers FRE creates cgroups in: the ones it sets
// limits on or reads statistics from (see the package doc).
var managedV1 = map[string]bool{
	"cpu": true, "cpuacct": true, "cpuset": true, "memory": true, "devices": true,
	"freezer": true, "blkio": true, "pids": true, "hugetlb": true,
}

// v1Mount is one v1 hierarchy: where it is mounted and which managed
// controllers it carries ("cpu" and "cpuacct" may share one).
type v1Mount struct {
	mountpoint  string
	controllers []string // sorted
}

type hostMounts struct {
	v1 []v1Mount // sorted by first controller
	v2 string    // the cgroup2 mount point, "" if none
}

var (
	mountsOnce sync.Once
	mounts     hostMounts
	mountsErr  error
)

// hostCgroupMounts reads /proc/self/mountinfo once per process: the CLI
// runs as one short process per command, the shim keeps its answer.
func hostCgroupMounts() (hostMounts, error) {
	mountsOnce.Do(func() {
		f, err := os.Open("/proc/self/mountinfo")
		if err != nil {
			mountsErr = &Error{Op: "read", Path: "/proc/self/mountinfo", Err: unwrapPathErr(err)}
			return
		}
		defer f.Close()
		mounts = unifiedOverride(parseMountinfo(bufio.NewScanner(f)), statfsType)
	})
	return mounts, mountsErr
}

// unifiedOverride decides the layout as runc does: /sys/fs/cgroup that is
// itself a cgroup2 file system means a unified host, whatever mountinfo
// lists besides (v1 hierarchies hidden under a cgroup2 mounted over them:
// a runtime in a container, a private mount namespace).
func unifiedOverride(hm hostMounts, fstype func(string) int64) hostMounts {
	if fstype("/sys/fs/cgroup") == unix.CGROUP2_SUPER_MAGIC {
		return hostMounts{v2: "/sys/fs/cgroup"}
	}
	return hm
}

func statfsType(path string) int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0
	}
	return int64(st.Type)
}

func parseMountinfo(sc *bufio.Scanner) hostMounts {
	var hm hostMounts
	seen := map[string]bool{}
	for sc.Scan() {
		line := sc.Text()
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		pf := strings.Fields(pre)
		af := strings.Fields(post)
		if len(pf) < 5 || len(af) < 3 {
			continue
		}
		mp := unescapeMount(pf[4])
		switch af[0] {
		case "cgroup2":
			// Prefer the conventional place when several are mounted.
			if hm.v2 == "" || mp == "/sys/fs/cgroup" {
				hm.v2 = mp
			}
		case "cgroup":
			var ctrls []string
			for _, o := range strings.Split(af[2], ",") {
				if managedV1[o] && !seen[o] {
					ctrls = append(ctrls, o)
				}
			}
			if len(ctrls) == 0 {
				continue
			}
			sort.Strings(ctrls)
			for _, c := range ctrls {
				seen[c] = true
			}
			hm.v1 = append(hm.v1, v1Mount{mountpoint: mp, controllers: ctrls})
		}
	}
	sort.Slice(hm.v1, func(i, j int) bool { return hm.v1[i].controllers[0] < hm.v1[j].controllers[0] })
	return hm
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			v := (int(s[i+1]-'0') << 6) | (int(s[i+2]-'0') << 3) | int(s[i+3]-'0')
			b.WriteByte(byte(v))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Mode reports the host's cgroup layout.
func Mode() CgroupMode {
	hm, err := hostCgroupMounts()
	if err != nil {
		return Unavailable
	}
	switch {
	case len(hm.v1) > 0 && hm.v2 != "":
		return Hybrid
	case len(hm.v1) > 0:
		return Legacy
	case hm.v2 != "":
		return Unified
	}
	return Unavailable
}

// UnifiedMountpoint is where cgroup2 is mounted ("" if it is not): on a
// hybrid host, the (controller-less) unified hierarchy.
func UnifiedMountpoint() string {
	hm, _ := hostCgroupMounts()
	return hm.v2
}
