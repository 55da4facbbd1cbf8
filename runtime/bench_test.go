package runtime

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/fre-runtime/fre/cgroup"
	"github.com/fre-runtime/fre/internal/testutil"
)

// BenchmarkCreateStart is what the shim's Create and Start RPCs cost in
// the runtime library, in a long-lived process (warm caches, no process
// start): runc's default spec for busybox /bin/true with a plain rootfs
// (the shim's rootfs is containerd's mount), state on a tmpfs. ms/op is
// create+start; each phase of Create is reported as its own metric, and
// wait+delete, which is not timed, as delete-ms. Each b.N is 50
// containers (make bench runs -benchtime 1x).
func BenchmarkCreateStart(b *testing.B) { benchCreateStart(b, nil) }

// BenchmarkCreateStartV2 is BenchmarkCreateStart on cgroup v2 with the
// init born in its cgroup (clone3's CLONE_INTO_CGROUP, FRE's default
// there) and moved into it after the clone (what the kernels before 5.7
// get, and what runc does): which one the start path should take.
func BenchmarkCreateStartV2(b *testing.B) {
	if cgroup.Mode() != cgroup.Unified {
		b.Skip("needs a cgroup v2 host (make bench-v2 runs it in a guest)")
	}
	b.Run("clone-into-cgroup", func(b *testing.B) { benchCreateStart(b, nil) })
	b.Run("migrate", func(b *testing.B) {
		was := noCloneIntoCgroup.Swap(true)
		defer noCloneIntoCgroup.Store(was)
		benchCreateStart(b, nil)
	})
	// What a pool of cgroups made ahead could save on v2 (where it
	// cannot rename one into a given path): the container's cgroup is
	// there, empty, before its create (made outside the timing).
	b.Run("precreated", func(b *testing.B) {
		benchCreateStart(b, func(id string) {
			m, err := cgroup.New("/" + id)
			if err == nil {
				err = m.Create()
			}
			if err != nil {
				b.Fatal(err)
			}
		})
	})
}

// benchCreateStart times create+start; before, when set, runs untimed
// ahead of each create with the container's ID (its cgroup is /ID).
func benchCreateStart(b *testing.B, before func(id string)) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	root, err := os.MkdirTemp("/dev/shm", "fre-bench-root-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(root)
	bundle := testutil.BusyboxBundle(b, "", "true")
	testutil.MutateSpec(b, bundle, func(s *specs.Spec) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[AnnotationRootfs] = RootfsPlain
	})
	spec, err := LoadSpec(bundle)
	if err != nil {
		b.Fatal(err)
	}
	r, err := New(root, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	defer func() {
		// The pool keeps idle cgroups by design; a benchmark leaves none.
		if p, err := r.CgroupPool(); err == nil {
			if err := p.Drain(""); err != nil {
				b.Error(err)
			}
		}
	}()
	phases := map[string]time.Duration{}
	var mu sync.Mutex
	r.Trace = func(phase string, d time.Duration) {
		mu.Lock()
		phases[phase] += d
		mu.Unlock()
	}
	WarmUp()
	run := func(id string) (time.Duration, time.Duration) {
		if before != nil {
			before(id)
		}
		t0 := time.Now()
		c, err := r.Create(context.Background(), CreateOpts{ID: id, Bundle: bundle, Spec: spec})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Start(); err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		t1 := time.Now()
		if _, err := c.Wait(); err != nil {
			b.Fatal(err)
		}
		if err := c.Delete(false); err != nil {
			b.Fatal(err)
		}
		return d, time.Since(t1)
	}
	run("warm") // the cgroup pool learns the parent, the caches fill
	clear(phases)
	var total, del time.Duration
	count := b.N * 50
	b.ResetTimer()
	for i := 0; i < count; i++ {
		d, dd := run(fmt.Sprintf("b%d", i))
		total += d
		del += dd
	}
	b.StopTimer()
	n := float64(count)
	b.ReportMetric(float64(total.Microseconds())/1000/n, "ms/op")
	b.ReportMetric(float64(del.Microseconds())/1000/n, "delete-ms")
	names := make([]string, 0, len(phases))
	for k := range phases {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if strings.HasPrefix(k, "delete") {
			continue
		}
		unit := strings.NewReplacer(" ", "_", ":", "", ",", "", "+", "_").Replace(k) + "-ms"
		b.ReportMetric(float64(phases[k].Microseconds())/1000/n, unit)
	}
}
