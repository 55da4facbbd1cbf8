package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/fre-runtime/fre/cgroup"
	"github.com/fre-runtime/fre/internal/testutil"
)

// The systemd driver, as runc's --systemd-cgroup: "slice:prefix:name" is
// a transient scope prefix-name.scope in that slice holding the init,
// active, with the spec's limits as unit properties and in the cgroup's
// files; update changes both; delete leaves no unit and no cgroup;
// kubelet's nested pod slices work; a unit that exists already and a
// malformed path are refused with nothing left.
func TestSystemdCgroup(t *testing.T) {
	testutil.RequireSystemdAnyCgroup(t)
	e := newEnv(t, "--systemd-cgroup")
	run := func(cgPath string, mutate func(*specs.Spec)) (string, string) {
		t.Helper()
		id := newID()
		b := bundle(t, "sleep", "600")
		testutil.MutateSpec(t, b, func(s *specs.Spec) {
			s.Linux.CgroupsPath = strings.ReplaceAll(cgPath, "ID", id)
			if mutate != nil {
				mutate(s)
			}
		})
		e.must("run", "-d", "--bundle", b, id)
		return id, b
	}
	// The layouts systemd boots: v2, or v1 with its name=systemd
	// hierarchy (hybrid: and a unified one it mirrors).
	v1 := cgroup.Mode() != cgroup.Unified
	cgroupOf := func(id string) string {
		t.Helper()
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", e.state(id).Pid))
		if err != nil {
			t.Fatal(err)
		}
		want, mem := "0::", ""
		if v1 {
			want = ":name=systemd:"
		}
		got := ""
		for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if _, rest, ok := strings.Cut(l, want); ok && (want != "0::" || strings.HasPrefix(l, "0::")) {
				got = rest
			}
			if f := strings.SplitN(l, ":", 3); len(f) == 3 && f[1] == "memory" {
				mem = f[2]
			}
		}
		if got == "" {
			t.Fatalf("no %s line in %q", want, data)
		}
		if v1 && mem != got {
			// The controllers' hierarchies are the scope's too.
			t.Errorf("init in memory:%s, name=systemd:%s", mem, got)
		}
		return got
	}
	// readCg reads a v2 file of the cgroup at dir, or on v1 the
	// controller's file that has its value.
	v1Files := map[string][2]string{"memory.max": {"memory", "memory.limit_in_bytes"}, "pids.max": {"pids", "pids.max"}}
	readCg := func(dir, file string) string {
		t.Helper()
		path := filepath.Join("/sys/fs/cgroup", dir, file)
		if v1 {
			f := v1Files[file]
			path = filepath.Join("/sys/fs/cgroup", f[0], dir, f[1])
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(data))
	}
	// After delete the cgroup is gone at once (in every hierarchy on v1);
	// the unit, told to stop, is collected by systemd moments later.
	gone := func(unit, dir string) {
		t.Helper()
		hiers := []string{""}
		if v1 {
			hiers = []string{"systemd", "memory", "pids", "cpu,cpuacct", "devices", "freezer"}
		}
		for _, h := range hiers {
			if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", h, dir)); err == nil {
				t.Errorf("cgroup %s left after delete", filepath.Join(h, dir))
			}
		}
		var st string
		unloaded := testutil.Poll(30*time.Second, func() bool {
			st = testutil.SystemctlShow(t, unit, "LoadState")["LoadState"]
			return st == "not-found"
		})
		if !unloaded {
			t.Errorf("%s after delete: LoadState %s", unit, st)
		}
	}

	// A scope in system.slice with limits.
	mem, pids := int64(64<<20), int64(50)
	id, _ := run("system.slice:fre-test:ID", func(s *specs.Spec) {
		s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &mem}
		s.Linux.Resources.Pids = &specs.LinuxPids{Limit: &pids}
	})
	unit := "fre-test-" + id + ".scope"
	dir := "/system.slice/" + unit
	if got := cgroupOf(id); got != dir {
		t.Fatalf("init's cgroup %s, want %s", got, dir)
	}
	memProp := "MemoryMax"
	if v1 {
		memProp = "MemoryLimit" // v1's property (runc's too)
	}
	p := testutil.SystemctlShow(t, unit, "ActiveState", memProp, "TasksMax", "Delegate")
	if p["ActiveState"] != "active" || p[memProp] != fmt.Sprint(mem) || p["TasksMax"] != fmt.Sprint(pids) || p["Delegate"] != "yes" {
		t.Errorf("%s: %v", unit, p)
	}
	if got := readCg(dir, "pids.max"); got != fmt.Sprint(pids) {
		t.Errorf("pids.max %s, want %d", got, pids)
	}
	if got := readCg(dir, "memory.max"); got != fmt.Sprint(mem) {
		t.Errorf("memory.max %s, want %d", got, mem)
	}
	e.must("update", "--memory", "134217728", id)
	if got := testutil.SystemctlShow(t, unit, memProp)[memProp]; got != "134217728" {
		t.Errorf("%s after update: %s", memProp, got)
	}
	if got := readCg(dir, "memory.max"); got != "134217728" {
		t.Errorf("memory.max after update: %s", got)
	}
	// The same unit again is refused, and the first is untouched.
	b2 := bundle(t, "true")
	testutil.MutateSpec(t, b2, func(s *specs.Spec) { s.Linux.CgroupsPath = "system.slice:fre-test:" + id })
	id2 := newID()
	if _, errOut, code := e.run(nil, "run", "--bundle", b2, id2); code == 0 || !strings.Contains(errOut, "exists") {
		t.Errorf("a second container in %s: exit %d: %s", unit, code, errOut)
	}
	if _, err := os.Stat(filepath.Join(e.root, id2)); err == nil {
		t.Errorf("state of %s left behind", id2)
	}
	if st := testutil.SystemctlShow(t, unit, "ActiveState")["ActiveState"]; st != "active" {
		t.Errorf("%s after the refused second: %s", unit, st)
	}
	e.must("delete", "--force", id)
	// The same unit at once: the stopped one is not yet collected, so the
	// start waits for that rather than failing "exists".
	b3 := bundle(t, "true")
	testutil.MutateSpec(t, b3, func(s *specs.Spec) { s.Linux.CgroupsPath = "system.slice:fre-test:" + id })
	e.must("run", "--bundle", b3, id)
	gone(unit, dir)

	// kubelet's layout: a pod slice below the QoS slice.
	pod := fmt.Sprintf("pod%d", os.Getpid())
	slice := "kubepods-besteffort-" + pod + ".slice"
	t.Cleanup(func() {
		// The slices systemd made for the scope, by their exact names.
		exec.Command("systemctl", "stop", slice, "kubepods-besteffort.slice", "kubepods.slice").Run()
	})
	kid, _ := run(slice+":cri-containerd:ID", nil)
	kunit := "cri-containerd-" + kid + ".scope"
	kdir := "/kubepods.slice/kubepods-besteffort.slice/" + slice + "/" + kunit
	if got := cgroupOf(kid); got != kdir {
		t.Fatalf("init's cgroup %s, want %s", got, kdir)
	}
	e.must("delete", "--force", kid)
	gone(kunit, kdir)

	// The scope started alongside the init's set-up (the option the
	// bench's A/B turns on): the same scope and limits.
	cfg := filepath.Join(t.TempDir(), "alongside.json")
	if err := os.WriteFile(cfg, []byte(`{"systemdScopeAlongside": true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ea := newEnv(t, "--systemd-cgroup", "--config", cfg)
	aid := newID()
	ab := bundle(t, "sleep", "600")
	testutil.MutateSpec(t, ab, func(s *specs.Spec) {
		s.Linux.CgroupsPath = "system.slice:fre-test:" + aid
		s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &mem}
	})
	ea.must("run", "-d", "--bundle", ab, aid)
	aunit := "fre-test-" + aid + ".scope"
	adir := "/system.slice/" + aunit
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", ea.state(aid).Pid)); err != nil || !strings.Contains(string(data), adir) {
		t.Errorf("alongside: init's cgroups %q (%v), want %s", data, err, adir)
	}
	if got := readCg(adir, "memory.max"); got != fmt.Sprint(mem) {
		t.Errorf("alongside: memory limit %s, want %d", got, mem)
	}
	ea.must("delete", "--force", aid)
	gone(aunit, adir)

	// Malformed paths name the field and leave nothing.
	for _, bad := range []string{"system.slice:fre-test", "sys/tem.slice:fre:x", "a--b.slice:fre:x"} {
		b := bundle(t, "true")
		testutil.MutateSpec(t, b, func(s *specs.Spec) { s.Linux.CgroupsPath = bad })
		bid := newID()
		if _, errOut, code := e.run(nil, "run", "--bundle", b, bid); code == 0 || !strings.Contains(errOut, "linux.cgroupsPath") {
			t.Errorf("cgroupsPath %q: exit %d: %s", bad, code, errOut)
		}
		if _, err := os.Stat(filepath.Join(e.root, bid)); err == nil {
			t.Errorf("state of %s left behind", bid)
		}
	}
}

// Without a systemd to talk to, --systemd-cgroup fails create with a
// clear error and leaves nothing.
func TestSystemdCgroupUnreachable(t *testing.T) {
	if testutil.SystemdRunning() {
		t.Skip("systemd is running here")
	}
	e := newEnv(t, "--systemd-cgroup")
	b := bundle(t, "true")
	id := newID()
	_, errOut, code := e.run(nil, "run", "--bundle", b, id)
	if code == 0 || !strings.Contains(errOut, "systemd") {
		t.Fatalf("run without systemd: exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(e.root, id)); err == nil {
		t.Fatalf("state of %s left behind", id)
	}
}
