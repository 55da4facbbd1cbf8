package cgpool

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/fre-runtime/fre/cgroup"
)

// entryOf finds tag's entry for parent in es.
func entryOf(es []Entry, parent, tag string) (Entry, bool) {
	for _, e := range es {
		if e.Parent == parent && e.Tag == tag {
			return e, true
		}
	}
	return Entry{}, false
}

func hostEntries(t *testing.T, p *Pool) []Entry {
	t.Helper()
	es, err := p.Entries()
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// Two pools with state dirs of their own (two --root dirs that each set
// one) fill one parent. When one's state dir is removed, its idle cgroups
// have no owner: the other's Fill sweeps them, and GC drops the
// registration. A cgroup of a tag no one registered is left to GC(true),
// and one with a process in it is never removed.
func TestGoneOwnersAreSwept(t *testing.T) {
	b, parent := openTest(t, 3)
	dirA := filepath.Join(t.TempDir(), "a")
	a, err := Open(Config{StateDir: dirA, Size: 3, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Fill(parent, 3); err != nil {
		t.Fatal(err)
	}
	if err := b.Fill(parent, 3); err != nil {
		t.Fatal(err)
	}
	es := hostEntries(t, b)
	ea, okA := entryOf(es, parent, a.tag)
	eb, okB := entryOf(es, parent, b.tag)
	if !okA || !okB || ea.Idle != 3 || eb.Idle != 3 || ea.State != OwnerLive || ea.Owner != dirA || !eb.Self || ea.Self {
		t.Fatalf("entries = %+v", es)
	}

	if err := os.RemoveAll(dirA); err != nil {
		t.Fatal(err)
	}
	if ea, _ := entryOf(hostEntries(t, b), parent, a.tag); ea.State != OwnerGone || ea.Idle != 3 {
		t.Fatalf("after removing A's state: %+v", ea)
	}
	// B's next fill of the parent sweeps A's cgroups, in every hierarchy.
	if err := b.Fill(parent, 3); err != nil {
		t.Fatal(err)
	}
	for c, names := range children(t, parent) {
		if len(names) != 3 {
			t.Errorf("%s after B's fill: %v, want B's 3", c, names)
		}
	}
	if _, ok := entryOf(hostEntries(t, b), parent, a.tag); ok {
		t.Fatal("A's cgroups still listed")
	}
	res, err := b.GC(false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(res.Owners, a.tag) {
		t.Errorf("GC = %+v, want A's registration dropped", res)
	}
	if _, err := os.Stat(b.ownerFile(a.tag)); !os.IsNotExist(err) {
		t.Errorf("A's registration: %v", err)
	}

	// An older FRE's cgroups (no registration), one of them in use.
	old, busy := path.Join(parent, ".fre-pool-deadbeef-0"), path.Join(parent, ".fre-pool-deadbeef-1")
	for _, cg := range []string{old, busy} {
		m, _ := cgroup.New(cg)
		if err := m.Create(); err != nil {
			t.Fatal(err)
		}
	}
	sleeper := exec.Command("sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
	bm, _ := cgroup.New(busy)
	if err := bm.Add(sleeper.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if e, ok := entryOf(hostEntries(t, b), parent, "deadbeef"); !ok || e.State != OwnerUnknown || e.Idle != 2 {
		t.Fatalf("unknown entry = %+v (%v)", e, ok)
	}
	// GC sweeps the whole host: what it did elsewhere (other tests' gone
	// pools) is not this test's, so only this parent is looked at.
	if res, err := b.GC(false); err != nil {
		t.Fatal(err)
	} else if e, ok := entryOf(hostEntries(t, b), parent, "deadbeef"); !ok || e.Idle != 2 {
		t.Fatalf("GC(false) = %+v: removed an unknown pool's cgroups (%+v)", res, e)
	}
	res, err = b.GC(true)
	if err != nil {
		t.Fatal(err)
	}
	busyListed := false
	for _, d := range res.Busy {
		busyListed = busyListed || strings.HasSuffix(d, busy)
	}
	if e, ok := entryOf(hostEntries(t, b), parent, "deadbeef"); !ok || e.Idle != 1 || !busyListed {
		t.Fatalf("GC(true) = %+v, entry %+v: want the idle one removed and the busy one reported", res, e)
	}
	if pids, err := bm.Pids(); err != nil || len(pids) != 1 || pids[0] != sleeper.Process.Pid {
		t.Fatalf("the busy cgroup's processes: %v, %v", pids, err)
	}
	sleeper.Process.Kill()
	sleeper.Wait()
	if _, err := b.GC(true); err != nil {
		t.Fatal(err)
	}
	if _, ok := entryOf(hostEntries(t, b), parent, "deadbeef"); ok {
		t.Fatal("the unknown pool's cgroups are still there")
	}
	for c, names := range children(t, parent) {
		if len(names) != 3 {
			t.Errorf("%s: %v, want B's 3 only", c, names)
		}
	}

	// B's own drain leaves nothing of it, registration included.
	if _, err := os.Stat(b.ownerFile(b.tag)); err != nil {
		t.Fatalf("B's registration: %v", err)
	}
	if err := b.Drain(""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(b.ownerFile(b.tag)); !os.IsNotExist(err) {
		t.Errorf("B's registration after its drain: %v", err)
	}
}

func TestPoolTag(t *testing.T) {
	for name, want := range map[string]string{
		".fre-pool-0123abcd-4":                   "0123abcd",
		".fre-new-0123abcd-ffee":                 "0123abcd",
		".fre-pool-0123abcd-n" + strconv.Itoa(2): "0123abcd",
		".fre-pool-0123ABCD-4":                   "",
		".fre-pool-0123abc-4":                    "",
		".fre-pool-0123abcd":                     "",
		"fre-pool-0123abcd-4":                    "",
		"container":                              "",
	} {
		got, ok := poolTag(name)
		if got != want || ok != (want != "") {
			t.Errorf("poolTag(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
}
