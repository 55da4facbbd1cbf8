package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/fre-runtime/fre/cgpool"
	"github.com/fre-runtime/fre/internal/testutil"
	"github.com/fre-runtime/fre/shim/task"
)

// The soak: FRE_SOAK_CYCLES fre-runc lifecycles of mixed kinds and
// FRE_SOAK_SHIM_CYCLES through the shim under containerd (the Go client,
// grouped and not), counting at ten checkpoints what each could leak:
// mounts, netns pins, cgroups, container processes, state entries, store
// objects, idle pool cgroups, and the grouped shim's RSS and fds. After
// the first checkpoint (pools and caches filled) nothing may grow: idle
// pool cgroups stay within the pool's size, the rest at or below the
// first checkpoint's count. `make soak` runs 10,000 + 2,000 and writes
// results/soak.csv (FRE_SOAK_RESULTS); plain `make test` a short form.

func soakCount(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// soakSample is one checkpoint.
type soakSample struct {
	part      string
	cycle     int
	elapsed   time.Duration
	perCycle  time.Duration // mean over the cycles since the last checkpoint
	mounts    int           // mount points under the soak's directories
	pins      int           // nsfs mounts among them (netns pins)
	cgroups   int           // cgroups named by the soak, in every hierarchy
	poolIdle  int           // idle cgroups of the soak's pool (bounded)
	procs     int           // processes in those cgroups
	state     int           // entries of the state root
	objects   int           // store objects
	shimRSSKB int           // the grouped shim (shim part)
	shimFDs   int
}

func (s soakSample) counts() map[string]int {
	return map[string]int{"mounts": s.mounts, "netns pins": s.pins, "cgroups": s.cgroups, "processes": s.procs,
		"state entries": s.state, "store objects": s.objects, "shim fds": s.shimFDs}
}

// soakProbe counts what the soak could leave, by names and paths that are
// its own (the host runs other things).
type soakProbe struct {
	prefix string   // container IDs and cgroup names
	dirs   []string // mounts under these count
	root   string   // a state root
	store  string
	pool   string // the cgroup pool's state dir
}

func (p soakProbe) sample() soakSample {
	var s soakSample
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fl := strings.Fields(sc.Text())
			if len(fl) < 5 {
				continue
			}
			for _, d := range p.dirs {
				if fl[4] == d || strings.HasPrefix(fl[4], d+"/") {
					s.mounts++
					if strings.Contains(sc.Text(), " - nsfs ") {
						s.pins++
					}
					break
				}
			}
		}
		f.Close()
	}
	sum := sha256Hex(p.pool)
	idle := ".fre-pool-" + sum + "-"
	cgDirs := map[string]bool{}
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		roots = []string{"/sys/fs/cgroup"}
	}
	for _, r := range roots {
		filepath.WalkDir(r, func(path string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			n := d.Name()
			switch {
			case strings.HasPrefix(n, p.prefix):
				s.cgroups++
				cgDirs[path] = true
			case strings.HasPrefix(n, idle) && r == roots[0]:
				s.poolIdle++
			}
			return nil
		})
	}
	for d := range cgDirs {
		for _, f := range []string{"cgroup.procs", "tasks"} {
			if b, err := os.ReadFile(filepath.Join(d, f)); err == nil {
				s.procs += len(strings.Fields(string(b)))
				break
			}
		}
	}
	if p.root != "" {
		if ents, err := os.ReadDir(p.root); err == nil {
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), p.prefix) {
					s.state++
				}
			}
		}
	}
	if p.store != "" {
		filepath.WalkDir(filepath.Join(p.store, "objects"), func(_ string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				s.objects++
			}
			return nil
		})
	}
	return s
}

// checkGrowth fails on anything above the first checkpoint's count, and
// idle pool cgroups above the bound.
func checkGrowth(t *testing.T, samples []soakSample, poolBound int) {
	t.Helper()
	if len(samples) < 2 {
		return
	}
	first := samples[0].counts()
	for _, s := range samples[1:] {
		for k, v := range s.counts() {
			if v > first[k] {
				t.Errorf("%s, cycle %d: %s grew from %d to %d", s.part, s.cycle, k, first[k], v)
			}
		}
		if s.poolIdle > poolBound {
			t.Errorf("%s, cycle %d: %d idle pool cgroups under /, above the pool's size %d", s.part, s.cycle, s.poolIdle, poolBound)
		}
	}
}

func writeSoakCSV(t *testing.T, path string, samples []soakSample) {
	t.Helper()
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write([]string{"part", "cycle", "elapsed_s", "per_cycle_ms", "mounts", "netns_pins", "cgroups", "pool_idle", "processes",
		"state_entries", "store_objects", "shim_rss_kb", "shim_fds"})
	for _, s := range samples {
		w.Write([]string{s.part, strconv.Itoa(s.cycle), fmt.Sprintf("%.1f", s.elapsed.Seconds()),
			fmt.Sprintf("%.2f", float64(s.perCycle.Microseconds())/1000), strconv.Itoa(s.mounts), strconv.Itoa(s.pins),
			strconv.Itoa(s.cgroups), strconv.Itoa(s.poolIdle), strconv.Itoa(s.procs), strconv.Itoa(s.state),
			strconv.Itoa(s.objects), strconv.Itoa(s.shimRSSKB), strconv.Itoa(s.shimFDs)})
	}
	w.Flush()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSoak(t *testing.T) {
	c := setup(t)
	n := soakCount("FRE_SOAK_CYCLES", 160)
	m := soakCount("FRE_SOAK_SHIM_CYCLES", 40)
	var samples []soakSample
	t.Run("fre-runc", func(t *testing.T) { samples = append(samples, soakRunc(t, n)...) })
	t.Run("shim", func(t *testing.T) { samples = append(samples, soakShim(t, c, m)...) })
	for _, s := range samples {
		t.Logf("%-8s %6d cycles %7.1fs %6.2f ms/cycle  mounts %d pins %d cgroups %d idle %d procs %d state %d objects %d shim %d kB %d fds",
			s.part, s.cycle, s.elapsed.Seconds(), float64(s.perCycle.Microseconds())/1000, s.mounts, s.pins, s.cgroups,
			s.poolIdle, s.procs, s.state, s.objects, s.shimRSSKB, s.shimFDs)
	}
	if out := os.Getenv("FRE_SOAK_RESULTS"); out != "" {
		writeSoakCSV(t, out, samples)
	}
}

// soakRunc runs n fre-runc lifecycles, eight kinds in turn.
func soakRunc(t *testing.T, n int) []soakSample {
	bin := freRuncBin(t)
	dir := t.TempDir()
	root, store := filepath.Join(dir, "state"), filepath.Join(dir, "store")
	prefix := fmt.Sprintf("fre-soak-%d-", os.Getpid())
	probe := soakProbe{prefix: prefix, dirs: []string{dir, os.Getenv("FRE_NETNS_POOL_DIR")}, root: root, store: store,
		pool: os.Getenv("FRE_CGPOOL_DIR")}
	short := testutil.BusyboxBundle(t, "", "true")
	long := testutil.BusyboxBundle(t, "", "sleep", "600")
	shared := testutil.BusyboxBundle(t, "", "true")
	testutil.MutateSpec(t, shared, func(s *specs.Spec) {
		s.Annotations = map[string]string{"run.fre.rootfs": "shared"}
	})
	noPool := filepath.Join(dir, "nopool.json")
	if err := os.WriteFile(noPool, []byte(`{"cgroupPool": false}`), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "FRE_STORE_ROOT="+store)
	// Output to a file, not a pipe: a detached container keeps the stdio
	// it was given open, and a pipe's reader would wait for it.
	outFile := filepath.Join(dir, "out")
	fre := func(args ...string) error {
		f, err := os.Create(outFile)
		if err != nil {
			return err
		}
		defer f.Close()
		cmd := exec.Command(bin, append([]string{"--root", root}, args...)...)
		cmd.Env, cmd.Stdout, cmd.Stderr = env, f, f
		if err := cmd.Run(); err != nil {
			out, _ := os.ReadFile(outFile)
			return fmt.Errorf("fre-runc %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	t.Cleanup(func() {
		cmd := exec.Command(bin, "--root", root, "list", "-q")
		cmd.Env = env
		out, _ := cmd.Output()
		for _, id := range strings.Fields(string(out)) {
			fre("delete", "--force", id)
		}
		fre("pool", "drain")
	})
	stopped := func(id string) bool {
		cmd := exec.Command(bin, "--root", root, "state", id)
		cmd.Env = env
		out, err := cmd.Output()
		return err == nil && bytes.Contains(out, []byte(`"stopped"`))
	}
	cycle := func(i int) error {
		id := prefix + strconv.Itoa(i)
		switch i % 8 {
		case 0:
			return fre("run", "--bundle", short, id)
		case 1, 3:
			if err := fre("run", "--detach", "--bundle", long, id); err != nil {
				return err
			}
			if i%8 == 3 {
				if err := fre("exec", id, "true"); err != nil {
					return err
				}
			}
			if err := fre("kill", id, "KILL"); err != nil {
				return err
			}
			if !pollFor(10*time.Second, func() bool { return stopped(id) }) {
				return fmt.Errorf("%s: not stopped 10 s after SIGKILL", id)
			}
			return fre("delete", id)
		case 2:
			if err := fre("create", "--bundle", long, id); err != nil {
				return err
			}
			return fre("delete", "--force", id)
		case 4:
			return fre("--netns-policy", "pool", "run", "--bundle", short, id)
		case 5:
			return fre("--netns-policy", "new", "run", "--bundle", short, id)
		case 6:
			return fre("run", "--bundle", shared, id)
		default:
			return fre("--config", noPool, "run", "--bundle", short, id)
		}
	}
	return soakLoop(t, "fre-runc", n, probe, cycle, func() (int, int) { return 0, 0 }, cgpool.DefaultSize)
}

// soakLoop runs cycle n times, sampling probe (and shim) at ten
// checkpoints, and checks growth.
func soakLoop(t *testing.T, part string, n int, probe soakProbe, cycle func(int) error, shim func() (rss, fds int), poolBound int) []soakSample {
	t.Helper()
	every := max(n/10, 1)
	var samples []soakSample
	start, last := time.Now(), time.Now()
	for i := 0; i < n; i++ {
		if err := cycle(i); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if (i+1)%every == 0 || i == n-1 {
			s := probe.sample()
			s.part, s.cycle, s.elapsed = part, i+1, time.Since(start)
			done := (i + 1) % every
			if done == 0 {
				done = every
			}
			s.perCycle = time.Since(last) / time.Duration(done)
			s.shimRSSKB, s.shimFDs = shim()
			samples = append(samples, s)
			last = time.Now()
		}
	}
	checkGrowth(t, samples, poolBound)
	return samples
}

// soakShim runs m containers through containerd's Go client: even cycles
// in one grouped shim (kept alive by an anchor container, so its RSS and
// fds can be followed), odd ones in a shim each.
func soakShim(t *testing.T, c *containerd, m int) []soakSample {
	cl, _ := c.goClient(t)
	// Not goClient's context: it ends after two minutes, a long soak does not.
	ctx := context.Background()
	prefix := fmt.Sprintf("fre-soak-shim-%d-", os.Getpid())
	img, err := cl.GetImage(ctx, imageRef)
	if err != nil {
		t.Fatal(err)
	}
	group := oci.WithAnnotations(map[string]string{task.AnnotationGroup: prefix + "group"})
	anchor := newClientContainer(t, cl, ctx, prefix+"anchor", oci.WithProcessArgs("sleep", "3600"), group)
	newTask(t, ctx, anchor, cio.NullIO, true)
	// The group's shim was started for its first container, the anchor:
	// its command line names it.
	pid := 0
	for _, p := range c.shimPids() {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p)); err == nil && bytes.Contains(b, []byte(prefix+"anchor")) {
			pid = p
		}
	}
	probe := soakProbe{prefix: prefix, dirs: []string{c.dir, "/run/containerd/io.containerd.runtime.v2.task/" + namespace}}
	cycle := func(i int) error {
		id := prefix + strconv.Itoa(i)
		opts := []oci.SpecOpts{oci.WithImageConfig(img), oci.WithProcessArgs("true")}
		if i%2 == 0 {
			opts = append(opts, group)
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		ctr, err := cl.NewContainer(cctx, id, client.WithNewSnapshot(id, img), client.WithNewSpec(opts...), client.WithRuntime(runtimeName, nil))
		if err != nil {
			return err
		}
		defer ctr.Delete(cctx, client.WithSnapshotCleanup)
		tk, err := ctr.NewTask(cctx, cio.NullIO)
		if err != nil {
			return err
		}
		st, err := tk.Wait(cctx)
		if err != nil {
			return err
		}
		if err := tk.Start(cctx); err != nil {
			return err
		}
		select {
		case es := <-st:
			if code, _, err := es.Result(); err != nil || code != 0 {
				return fmt.Errorf("%s: exit %d, %v", id, code, err)
			}
		case <-cctx.Done():
			return fmt.Errorf("%s: no exit: %v", id, cctx.Err())
		}
		_, err = tk.Delete(cctx)
		return err
	}
	shim := func() (int, int) {
		if pid == 0 {
			return 0, 0
		}
		// The fewest of a few looks: an fd an operation still has open
		// as the checkpoint comes (seen once with the race-built shim) is
		// not one the shim keeps.
		fds := procFDs(pid)
		for range 4 {
			time.Sleep(50 * time.Millisecond)
			fds = min(fds, procFDs(pid))
		}
		return procRSSKB(pid), fds
	}
	samples := soakLoop(t, "shim", m, probe, cycle, shim, cgpool.DefaultSize)
	if pid == 0 {
		t.Log("the grouped shim's pid was not found: its RSS and fds are not followed")
	} else if first, last := samples[0].shimRSSKB, samples[len(samples)-1].shimRSSKB; last > first+first/4+4096 {
		t.Errorf("the grouped shim's RSS grew from %d kB to %d kB", first, last)
	}
	return samples
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:4])
}

func procRSSKB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	return 0
}

func procFDs(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	return len(ents)
}
