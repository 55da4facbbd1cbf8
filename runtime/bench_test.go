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
func BenchmarkCreateStart(b *testing.B) { benchCreateStart(b, Options{}) }

// BenchmarkCreateStartV2 is BenchmarkCreateStart on cgroup v2, where the
// pool cannot rename: the cgroup made by create (mkdir, pool off) with
// the init born in it (clone3's CLONE_INTO_CGROUP, FRE's default there)
// or moved into it after the clone (what kernels before 5.7 get, and
// what runc does), and one of the named pool's (pool on: the spec has no
// cgroupsPath, so FRE names the cgroup and takes one made ahead).
func BenchmarkCreateStartV2(b *testing.B) {
	if cgroup.Mode() != cgroup.Unified {
		b.Skip("needs a cgroup v2 host (make bench-v2 runs it in a guest)")
	}
	off, on := false, true
	b.Run("mkdir", func(b *testing.B) { benchCreateStart(b, Options{CgroupPool: &off}) })
	b.Run("mkdir-migrate", func(b *testing.B) {
		was := noCloneIntoCgroup.Swap(true)
		defer noCloneIntoCgroup.Store(was)
		benchCreateStart(b, Options{CgroupPool: &off})
	})
	b.Run("named-pool", func(b *testing.B) { benchCreateStart(b, Options{CgroupPool: &on}) })
}

// benchCreateStart times create+start with a runtime of opts.
func benchCreateStart(b *testing.B, opts Options) {
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
	r, err := New(root, opts)
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
