package cgpool

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/fre-runtime/fre/cgroup"
)

func openNamed(t *testing.T, size int) *Pool {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates cgroups")
	}
	if cgroup.Mode() != cgroup.Unified {
		t.Skip("the named pool is cgroup v2's (make test-v2 runs it in a guest)")
	}
	p, err := Open(Config{StateDir: t.TempDir(), Size: size, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if !p.NamesCgroups() {
		t.Fatal("NamesCgroups false on cgroup v2")
	}
	t.Cleanup(func() {
		if err := p.Drain(""); err != nil {
			t.Error(err)
		}
		for k := 0; k < size; k++ {
			if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", p.namedSlot(k))); err == nil {
				t.Errorf("%s left after drain", p.namedSlot(k))
			}
		}
		p.Close()
	})
	return p
}

// Claims fill the slots (misses), a full pool says so, a release makes a
// slot idle and reset, and the next claim takes it (a hit).
func TestNamedPool(t *testing.T) {
	p := openNamed(t, 2)
	a, ka, err := p.ClaimNamed()
	if err != nil || a == nil {
		t.Fatalf("claim: %v %v", a, err)
	}
	b, kb, err := p.ClaimNamed()
	if err != nil || b == nil || kb == ka {
		t.Fatalf("second claim: %v slot %d (first %d), %v", b, kb, ka, err)
	}
	if c, k, err := p.ClaimNamed(); c != nil || k != -1 || err != nil {
		t.Fatalf("claim from a full pool: %v %d %v", c, k, err)
	}
	limit := int64(33)
	if err := a.Set(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &limit}}); err != nil {
		t.Fatal(err)
	}
	if err := p.Release(a); err != nil {
		t.Fatal(err)
	}
	if ps := p.namedStatus(); ps.Idle != 1 || ps.InUse != 1 {
		t.Fatalf("status after release: %+v", ps)
	}
	c, kc, err := p.ClaimNamed()
	if err != nil || c == nil || kc != ka {
		t.Fatalf("claim after release: %v slot %d, want %d: %v", c, kc, ka, err)
	}
	data, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", c.Path(), "pids.max"))
	if err != nil || strings.TrimSpace(string(data)) != "max" {
		t.Fatalf("pids.max of a reused cgroup: %q %v", data, err)
	}
	st, _ := p.Status()
	if st.Hits != 1 || st.Misses != 2 {
		t.Errorf("hits %d misses %d, want 1 and 2", st.Hits, st.Misses)
	}
	for _, m := range []cgroup.Manager{b, c} {
		if err := p.Release(m); err != nil {
			t.Fatal(err)
		}
	}
	// A fill tops the idle slots up; a fill elsewhere is refused.
	if err := p.Fill("", 2); err != nil {
		t.Fatal(err)
	}
	if ps := p.namedStatus(); ps.Idle != 2 || ps.InUse != 0 {
		t.Fatalf("status after fill: %+v", ps)
	}
	if err := p.Fill("/elsewhere", 1); err == nil {
		t.Fatal("fill of another parent on v2 succeeded")
	}
}

// Concurrent claimers never share a slot.
func TestNamedPoolConcurrent(t *testing.T) {
	p := openNamed(t, 4)
	var mu sync.Mutex
	held := map[int]bool{}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				m, k, err := p.ClaimNamed()
				if err != nil {
					t.Error(err)
					return
				}
				if m == nil {
					continue // full
				}
				mu.Lock()
				if held[k] {
					t.Errorf("slot %d handed out twice", k)
				}
				held[k] = true
				mu.Unlock()
				mu.Lock()
				held[k] = false
				mu.Unlock()
				if err := p.Release(m); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if ps := p.namedStatus(); ps.InUse != 0 {
		t.Fatalf("slots held after every release: %+v", ps)
	}
}
