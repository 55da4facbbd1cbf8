package main

// The shim scenario (issue 6): containerd-shim-fre-v1 against containerd's
// own runc shim (io.containerd.runc.v2, driving Debian's runc) on one
// private containerd and one image, in one run:
//
//   (a) `ctr run --rm IMAGE ID /bin/true` latency, interleaved;
//   (b) shim memory: the PSS of every shim process serving K detached
//       containers, per container, in steady state (sampled over half a
//       minute after they settle; the fre containers share one
//       run.fre.group, so one fre shim serves them; runc's shim runs one
//       per container, as it does);
//   (c) the fre shim's own Create and Start RPC durations, which it writes
//       when FRE_SHIM_TIMING_LOG is set (shim/task/timing.go).

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/internal/testutil"
)

var shimOpts struct {
	n, containers, warmup int
}

func init() {
	flag.IntVar(&shimOpts.n, "shim-n", 30, "ctr run --rm runs per shim (shim)")
	flag.IntVar(&shimOpts.containers, "shim-containers", 20, "detached containers per shim for the memory figure (shim)")
	flag.IntVar(&shimOpts.warmup, "shim-warmup", 2, "untimed ctr runs per shim first (shim)")
}

const (
	ctdVersion     = "v2.4.2"
	shimNS         = "frebench-shim" // containerd namespace; also the cgroup parent ctr uses
	shimImage      = "docker.io/library/busybox-frebench:latest"
	shimGroup      = "frebench"
	freShimRuntime = "io.containerd.fre.v1"
	runcRuntime    = "io.containerd.runc.v2"
	freShimBin     = "containerd-shim-fre-v1"
	runcShimBin    = "containerd-shim-runc-v2"
	shimTimingEnv  = "FRE_SHIM_TIMING_LOG" // shim/task.TimingLogEnv
)

// ctd is the scenario's private containerd.
type ctd struct {
	dir, sock, binDir, path string
	// run holds containerd's state dir and both runtimes' roots, on a
	// tmpfs as /run is on a usual host (here /run is on the disk).
	run, freOptions string
	timing          string
	cmd             *exec.Cmd
	exited          chan struct{}
	log             *os.File
}

func shimScenario(e *env) error {
	n, k := shimOpts.n, shimOpts.containers
	fmt.Printf("\n== shim: containerd-shim-fre-v1 vs containerd-shim-runc-v2 (runc %s) on one private containerd %s\n", runcVersion(), ctdVersion)
	binDir, err := filepath.Abs(e.opts.binDir)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(binDir, freShimBin)); err != nil {
		return fmt.Errorf("shim: %s missing in %s (make build)", freShimBin, binDir)
	}
	ctdBin, err := containerdBins(binDir)
	if err != nil {
		return err
	}
	c, err := startCtd(ctdBin, binDir)
	if err != nil {
		return err
	}
	defer c.cleanup()
	tar := filepath.Join(c.dir, "busybox.oci.tar")
	if err := testutil.WriteOCIImageLayoutTar(tar, shimImage, e.rootfs); err != nil {
		return err
	}
	if out, err := c.ctr("images", "import", tar); err != nil {
		return fmt.Errorf("shim: import image: %v: %s", err, out)
	}

	// (a) ctr run --rm latency, interleaved, first runner alternating.
	type rt struct{ name, runtime string }
	rts := []rt{{"fre", freShimRuntime}, {"runc", runcRuntime}}
	seq := 0
	runRm := func(r rt) (time.Duration, error) {
		seq++
		id := fmt.Sprintf("frebench-%s-rm-%d", r.name, seq)
		start := time.Now()
		args := append([]string{"run", "--rm", "--runtime", r.runtime}, c.rootFlags(r.name)...)
		out, err := c.ctr(append(args, shimImage, id, "/bin/true")...)
		d := time.Since(start)
		if err != nil {
			return 0, fmt.Errorf("shim: ctr run --rm (%s): %v: %s", r.name, err, out)
		}
		return d, nil
	}
	for _, r := range rts {
		for i := 0; i < shimOpts.warmup; i++ {
			if _, err := runRm(r); err != nil {
				return err
			}
		}
	}
	fmt.Printf("(a) ctr run --rm busybox /bin/true: %d runs per shim (+%d warm-up), interleaved\n", n, shimOpts.warmup)
	lat := map[string][]time.Duration{}
	var runRows [][]string
	for round := 0; round < n; round++ {
		for j := range rts {
			r := rts[(round+j)%len(rts)]
			d, err := runRm(r)
			if err != nil {
				return err
			}
			lat[r.name] = append(lat[r.name], d)
			runRows = append(runRows, []string{r.name, strconv.Itoa(round), ms(float64(d) / 1e6)})
		}
	}
	var rows [][]string
	sums := map[string]summary{}
	fmt.Printf("    %-6s %4s %9s %9s %9s\n", "shim", "n", "mean ms", "p50 ms", "p99 ms")
	for _, r := range rts {
		s := summarize(lat[r.name])
		sums[r.name] = s
		fmt.Printf("    %-6s %4d %9.2f %9.2f %9.2f\n", r.name, s.n, s.mean, s.p50, s.p99)
		rows = append(rows, []string{"ctr-run-rm", r.name, strconv.Itoa(s.n), ms(s.mean), ms(s.p50), ms(s.p99), "ms", ""})
	}
	ratio := sums["fre"].mean / sums["runc"].mean
	rows = append(rows, ratioRow("ctr-run-rm", ratio, 0.5, fmt.Sprintf("mean; p50 ratio %.3f", sums["fre"].p50/sums["runc"].p50)))

	// (b) shim PSS per running container.
	fmt.Printf("(b) shim PSS with %d detached containers (sleep) per shim: mean of samples every %s over %s, %s after the last start\n", k, pssEvery, pssWindow, pssSettle)
	type memCase struct {
		name, runtime, bin string
		ann                []string
		note               string
	}
	cases := []memCase{
		{"fre", freShimRuntime, freShimBin, []string{"--annotation", "run.fre.group=" + shimGroup}, "one run.fre.group: one shim"},
		{"runc", runcRuntime, runcShimBin, nil, "one shim per container"},
		{"fre-ungrouped", freShimRuntime, freShimBin, nil, "no group: one shim per container"},
	}
	pssPer := map[string]float64{}
	for _, m := range cases {
		var ids []string
		for i := 0; i < k; i++ {
			id := fmt.Sprintf("frebench-%s-mem-%d", m.name, i)
			args := append(append([]string{"run", "-d", "--runtime", m.runtime}, c.rootFlags(m.name)...), m.ann...)
			args = append(args, shimImage, id, "sleep", "100000")
			if out, err := c.ctr(args...); err != nil {
				return fmt.Errorf("shim: ctr run -d (%s): %v: %s", m.name, err, out)
			}
			ids = append(ids, id)
		}
		if err := c.waitRunning(ids, 30*time.Second); err != nil {
			return err
		}
		// Memory per running container is a steady-state figure: the
		// shims settle first (the fre shim drops the binary's pages it
		// mapped for the creates once idle for a second), then PSS is
		// sampled over pssWindow, which spans one of the GCs the shim
		// library forces every 30 s in both shims; the mean is the figure.
		time.Sleep(pssSettle)
		pids := c.shimPids(m.bin)
		var sum, peak uint64
		samples := 0
		for end := time.Now().Add(pssWindow); ; {
			var total uint64
			for _, pid := range pids {
				kb, err := shimPssKB(pid)
				if err != nil {
					return fmt.Errorf("shim: PSS of %s pid %d: %w", m.bin, pid, err)
				}
				total += kb
			}
			sum += total
			peak = max(peak, total)
			samples++
			if time.Now().After(end) {
				break
			}
			time.Sleep(pssEvery)
		}
		total := sum / uint64(samples)
		per := float64(total) / float64(k)
		pssPer[m.name] = per
		fmt.Printf("    %-14s %2d shim process(es), PSS total %7d kB (max %d), %8.1f kB per container (%s)\n", m.name, len(pids), total, peak, per, m.note)
		rows = append(rows, []string{"shim-pss-per-container", m.name, strconv.Itoa(k), strconv.FormatFloat(per, 'f', 1, 64), "", "", "kB",
			fmt.Sprintf("%d shim processes, %d kB PSS in all (mean of %d samples over %s after %s, max %d); %s", len(pids), total, samples, pssWindow, pssSettle, peak, m.note)})
		if err := c.removeAll(ids, m.bin); err != nil {
			return err
		}
	}
	rows = append(rows, ratioRow("shim-pss-per-container", pssPer["fre"]/pssPer["runc"], 0.1, "fre grouped vs runc"))
	rows = append(rows, ratioRow("shim-pss-per-container (ungrouped)", pssPer["fre-ungrouped"]/pssPer["runc"], 0, "no target: one fre shim per container"))

	// (c) Create and Start as the fre shim timed them (every fre container
	// above: the ctr run --rm ones and the detached ones).
	create, start, both, phases, err := readShimTimings(c.timing)
	if err != nil {
		return err
	}
	fmt.Printf("(c) inside the fre shim (its Create and Start RPC handlers; %s; shim.* = ms from the start command's exec to that point of a new shim)\n", shimTimingEnv)
	fmt.Printf("    %-14s %4s %9s %9s %9s\n", "", "n", "mean ms", "p50 ms", "p99 ms")
	for _, x := range []struct {
		name string
		ds   []time.Duration
	}{{"create", create}, {"start", start}, {"create+start", both}} {
		s := summarize(x.ds)
		fmt.Printf("    %-14s %4d %9.3f %9.3f %9.3f\n", x.name, s.n, s.mean, s.p50, s.p99)
		rows = append(rows, []string{"shim-" + x.name, "fre", strconv.Itoa(s.n), ms(s.mean), ms(s.p50), ms(s.p99), "ms", "inside the shim"})
	}
	sb := summarize(both)
	var names []string
	for p := range phases {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		s := summarize(phases[p])
		fmt.Printf("      %-32s %4d %9.3f %9.3f %9.3f\n", p, s.n, s.mean, s.p50, s.p99)
		step := "shim-create-step "
		switch {
		case strings.HasPrefix(p, "shim."):
			// Milestones: ms after the shim process started (a new
			// shim's start command, forked before Go).
			step = "shim-process-milestone "
		case strings.Contains(p, "delete"):
			step = "shim-delete-step "
		}
		rows = append(rows, []string{step + p, "fre", strconv.Itoa(s.n), ms(s.mean), ms(s.p50), ms(s.p99), "ms", "inside the shim"})
	}

	fmt.Println("targets:")
	printShimTarget("ctr run --rm latency (mean)", "fre/runc", ratio, 0.5, "x")
	printShimTarget("shim PSS per container", "fre/runc", pssPer["fre"]/pssPer["runc"], 0.1, "x")
	printShimTarget("create+start in shim (mean)", "fre", sb.mean, 2, " ms")
	rows = append(rows, []string{"target shim-create+start", "fre", strconv.Itoa(sb.n), ms(sb.mean), ms(sb.p50), ms(sb.p99), "ms",
		"target <= 2 ms (mean): " + verdict(sb.mean, 2)})

	if err := writeCSV(e.opts.results, "shim-runs.csv", []string{"shim", "round", "ms"}, runRows); err != nil {
		return err
	}
	return writeCSV(e.opts.results, "shim.csv", []string{"figure", "runtime", "n", "mean", "p50", "p99", "unit", "note"}, rows)
}

func ratioRow(figure string, r, k float64, note string) []string {
	if k > 0 {
		note = fmt.Sprintf("target <= %gx: %s; %s", k, verdict(r, k), note)
	}
	return []string{"ratio " + figure, "fre/runc", "", strconv.FormatFloat(r, 'f', 3, 64), "", "", "x", note}
}

func verdict(v, limit float64) string {
	if v <= limit {
		return "PASS"
	}
	return "MISS"
}

func printShimTarget(what, pair string, v, limit float64, unit string) {
	fmt.Printf("  %-32s %-9s %8.3f%s  target <= %g%s  %s\n", what, pair, v, unit, limit, unit, verdict(v, limit))
}

func runcVersion() string {
	out, err := exec.Command("runc", "--version").Output()
	if err != nil {
		return "?"
	}
	f := strings.Fields(firstLine(string(out)))
	return f[len(f)-1]
}

// containerdBins is the directory make containerd fills
// ($CONTAINERD_BIN_DIR or <bin-dir>/containerd-v2.4.2); what is missing is
// built there as the Makefile does.
func containerdBins(binDir string) (string, error) {
	dir := os.Getenv("CONTAINERD_BIN_DIR")
	if dir == "" {
		dir = filepath.Join(binDir, "containerd-"+ctdVersion)
	}
	var missing []string
	for _, b := range []string{"containerd", "ctr", runcShimBin} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			missing = append(missing, "github.com/containerd/containerd/v2/cmd/"+b+"@"+ctdVersion)
		}
	}
	if len(missing) == 0 {
		return dir, nil
	}
	fmt.Printf("building containerd %s into %s\n", ctdVersion, dir)
	cmd := exec.Command("go", append([]string{"install"}, missing...)...)
	cmd.Env = append(os.Environ(), "GOBIN="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("shim: go install containerd: %v: %s", err, out)
	}
	return dir, nil
}

// startCtd starts a private containerd (root, state, sockets under a new
// directory) whose PATH finds both shims, and waits until it answers.
func startCtd(ctdBin, binDir string) (*ctd, error) {
	dir, err := os.MkdirTemp("/tmp", "frebench-ctd-")
	if err != nil {
		return nil, err
	}
	run, err := os.MkdirTemp("/dev/shm", "frebench-ctd-run-")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// Both shims run from copies, as `make install` or a package puts
	// them: the Go linker writes its output through mmap, which leaves
	// the fresh binary in 2 MiB page-cache folios, and a process mapping
	// it then has whole 2 MiB pieces resident. A copy (or a reboot) has
	// ordinary folios; measured as built, each shim would carry its whole
	// text in PSS.
	installed := filepath.Join(dir, "bin")
	if err := installCopies(installed, filepath.Join(binDir, freShimBin), filepath.Join(ctdBin, runcShimBin)); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	freOptions := filepath.Join(run, "fre-options.json")
	if err := os.WriteFile(freOptions, []byte(fmt.Sprintf(`{"root": %q}`, filepath.Join(run, "runtime-fre"))), 0o644); err != nil {
		os.RemoveAll(dir)
		os.RemoveAll(run)
		return nil, err
	}
	c := &ctd{dir: dir, run: run, freOptions: freOptions, sock: filepath.Join(dir, "c.sock"), binDir: ctdBin,
		path:   installed + ":" + binDir + ":" + ctdBin + ":" + os.Getenv("PATH"),
		timing: filepath.Join(dir, "shim-timing.log")}
	cfg := fmt.Sprintf(`version = 3
root = %q
state = %q
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images",
  "io.containerd.podsandbox.controller.v1.podsandbox", "io.containerd.sandbox.controller.v1.shim"]

[grpc]
  address = %q

[ttrpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(run, "state"), c.sock, c.sock+".ttrpc")
	config := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(config, []byte(cfg), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if c.log, err = os.Create(filepath.Join(dir, "containerd.log")); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd := exec.Command(filepath.Join(ctdBin, "containerd"), "--config", config)
	cmd.Env = append(c.env(), shimTimingEnv+"="+c.timing)
	cmd.Stdout, cmd.Stderr = c.log, c.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		c.log.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	c.cmd, c.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(c.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-c.exited:
			c.cmd = nil
			c.cleanup()
			return nil, fmt.Errorf("shim: containerd exited at start (log in %s)", c.log.Name())
		default:
		}
		if _, err := c.ctr("version"); err == nil {
			return c, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.cleanup()
	return nil, errors.New("shim: containerd did not answer in 30s")
}

// installCopies installs each file into dir with install(1), as make
// install does (a chunked copy: ordinary page-cache folios).
func installCopies(dir string, files ...string) error {
	args := append([]string{"-D", "-m", "0755", "-t", dir}, files...)
	if out, err := exec.Command("install", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("shim: install %v: %v: %s", files, err, out)
	}
	return nil
}

func (c *ctd) env() []string {
	var env []string
	for _, v := range os.Environ() {
		if !strings.HasPrefix(v, "PATH=") {
			env = append(env, v)
		}
	}
	return append(env, "PATH="+c.path)
}

func (c *ctd) ctr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, "ctr"), append([]string{"--address", c.sock, "--namespace", shimNS}, args...)...)
	cmd.Env = c.env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// The PSS sampling of (b).
const (
	pssSettle = 3 * time.Second
	pssWindow = 32 * time.Second
	pssEvery  = 2 * time.Second
)

// waitRunning polls `ctr tasks ls` until every id is RUNNING.
func (c *ctd) waitRunning(ids []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := c.ctr("tasks", "ls")
		running := map[string]bool{}
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) >= 3 && f[2] == "RUNNING" {
				running[f[0]] = true
			}
		}
		left := 0
		for _, id := range ids {
			if !running[id] {
				left++
			}
		}
		if err == nil && left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("shim: %d of %d containers not running after %s (%v)", left, len(ids), timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// removeAll kills and removes the containers and waits for the shims
// (binary bin) serving them to exit.
func (c *ctd) removeAll(ids []string, bin string) error {
	for _, id := range ids {
		c.ctr("tasks", "kill", "-s", "SIGKILL", id)
	}
	for _, id := range ids {
		if out, err := c.ctr("tasks", "delete", "-f", id); err != nil && !strings.Contains(out, "not found") {
			return fmt.Errorf("shim: task delete %s: %v: %s", id, err, out)
		}
		if out, err := c.ctr("containers", "delete", id); err != nil {
			return fmt.Errorf("shim: container delete %s: %v: %s", id, err, out)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(c.shimPids(bin)) > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("shim: %s processes %v still up 20s after their containers were removed", bin, c.shimPids(bin))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// shimPids are the shim daemons (binary bin) of this containerd.
func (c *ctd) shimPids(bin string) []int { return testutil.ShimPids(bin, c.sock) }

// shimPssKB is the Pss line of /proc/<pid>/smaps_rollup, in kB.
func shimPssKB(pid int) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "Pss:" {
			return strconv.ParseUint(f[1], 10, 64)
		}
	}
	return 0, errors.New("no Pss line")
}

// readShimTimings reads the shim's timing log: Create, Start, and their
// sum per container.
// warmShimID: the container was created in a shim already serving
// another (the grouped detached ones after the first), not in a shim
// started for it.
func warmShimID(id string) bool {
	return strings.HasPrefix(id, "frebench-fre-mem-") && !strings.HasSuffix(id, "-mem-0")
}

func readShimTimings(path string) (create, start, both []time.Duration, phases map[string][]time.Duration, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("shim: timing log: %w (is the fre shim built from this tree?)", err)
	}
	byID := map[string]map[string]time.Duration{}
	phases = map[string][]time.Duration{}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			continue
		}
		ns, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			continue
		}
		if f[0] != "create" && f[0] != "start" {
			// Steps of Create: the shim's own and runtime/'s phases.
			phases[f[0]] = append(phases[f[0]], time.Duration(ns))
			continue
		}
		if byID[f[1]] == nil {
			byID[f[1]] = map[string]time.Duration{}
		}
		byID[f[1]][f[0]] = time.Duration(ns)
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		m := byID[id]
		cr, okc := m["create"]
		st, oks := m["start"]
		if okc {
			create = append(create, cr)
		}
		if oks {
			start = append(start, st)
		}
		if okc && oks {
			both = append(both, cr+st)
			if warmShimID(id) {
				phases["(create+start in a running shim)"] = append(phases["(create+start in a running shim)"], cr+st)
			} else {
				phases["(create+start in a new shim)"] = append(phases["(create+start in a new shim)"], cr+st)
			}
		}
	}
	if len(both) == 0 {
		return nil, nil, nil, nil, fmt.Errorf("shim: the timing log %s has no Create+Start pair", path)
	}
	return create, start, both, phases, nil
}

// cleanup removes every trace: tasks and containers, containerd (stopped
// by its pid), shims of this containerd, mounts, cgroups, runtime state.
func (c *ctd) cleanup() {
	if c.cmd != nil {
		if out, err := c.ctr("tasks", "ls", "-q"); err == nil {
			for _, id := range strings.Fields(out) {
				c.ctr("tasks", "kill", "-s", "SIGKILL", id)
				c.ctr("tasks", "delete", "-f", id)
			}
		}
		if out, err := c.ctr("containers", "ls", "-q"); err == nil {
			for _, id := range strings.Fields(out) {
				c.ctr("containers", "delete", id)
			}
		}
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(15 * time.Second):
			c.cmd.Process.Kill()
			<-c.exited
		}
		c.cmd = nil
	}
	for _, bin := range []string{freShimBin, runcShimBin} {
		for _, pid := range c.shimPids(bin) {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
	if c.log != nil {
		c.log.Close()
	}
	mps := append(mountsUnder(c.dir), mountsUnder(c.run)...)
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	for _, mp := range mps {
		unix.Unmount(mp, unix.MNT_DETACH)
	}
	// The namespaces' cgroup parents (the fre pool's idle cgroups in
	// them too: their runtime root goes with c.run) and runc's roots.
	for _, ns := range []string{shimNS, engineNS} {
		if leaks := testutil.RemoveCgroupTree(ns); len(leaks) > 0 {
			fmt.Fprintf(os.Stderr, "frebench: left behind: %s\n", strings.Join(leaks, "; "))
		}
		os.RemoveAll(filepath.Join("/run/containerd/fre", ns))
		os.RemoveAll(filepath.Join("/run/containerd/runc", ns))
	}
	if m := append(mountsUnder(c.dir), mountsUnder(c.run)...); len(m) > 0 {
		fmt.Fprintf(os.Stderr, "frebench: not removing %s, %s: mounts left under them: %v\n", c.dir, c.run, m)
		return
	}
	os.RemoveAll(c.dir)
	os.RemoveAll(c.run)
}

// rootFlags put the runtime root of the shim called name on the tmpfs:
// runc's --root for the runc shim (ctr's --runc-root), the fre runtime's
// root for FRE's (its options file, --runtime-config-path).
func (c *ctd) rootFlags(name string) []string {
	if strings.HasPrefix(name, "runc") {
		return []string{"--runc-root", filepath.Join(c.run, "runtime-runc")}
	}
	return []string{"--runtime-config-path", c.freOptions}
}
