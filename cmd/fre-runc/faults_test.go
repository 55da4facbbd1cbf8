package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/internal/testutil"
)

// TestKilledAtEachStep: fre-runc is killed (SIGKILL, by itself: a build
// with the tag failpoints dies after the traced phase $FRE_FAILPOINT) at
// every named step of create, start, exec, update and delete, with the
// netns pool and the shared store on and off; then `delete --force`
// must leave the host as it was: no state, cgroup, mount, netns pin,
// store ref or process of the container. The steps are read from the
// trace of an undisturbed run, so a new phase is covered as it appears.
// The table it logs (step × outcome) is the README's.
func TestKilledAtEachStep(t *testing.T) {
	e := newEnv(t)
	fp := filepath.Join(t.TempDir(), "fre-runc-failpoints")
	if _, err := exec.LookPath("go"); err != nil {
		if _, err := os.Stat(filepath.Join(os.Getenv("FRE_PREBUILT_DIR"), filepath.Base(fp))); err != nil {
			t.Skip("needs the go toolchain or a prebuilt fre-runc-failpoints: fre-runc is built with failpoints")
		}
	}
	if err := testutil.GoBuild(fp, ".", "-tags", "failpoints"); err != nil {
		t.Fatal(err)
	}
	long := bundle(t, "sleep", "600")
	shared := bundle(t, "sleep", "600")
	testutil.MutateSpec(t, shared, func(s *specs.Spec) {
		s.Annotations = map[string]string{"run.fre.rootfs": "shared"}
	})

	// fre runs a fre-runc command: bin, extra environment, args; its
	// stdout and stderr together (the trace is on stderr).
	fre := func(bin string, env []string, args ...string) (string, int) {
		o, er, code := e.runBin(bin, env, nil, args...)
		return o + er, code
	}
	phasesOf := func(out string) []string {
		var ps []string
		seen := map[string]bool{}
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			l, ok := strings.CutPrefix(sc.Text(), "fre-trace ")
			if !ok {
				continue
			}
			if i := strings.LastIndexByte(l, ' '); i > 0 {
				l = l[:i]
			}
			if l != "main" && !seen[l] {
				seen[l] = true
				ps = append(ps, l)
			}
		}
		return ps
	}

	type variant struct {
		name   string
		global []string
		bundle string
	}
	variants := []variant{{"plain", nil, long}, {"netns pool + store", []string{"--netns-policy", "pool"}, shared}}
	type op struct {
		name string
		prep func(id string, v variant) // brings the container to where op runs
		args func(id string) []string
	}
	create := func(id string, v variant, start bool) {
		if out, code := fre(freBin, nil, append(append([]string{}, v.global...), "create", "--bundle", v.bundle, id)...); code != 0 {
			t.Fatalf("create %s: %s", id, out)
		}
		if start {
			if out, code := fre(freBin, nil, "start", id); code != 0 {
				t.Fatalf("start %s: %s", id, out)
			}
		}
	}
	ops := []op{
		{"create", func(string, variant) {}, nil},
		{"start", func(id string, v variant) { create(id, v, false) }, func(id string) []string { return []string{"start", id} }},
		{"exec", func(id string, v variant) { create(id, v, true) }, func(id string) []string { return []string{"exec", id, "true"} }},
		{"update", func(id string, v variant) { create(id, v, true) }, func(id string) []string { return []string{"update", "--memory", "64M", id} }},
		{"delete", func(id string, v variant) { create(id, v, true) }, func(id string) []string { return []string{"delete", "--force", id} }},
	}

	type row struct{ op, variant, step, outcome string }
	var table []row
	n := 0
	for _, v := range variants {
		for _, o := range ops {
			argsFor := o.args
			if argsFor == nil {
				argsFor = func(id string) []string {
					return append(append([]string{}, v.global...), "create", "--bundle", v.bundle, id)
				}
			}
			// The steps: an undisturbed run's trace.
			n++
			id := fmt.Sprintf("%s-fault-%d", newID(), n)
			o.prep(id, v)
			out, code := fre(fp, []string{"FRE_TRACE=1"}, argsFor(id)...)
			if code != 0 {
				t.Fatalf("%s (%s) undisturbed: %s", o.name, v.name, out)
			}
			fre(freBin, nil, "delete", "--force", id)
			steps := phasesOf(out)
			if len(steps) == 0 {
				t.Fatalf("%s (%s): no traced steps in %q", o.name, v.name, out)
			}
			for _, step := range steps {
				n++
				id := fmt.Sprintf("%s-fault-%d", newID(), n)
				pinsBefore := pinsInUse()
				o.prep(id, v)
				out, code := fre(fp, []string{"FRE_FAILPOINT=" + step}, argsFor(id)...)
				var problems []string
				if code == 0 {
					// A step of the undisturbed run this run skips (a
					// cached import takes another path).
					fre(freBin, nil, "delete", "--force", id)
					table = append(table, row{o.name, v.name, step, "not on this run's path"})
					continue
				}
				if code != -1 {
					problems = append(problems, fmt.Sprintf("not killed (exit %d: %s)", code, strings.TrimSpace(out)))
				}
				if out, code := fre(freBin, nil, "delete", "--force", id); code != 0 {
					problems = append(problems, fmt.Sprintf("delete --force failed (exit %d): %s", code, strings.TrimSpace(out)))
				}
				if leaks := faultLeaks(e, id, pinsBefore); len(leaks) > 0 {
					problems = append(problems, "left "+strings.Join(leaks, ", "))
				}
				outcome := "cleaned"
				if len(problems) > 0 {
					outcome = strings.Join(problems, "; ")
				}
				if outcome != "cleaned" {
					t.Errorf("%s (%s) killed after %q: %s", o.name, v.name, step, outcome)
				}
				table = append(table, row{o.name, v.name, step, outcome})
			}
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "| command | set-up | killed after | outcome |\n| --- | --- | --- | --- |\n")
	for _, r := range table {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.op, r.variant, r.step, r.outcome)
	}
	t.Logf("kill -9 at each step, then delete --force:\n%s", b.String())
	if out := os.Getenv("FRE_FAULT_TABLE"); out != "" {
		os.WriteFile(out, b.Bytes(), 0o644)
	}
}

// containerProcs lists the processes whose cgroup (any hierarchy) is
// container id's: an init cloned by a killed create is in it once its
// set-up is done (before that it dies with its creator, PDEATHSIG).
func containerProcs(id string) (pids []int) {
	stats, _ := filepath.Glob("/proc/[0-9]*/cgroup")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasSuffix(l, "/"+id) || strings.Contains(l, "/"+id+"/") {
				var pid int
				fmt.Sscanf(strings.TrimPrefix(p, "/proc/"), "%d", &pid)
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// faultLeaks lists what of container id is left on the host.
func faultLeaks(e *env, id string, pinsBefore int) []string {
	var leaks []string
	if _, err := os.Lstat(filepath.Join(e.root, id)); err == nil {
		leaks = append(leaks, "state dir")
	}
	cgs, _ := filepath.Glob("/sys/fs/cgroup/*/" + id)
	if v2, _ := filepath.Glob("/sys/fs/cgroup/" + id); len(v2) > 0 && cgroupV2() {
		cgs = append(cgs, v2...)
	}
	if len(cgs) > 0 {
		leaks = append(leaks, fmt.Sprintf("cgroup %v", cgs))
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mi), "\n") {
		if strings.Contains(l, filepath.Join(e.root, id)) {
			leaks = append(leaks, "mount "+strings.Fields(l)[4])
		}
	}
	if n := pinsInUse(); n > pinsBefore {
		leaks = append(leaks, fmt.Sprintf("%d netns pin(s)", n-pinsBefore))
	}
	if refs, _ := filepath.Glob(filepath.Join(os.Getenv("FRE_STORE_ROOT"), "refs", "*", id)); len(refs) > 0 {
		leaks = append(leaks, "store ref")
	}
	if procs := containerProcs(id); len(procs) > 0 {
		for _, p := range procs {
			unix.Kill(p, unix.SIGKILL)
		}
		leaks = append(leaks, fmt.Sprintf("processes %v", procs))
	}
	// What the test found is removed, so one step's leak is not the next's.
	for _, cg := range cgs {
		unix.Rmdir(cg)
	}
	os.RemoveAll(filepath.Join(e.root, id))
	return leaks
}

func cgroupV2() bool {
	_, err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	return err == nil
}

// pinsInUse counts the netns pool's pins handed out.
func pinsInUse() int {
	used, _ := os.ReadDir(filepath.Join(os.Getenv("FRE_NETNS_POOL_DIR"), "used"))
	return len(used)
}
