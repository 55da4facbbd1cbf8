package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ShimPids are the processes whose program is called bin (a shim binary's
// name) and whose command line names sock (their containerd's socket).
func ShimPids(bin, sock string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if filepath.Base(args[0]) == bin && strings.Contains(string(b), sock) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// RemoveCgroupTree removes /<name> (ctr's cgroupsPath is /<namespace>/<id>)
// in every hierarchy, children first. Processes still in it are killed
// first; they, and any cgroup that cannot be removed, are returned as
// leaks.
func RemoveCgroupTree(name string) (leaks []string) {
	ents, _ := os.ReadDir("/sys/fs/cgroup")
	roots := []string{"/sys/fs/cgroup"}
	for _, e := range ents {
		roots = append(roots, filepath.Join("/sys/fs/cgroup", e.Name()))
	}
	var dirs []string
	for _, r := range roots {
		d := filepath.Join(r, name)
		if _, err := os.Stat(d); err != nil {
			continue
		}
		filepath.WalkDir(d, func(p string, de os.DirEntry, err error) error {
			if err == nil && de.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	pidsIn := func() []int {
		var pids []int
		for _, p := range dirs {
			b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					pids = append(pids, pid)
				}
			}
		}
		return pids
	}
	killed := map[int]bool{}
	deadline := time.Now().Add(10 * time.Second)
	for pids := pidsIn(); len(pids) > 0 && time.Now().Before(deadline); pids = pidsIn() {
		for _, pid := range pids {
			if !killed[pid] {
				killed[pid] = true
				cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
				leaks = append(leaks, fmt.Sprintf("process %d (%s) in %s", pid, strings.ReplaceAll(strings.TrimRight(string(cmd), "\x00"), "\x00", " "), name))
			}
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, p := range dirs {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			leaks = append(leaks, fmt.Sprintf("cgroup %s: %v", p, err))
		}
	}
	return leaks
}
