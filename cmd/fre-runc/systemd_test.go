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

	"github.com/fre-runtime/fre/internal/testutil"
)

// systemdRunning: systemd is PID 1 with its system bus (make
// test-systemd's guest).
func systemdRunning() bool {
	comm, err := os.ReadFile("/proc/1/comm")
	if err != nil || strings.TrimSpace(string(comm)) != "systemd" {
		return false
	}
	_, err = os.Stat("/run/dbus/system_bus_socket")
	return err == nil
}

// The systemd driver, as runc's --systemd-cgroup: "slice:prefix:name" is
// a transient scope prefix-name.scope in that slice holding the init,
// active, with the spec's limits as unit properties and in the cgroup's
// files; update changes both; delete leaves no unit and no cgroup;
// kubelet's nested pod slices work; a unit that exists already and a
// malformed path are refused with nothing left.
func TestSystemdCgroup(t *testing.T) {
	testutil.RequireSystemd(t)
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
	cgroupOf := func(id string) string {
		t.Helper()
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", e.state(id).Pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if rest, ok := strings.CutPrefix(l, "0::"); ok {
				return rest
			}
		}
		t.Fatalf("no cgroup v2 line in %q", data)
		return ""
	}
	readCg := func(dir, file string) string {
		t.Helper()
		data, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", dir, file))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(data))
	}
	// After delete the cgroup is gone at once; the unit, stopped, is
	// collected by systemd moments later (delete waits for the stop job,
	// not the unload, as runc's does).
	gone := func(unit, dir string) {
		t.Helper()
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", dir)); err == nil {
			t.Errorf("cgroup %s left after delete", dir)
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
	p := testutil.SystemctlShow(t, unit, "ActiveState", "MemoryMax", "TasksMax", "Delegate")
	if p["ActiveState"] != "active" || p["MemoryMax"] != fmt.Sprint(mem) || p["TasksMax"] != fmt.Sprint(pids) || p["Delegate"] != "yes" {
		t.Errorf("%s: %v", unit, p)
	}
	if got := readCg(dir, "memory.max"); got != fmt.Sprint(mem) {
		t.Errorf("memory.max %s, want %d", got, mem)
	}
	e.must("update", "--memory", "134217728", id)
	if got := testutil.SystemctlShow(t, unit, "MemoryMax")["MemoryMax"]; got != "134217728" {
		t.Errorf("MemoryMax after update: %s", got)
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
	if systemdRunning() {
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
