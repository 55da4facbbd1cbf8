package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/fre-runtime/fre/cgpool"
	"github.com/fre-runtime/fre/cgroup"
	"github.com/fre-runtime/fre/internal/testutil"
)

func TestPoolCommand(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates cgroups")
	}
	if md := cgroup.Mode(); md != cgroup.Legacy && md != cgroup.Hybrid {
		t.Skipf("the pool needs cgroup v1; host is %v", md)
	}
	root := t.TempDir()
	t.Setenv("FRE_CGPOOL_DIR", filepath.Join(root, "cgpool")) // a pool of its own: it counts parents
	parent := "/fre-test-poolcli-" + time.Now().Format("150405.000000")
	t.Cleanup(func() {
		if m, err := cgroup.New(parent); err == nil {
			m.Destroy()
		}
	})
	g := &globalOptions{Root: root}
	pool := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		fs := flag.NewFlagSet("pool", flag.ContinueOnError)
		o := &poolOptions{}
		poolFlags(fs, o)
		if err := fs.Parse(args); err != nil {
			return "", err
		}
		err := runPool(g, o, fs.Args(), &out, &errb)
		return out.String() + errb.String(), err
	}
	var out, errb bytes.Buffer
	if rc := run([]string{"--root", root, "pool", "fill", "--parent", parent, "--size", "2"}, &out, &errb); rc != 0 {
		t.Fatalf("pool fill: rc %d: %s", rc, errb.String())
	}
	// Status flags before or after the subcommand.
	js, err := pool("status", "--format", "json")
	if err != nil {
		t.Fatalf("pool status: %v", err)
	}
	var st cgpool.Status
	if err := json.Unmarshal([]byte(js), &st); err != nil {
		t.Fatalf("status JSON: %v\n%s", err, js)
	}
	if len(st.Parents) != 1 || st.Parents[0].Parent != parent || st.Parents[0].Idle != 2 || !st.Enabled {
		t.Errorf("status = %+v", st)
	}
	if tab, err := pool("--format", "table", "status"); err != nil || !strings.Contains(tab, "PARENT") || !strings.Contains(tab, parent+"  2") {
		t.Errorf("table status: %v\n%s", err, tab)
	}
	if rc := run([]string{"--root", root, "pool", "drain", "--parent", parent}, &out, &errb); rc != 0 {
		t.Fatalf("pool drain: rc %d: %s", rc, errb.String())
	}
	if _, err := pool("nope"); err == nil {
		t.Error("unknown subcommand succeeded")
	}
}

// On cgroup v2 the pool hands out cgroups of its own naming to containers
// without a cgroupsPath (no rename there): `pool fill` makes them, `run`
// gets one (its init is in /.fre-pool-<tag>-n<k>), delete gives it back
// reset, a container with a cgroupsPath gets its own, `pool drain`
// removes them, and a fill for another parent says why not.
func TestPoolCommandV2(t *testing.T) {
	if cgroup.Mode() != cgroup.Unified {
		t.Skip("needs a cgroup v2 host (make test-v2 runs it in a guest)")
	}
	// Off by default on v2 (runtime's cgroupPoolOn): turned on here.
	cfg := filepath.Join(t.TempDir(), "pool.json")
	if err := os.WriteFile(cfg, []byte(`{"cgroupPool": true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "--config", cfg)
	e.must("pool", "fill", "--size", "2")
	status := func() cgpool.ParentStatus {
		t.Helper()
		var st cgpool.Status
		if err := json.Unmarshal([]byte(e.must("pool", "status", "--format", "json")), &st); err != nil {
			t.Fatal(err)
		}
		if !st.Enabled || len(st.Parents) != 1 || !st.Parents[0].Named || st.Parents[0].Parent != "/" {
			t.Fatalf("status = %+v", st)
		}
		return st.Parents[0]
	}
	if ps := status(); ps.Idle != 2 || ps.InUse != 0 {
		t.Fatalf("after fill: %+v", ps)
	}
	b := bundle(t, "sh", "-c", "cat /proc/self/cgroup; echo 42 > /dev/null")
	out := e.must("run", "--bundle", b, newID())
	cg := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(out), "0::"))
	if !strings.HasPrefix(cg, "/.fre-pool-") {
		t.Fatalf("container's cgroup %q, want one of the pool's", out)
	}
	if ps := status(); ps.Idle != 2 || ps.InUse != 0 {
		t.Fatalf("after run: %+v", ps)
	}
	// Limits of one container are gone for the next.
	lim := bundle(t, "sleep", "60")
	testutil.MutateSpec(t, lim, func(s *specs.Spec) {
		l := int64(77)
		s.Linux.Resources.Pids = &specs.LinuxPids{Limit: &l}
	})
	id := newID()
	e.must("create", "--bundle", lim, id)
	self, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", e.state(id).Pid))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("/sys/fs/cgroup", strings.TrimPrefix(strings.TrimSpace(string(self)), "0::"))
	if !strings.Contains(dir, "/.fre-pool-") {
		t.Fatalf("created container's cgroup %s, want one of the pool's", dir)
	}
	if got := readTrim(t, filepath.Join(dir, "pids.max")); got != "77" {
		t.Fatalf("pids.max = %q, want 77", got)
	}
	e.must("delete", "--force", id)
	if got := readTrim(t, filepath.Join(dir, "pids.max")); got != "max" {
		t.Fatalf("pids.max of the released cgroup = %q, want max", got)
	}
	// A cgroupsPath is the container's own.
	own := bundle(t, "cat", "/proc/self/cgroup")
	ownID := newID()
	testutil.MutateSpec(t, own, func(s *specs.Spec) { s.Linux.CgroupsPath = "/" + ownID })
	if out := e.must("run", "--bundle", own, ownID); strings.TrimSpace(out) != "0::/"+ownID {
		t.Fatalf("with cgroupsPath: %q", out)
	}
	if _, errOut, code := e.run(nil, "pool", "fill", "--parent", "/elsewhere"); code == 0 || !strings.Contains(errOut, "cgroup v2 pools only") {
		t.Fatalf("fill --parent /elsewhere: exit %d: %s", code, errOut)
	}
	e.must("pool", "drain")
	if ps := status(); ps.Idle != 0 || ps.InUse != 0 {
		t.Fatalf("after drain: %+v", ps)
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", cg)); err == nil {
		t.Fatalf("%s left after drain", cg)
	}
}

func readTrim(t *testing.T, f string) string {
	t.Helper()
	data, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

// poolTagOf is the tag of the pool whose state is dir.
func poolTagOf(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return hex.EncodeToString(sum[:4])
}

func poolStatus(t *testing.T, e *env) cgpool.Status {
	t.Helper()
	var st cgpool.Status
	if err := json.Unmarshal([]byte(e.must("pool", "status", "--format", "json")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func hostEntry(st cgpool.Status, parent, tag string) (cgpool.Entry, bool) {
	for _, e := range st.Host {
		if e.Parent == parent && e.Tag == tag {
			return e, true
		}
	}
	return cgpool.Entry{}, false
}

// Every --root shares one pool by default (its size bounds the idle
// cgroups of a parent, however many roots there are); a pool with a
// directory of its own whose directory goes is shown gone and removed by
// `pool gc`, in every hierarchy.
func TestPoolOwnersAcrossRoots(t *testing.T) {
	needRoot(t)
	if md := cgroup.Mode(); md != cgroup.Legacy && md != cgroup.Hybrid {
		t.Skipf("the pool needs cgroup v1; host is %v", md)
	}
	shared := filepath.Join(t.TempDir(), "host-pool")
	t.Setenv("FRE_CGPOOL_DIR", shared) // stands for the host-wide default
	const size = 3
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`{"cgroupPoolSize": %d}`, size)), 0o644); err != nil {
		t.Fatal(err)
	}
	a := newEnv(t, "--config", cfg)
	b := *a
	b.root = a.root + "-b"
	b.args = []string{"--root", b.root, "--config", cfg}
	t.Cleanup(func() { os.RemoveAll(b.root) })
	bun := bundle(t, "true")
	for i := 0; i < 2*size; i++ {
		for _, e := range []*env{a, &b} {
			e.must("run", "--bundle", bun, newID())
		}
	}
	tag := poolTagOf(shared)
	for _, e := range []*env{a, &b} {
		st := poolStatus(t, e)
		ent, ok := hostEntry(st, "/", tag)
		if !ok || !ent.Self || ent.State != cgpool.OwnerLive || ent.Owner != shared || ent.Idle < 1 || ent.Idle > size {
			t.Fatalf("--root %s: the shared pool under / = %+v (%v), want 1..%d idle", e.root, ent, ok, size)
		}
	}

	// A root whose pool is its own (cgroupPoolDir), removed with it.
	c := *a
	c.root = a.root + "-c"
	own := filepath.Join(c.root, "cgpool")
	ccfg := filepath.Join(t.TempDir(), "own.json")
	if err := os.WriteFile(ccfg, []byte(fmt.Sprintf(`{"cgroupPoolDir": %q}`, own)), 0o644); err != nil {
		t.Fatal(err)
	}
	c.args = []string{"--root", c.root, "--config", ccfg}
	t.Cleanup(func() { c.run(nil, "pool", "drain"); os.RemoveAll(c.root) })
	c.must("run", "--bundle", bun, newID())
	ctag := poolTagOf(own)
	if ent, ok := hostEntry(poolStatus(t, a), "/", ctag); !ok || ent.State != cgpool.OwnerLive || ent.Owner != own || ent.Idle != 1 {
		t.Fatalf("the own pool's entry seen from another root: %+v (%v)", ent, ok)
	}
	if err := os.RemoveAll(c.root); err != nil {
		t.Fatal(err)
	}
	st := poolStatus(t, a)
	if ent, ok := hostEntry(st, "/", ctag); !ok || ent.State != cgpool.OwnerGone {
		t.Fatalf("after its root went: %+v (%v)", ent, ok)
	}
	tab := a.must("pool", "status")
	if !strings.Contains(tab, ctag) || !strings.Contains(tab, "gone") || !strings.Contains(tab, own) {
		t.Errorf("table status does not show the gone pool:\n%s", tab)
	}
	if out := a.must("pool", "gc"); !strings.Contains(out, "removed 1 ") {
		t.Errorf("pool gc: %s", out)
	}
	if _, ok := hostEntry(poolStatus(t, a), "/", ctag); ok {
		t.Fatal("the gone pool's cgroup is still listed after gc")
	}
	left, _ := filepath.Glob("/sys/fs/cgroup/*/.fre-*-" + ctag + "-*")
	more, _ := filepath.Glob("/sys/fs/cgroup/.fre-*-" + ctag + "-*")
	if left = append(left, more...); len(left) > 0 {
		t.Errorf("left after gc: %v", left)
	}
	// The shared pool is untouched.
	if ent, ok := hostEntry(poolStatus(t, a), "/", tag); !ok || ent.Idle < 1 {
		t.Errorf("the shared pool after gc: %+v (%v)", ent, ok)
	}
}
