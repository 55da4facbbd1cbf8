package main

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/fre-runtime/fre/cgroup"
	"github.com/fre-runtime/fre/internal/testutil"
)

// What runtime-tools' linux_cgroups_* programs check (the spec's
// resources land in the container's cgroup), on cgroup v2, where
// runtime-tools v0.9.0 cannot look ("cgroupv2 is not supported yet"): the
// same bundle is created by runc and by fre-runc, and the files of the
// two cgroups must read the same. A case runc refuses, fre-runc must
// refuse too. Runs on a cgroup v2 host (make test-v2's guest) with runc.
func TestCgroupV2ResourcesAsRunc(t *testing.T) {
	needRoot(t)
	if cgroup.Mode() != cgroup.Unified {
		t.Skip("needs a cgroup v2 host (make test-v2 runs it in a guest)")
	}
	runcPath, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("no runc to compare with")
	}
	i64 := func(v int64) *int64 { return &v }
	u64 := func(v uint64) *uint64 { return &v }
	u16 := func(v uint16) *uint16 { return &v }
	hugeFile := ""
	if ents, _ := filepath.Glob("/sys/fs/cgroup/hugetlb.*.max"); len(ents) > 0 {
		hugeFile = filepath.Base(ents[0])
	}
	type tc struct {
		name  string
		res   specs.LinuxResources
		files []string
		// later: where runc 1.1.5 and a later runc differ, what the later
		// one writes (FRE follows it): cpu.weight from cpu.shares by the
		// curve of runc 1.3 and crun 1.23 (1024 -> 100; 1.1.5's linear
		// formula gives 39, so a default-shares container got a weight of
		// 39 against its neighbours' 100).
		later map[string]string
	}
	cases := []tc{
		{"memory", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(50593792), Reservation: i64(25296896), Swap: i64(101187584)}},
			[]string{"memory.max", "memory.low", "memory.swap.max"}, nil},
		{"memory-swap-equal", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(151781376), Swap: i64(151781376)}},
			[]string{"memory.max", "memory.swap.max"}, nil},
		{"memory-unlimited", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-1), Swap: i64(-1)}},
			[]string{"memory.max", "memory.swap.max"}, nil},
		{"cpu", specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64(1024), Quota: i64(50000), Period: u64(100000), Cpus: "0", Mems: "0"}},
			[]string{"cpu.weight", "cpu.max", "cpuset.cpus", "cpuset.mems"}, map[string]string{"cpu.weight": "100"}},
		{"cpu-shares-only", specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64(512)}},
			[]string{"cpu.weight", "cpu.max"}, map[string]string{"cpu.weight": "59"}},
		{"pids", specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(100)}},
			[]string{"pids.max"}, nil},
		{"io-weight", specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: u16(500)}},
			[]string{"io.weight", "io.bfq.weight"}, nil},
		{"unified", specs.LinuxResources{Unified: map[string]string{"memory.high": "104857600", "pids.max": "42"}},
			[]string{"memory.high", "pids.max"}, nil},
		{"unified-over-memory", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(50593792)}, Unified: map[string]string{"memory.max": "75890688"}},
			[]string{"memory.max"}, nil},
		// Refused by runc on v2: swap without a limit.
		{"swap-without-limit", specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: i64(101187584)}},
			[]string{"memory.max", "memory.swap.max"}, nil},
	}
	if hugeFile != "" {
		size := strings.TrimSuffix(strings.TrimPrefix(hugeFile, "hugetlb."), ".max")
		cases = append(cases, tc{"hugetlb", specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: size, Limit: 4 << 20}}},
			[]string{hugeFile}, nil})
	}

	fre := newEnv(t)
	runcRoot := filepath.Join(rootDir, "runc-"+strings.ReplaceAll(t.Name(), "/", "_"))
	runc := &env{t: t, bin: runcPath, root: runcRoot, args: []string{"--root", runcRoot}}
	t.Cleanup(func() {
		out, _, _ := runc.run(nil, "list", "-q")
		for _, id := range strings.Fields(out) {
			runc.run(nil, "delete", "--force", id)
		}
		os.RemoveAll(runcRoot)
	})

	// read creates the bundle's container with e, reads files from its
	// cgroup and deletes it; the cgroup must be gone afterwards.
	read := func(t *testing.T, base *env, res specs.LinuxResources, files []string) (map[string]string, string) {
		t.Helper()
		e := *base
		e.t = t
		id := newID()
		cg := "/" + id
		b := bundle(t, "sleep", "60")
		testutil.MutateSpec(t, b, func(s *specs.Spec) {
			s.Linux.CgroupsPath = cg
			r := res
			if s.Linux.Resources != nil {
				r.Devices = s.Linux.Resources.Devices
			}
			s.Linux.Resources = &r
		})
		_, errOut, code := e.run(nil, "create", "--bundle", b, id)
		if code != 0 {
			return nil, strings.TrimSpace(errOut)
		}
		got := map[string]string{}
		for _, f := range files {
			data, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", cg, f))
			if err != nil {
				got[f] = "(absent)"
				continue
			}
			got[f] = strings.TrimSpace(string(data))
		}
		e.must("delete", "--force", id)
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", cg)); err == nil {
			t.Errorf("%s left its cgroup %s", e.bin, cg)
		}
		return got, ""
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want, runcErr := read(t, runc, c.res, c.files)
			got, freErr := read(t, fre, c.res, c.files)
			switch {
			case runcErr != "" && freErr == "":
				t.Fatalf("runc refuses (%s); fre-runc made %v", runcErr, got)
			case runcErr == "" && freErr != "":
				t.Fatalf("runc makes %v; fre-runc refuses: %s", want, freErr)
			case runcErr != "":
				t.Logf("both refuse: runc %q; fre-runc %q", runcErr, freErr)
				return
			}
			keys := make([]string, 0, len(want))
			for k := range want {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				w := want[k]
				if l, ok := c.later[k]; ok && w != l {
					t.Logf("%s: runc 1.1.5 writes %q, a later runc %q (FRE follows the later)", k, w, l)
					w = l
				}
				if w != got[k] {
					t.Errorf("%s: runc %q, fre-runc %q", k, w, got[k])
				}
			}
			t.Logf("as runc: %v", got)
		})
	}
}

// Bad cgroup input gets a clear error naming the field, and leaves no
// cgroup, no device program (it goes with its cgroup) and no state: a
// device rule of an unknown type or with other access letters, a
// cgroupsPath that climbs out of the hierarchy, and (cgroup v2) a limit
// for a controller the parent does not delegate.
func TestBadCgroupInput(t *testing.T) {
	e := newEnv(t)
	id0 := newID()
	type badCase struct {
		name   string
		cgPath string
		mutate func(*specs.Spec)
		want   string
	}
	cases := []badCase{
		{"device type", "", func(s *specs.Spec) {
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "z", Access: "rwm"})
		}, "linux.resources.devices"},
		{"device access", "", func(s *specs.Spec) {
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Access: "rwx"})
		}, "linux.resources.devices"},
		{"path is the root", "/../x/..", nil, "linux.cgroupsPath"},
		// Climbing out is cleaned into the hierarchy, as runc does: the
		// container is made below the root, not outside it.
		{"path climbs out", "/../../" + id0 + "-out", nil, ""},
	}
	if cgroup.Mode() == cgroup.Unified {
		// A parent with a process of its own: it may delegate only the
		// threaded controllers (pids is one, so pids.max is there), and a
		// cgroup below it is then not a valid domain: the kernel refuses
		// to put the init there. (A missing controller file, a parent
		// that does not delegate, is cgroup's TestV2SetSemantics.)
		parent := "/" + id0 + "-nodelegate"
		dir := filepath.Join("/sys/fs/cgroup", parent)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		sleeper := exec.Command("sleep", "600")
		if err := sleeper.Start(); err != nil {
			os.Remove(dir)
			t.Fatal(err)
		}
		t.Cleanup(func() {
			sleeper.Process.Kill()
			sleeper.Wait()
			// The kernel drops an exited task from cgroup.procs a moment
			// after its reaping.
			deadline := time.Now().Add(5 * time.Second)
			for {
				err := os.Remove(dir)
				if err == nil {
					return
				}
				if time.Now().After(deadline) {
					t.Errorf("remove %s: %v", dir, err)
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(fmt.Sprint(sleeper.Process.Pid)), 0); err != nil {
			t.Fatal(err)
		}
		i64 := func(v int64) *int64 { return &v }
		cases = append(cases, badCase{"parent with processes", parent + "/c", func(s *specs.Spec) {
			s.Linux.Resources.Pids = &specs.LinuxPids{Limit: i64(10)}
		}, "linux.cgroupsPath"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := newID()
			b := bundle(t, "true")
			cg := c.cgPath
			if cg == "" {
				cg = "/" + id
			}
			testutil.MutateSpec(t, b, func(s *specs.Spec) {
				s.Linux.CgroupsPath = cg
				if c.mutate != nil {
					c.mutate(s)
				}
			})
			_, errOut, code := e.run(nil, "create", "--bundle", b, id)
			if c.want == "" {
				if code != 0 {
					t.Fatalf("create: exit %d: %s", code, errOut)
				}
				d := filepath.Join("/sys/fs/cgroup", id0+"-out")
				if cgroup.Mode() != cgroup.Unified {
					d = filepath.Join("/sys/fs/cgroup/devices", id0+"-out")
				}
				if _, err := os.Stat(d); err != nil {
					t.Errorf("cgroup %s not made: %v", d, err)
				}
				e.must("delete", "--force", id)
				return
			}
			if code == 0 {
				e.run(nil, "delete", "--force", id)
				t.Fatalf("create succeeded")
			}
			if !strings.Contains(errOut, c.want) {
				t.Fatalf("error %q does not name %q", errOut, c.want)
			}
			if _, err := os.Stat(filepath.Join(e.root, id)); err == nil {
				t.Errorf("state of %s left behind", id)
			}
			if path.Clean("/"+cg) == "/" {
				return
			}
			for _, m := range cgroupDirs(cg) {
				if _, err := os.Stat(m); err == nil {
					t.Errorf("cgroup %s left behind", m)
				}
			}
		})
	}
}

// cgroupDirs is where cgroup p is on this host: one directory on v2, one
// per v1 hierarchy otherwise.
func cgroupDirs(p string) []string {
	if cgroup.Mode() == cgroup.Unified {
		return []string{filepath.Join("/sys/fs/cgroup", p)}
	}
	ents, _ := os.ReadDir("/sys/fs/cgroup")
	var dirs []string
	for _, ent := range ents {
		if ent.IsDir() {
			dirs = append(dirs, filepath.Join("/sys/fs/cgroup", ent.Name(), p))
		}
	}
	return dirs
}
