package cgpool

// Benchmarks reproducing figure 2 of the research FRE comes from: the
// latency of making a container's cgroup by creating it (mkdir in every
// hierarchy) against claiming an idle one from the pool (a rename in
// every hierarchy), with 1 to 1024 made at once. Each round starts `c`
// goroutines behind a barrier; every operation's latency is recorded and
// the benchmark reports ms/op (mean), p50-ms and p99-ms over all rounds
// (at least minSamples operations in minRounds rounds per b.N).
// Clean-up between rounds (destroy, release) is not timed.
//
//	go test -run '^$' -bench . -benchtime 5x ./cgpool

import (
	"fmt"
	"os"
	"path"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fre-runtime/fre/cgroup"
)

var benchConcurrency = []int{1, 16, 64, 256, 1024}

func BenchmarkCgroupCreate(b *testing.B) {
	for _, c := range benchConcurrency {
		b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) {
			parent := benchParent(b)
			ms := make([]cgroup.Manager, c)
			benchRounds(b, c, nil, func(i int) error {
				m, err := cgroup.New(path.Join(parent, fmt.Sprint("ctr", i)))
				if err != nil {
					return err
				}
				ms[i] = m
				return m.Create()
			}, func(i int) error { return ms[i].Destroy() })
		})
	}
}

func BenchmarkCgroupPoolClaim(b *testing.B) {
	if cgroup.Mode() == cgroup.Unified {
		// cgroup v2: no rename; the claim is the named pool's (the
		// cgroups FRE names itself), figure 2's pool line on v2.
		benchNamedClaim(b)
		return
	}
	for _, c := range benchConcurrency {
		b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) {
			p, parent := openTest(b, c)
			ms := make([]cgroup.Manager, c)
			benchRounds(b, c, func() error { return p.Fill(parent, c) }, func(i int) error {
				m, hit, err := p.Claim(path.Join(parent, fmt.Sprint("ctr", i)))
				if err == nil && !hit {
					err = fmt.Errorf("claim %d missed", i)
				}
				ms[i] = m
				return err
			}, func(i int) error { return p.Release(ms[i]) })
		})
	}
}

func benchNamedClaim(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: creates cgroups")
	}
	for _, c := range benchConcurrency {
		b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) {
			p, err := Open(Config{StateDir: b.TempDir(), Size: c, Enabled: true})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				if err := p.Drain(""); err != nil {
					b.Error(err)
				}
				p.Close()
			})
			ms := make([]cgroup.Manager, c)
			benchRounds(b, c, func() error { return p.Fill("", c) }, func(i int) error {
				m, _, err := p.ClaimNamed()
				if err == nil && m == nil {
					err = fmt.Errorf("claim %d: pool full", i)
				}
				ms[i] = m
				return err
			}, func(i int) error { return p.Release(ms[i]) })
		})
	}
}

// benchParent makes a fresh parent cgroup on any layout (the create
// figure is drawn on cgroup v2 too; claims need v1's rename) and removes
// it, with everything below it, at cleanup.
func benchParent(b *testing.B) string {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root: creates cgroups")
	}
	parent := testParent()
	top, err := cgroup.New(parent)
	if err != nil {
		b.Fatal(err)
	}
	if err := top.Create(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		top.Kill(syscall.SIGKILL)
		top.WaitEmpty(5 * time.Second)
		if err := top.Destroy(); err != nil {
			b.Errorf("cleanup %s: %v", parent, err)
		}
	})
	return parent
}

// minSamples and minRounds: per b.N a benchmark times at least
// minSamples operations in at least minRounds rounds. One operation alone
// (c=1 with -benchtime 1x) is not a measurement, and one round at high
// concurrency is luck: a round that starts while the kernel still
// retires the previous round's cgroups (deferred css work under the
// global cgroup_mutex) is slow as a whole.
const (
	minSamples = 64
	minRounds  = 3
)

func benchRounds(b *testing.B, c int, setup func() error, op, cleanup func(i int) error) {
	rounds := b.N * max(minRounds, minSamples/c)
	lat := make([]time.Duration, 0, rounds*c)
	b.ResetTimer()
	for r := 0; r < rounds; r++ {
		b.StopTimer()
		if setup != nil {
			if err := setup(); err != nil {
				b.Fatal(err)
			}
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		d := make([]time.Duration, c)
		errs := make([]error, c)
		for i := 0; i < c; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				t0 := time.Now()
				errs[i] = op(i)
				d[i] = time.Since(t0)
			}(i)
		}
		b.StartTimer()
		close(start)
		wg.Wait()
		b.StopTimer()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		lat = append(lat, d...)
		var cw sync.WaitGroup
		for i := 0; i < c; i++ {
			cw.Add(1)
			go func(i int) {
				defer cw.Done()
				if err := cleanup(i); err != nil {
					b.Error(err)
				}
			}(i)
		}
		cw.Wait()
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	var sum time.Duration
	for _, l := range lat {
		sum += l
	}
	msf := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(msf(sum/time.Duration(len(lat))), "ms/op")
	b.ReportMetric(msf(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(msf(lat[(len(lat)*99)/100]), "p99-ms")
}
