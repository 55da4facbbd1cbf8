package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/cgpool"
	"github.com/fre-runtime/fre/internal/testpools"
	"github.com/fre-runtime/fre/internal/testutil"
	"github.com/fre-runtime/fre/netns"
	"github.com/fre-runtime/fre/shim/task"
)

const (
	runtimeName = "io.containerd.fre.v1"
	namespace   = "fre-test"
	imageRef    = "docker.io/library/busybox-fre:latest"
	freRoot     = "/run/containerd/fre/" + namespace
	// fifoDir is where the client's cio puts a task's fifos.
	fifoDir = "/run/containerd/fifo"
)

// containerd is a private containerd with the fre runtime configured.
type containerd struct {
	dir     string // everything lives below it
	sock    string
	config  string
	binDir  string // containerd, ctr
	shimDir string // containerd-shim-fre-v1
	cmd     *exec.Cmd
	exited  chan struct{}
	log     *os.File
	// criOptions, when set, is the options table (TOML) of CRI's fre
	// runtime and of a runc handler with the same table, so the two
	// differ only in runtime_type (criRuntimes).
	criOptions string
	extraEnv   []string
}

var (
	sharedOnce sync.Once
	shared     *containerd
	sharedErr  error
)

// shimSocketDir is where shims put their sockets (containerd's default).
const shimSocketDir = "/run/containerd/s"

// netnsDir is where containerd's CRI pins its pods' network namespaces.
const netnsDir = "/run/netns"

// criCgroupBefore: the host had a /k8s.io cgroup before the tests (then
// it is not theirs to remove).
var criCgroupBefore bool

func TestMain(m *testing.M) {
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/memory", criNamespace)); err == nil {
		criCgroupBefore = true
	}
	socketsBefore := map[string]bool{}
	for _, d := range []string{shimSocketDir, fifoDir, netnsDir} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			socketsBefore[filepath.Join(d, e.Name())] = true
		}
	}
	// Pools of the tests' own (fre-runc run by a test, the shims of the
	// shared containerd get its directory's instead: containerd.env).
	os.Exit(testpools.Run(func() int { return runAndClean(m, socketsBefore) }))
}

// runAndClean runs the tests, then removes what the shared containerd and
// its shims left, which fails the run.
func runAndClean(m *testing.M, socketsBefore map[string]bool) int {
	code := m.Run()
	if shared != nil {
		leaks := shared.cleanup()
		// A shim removes its socket when it ends; a client its fifos;
		// CRI a pod's network namespace (a pin under /run/netns).
		for _, d := range []string{shimSocketDir, fifoDir, netnsDir} {
			ents, _ := os.ReadDir(d)
			for _, e := range ents {
				if p := filepath.Join(d, e.Name()); !socketsBefore[p] {
					leaks = append(leaks, "left "+p)
					if d == netnsDir {
						unix.Unmount(p, unix.MNT_DETACH)
					}
					os.RemoveAll(p)
				}
			}
		}
		if len(leaks) > 0 {
			// Whatever the tests left had to be killed or removed here:
			// a leak is a failure.
			fmt.Printf("integration: left behind: %s\n", strings.Join(leaks, "; "))
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// skipOrFail skips outside CI and fails in CI.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// binDir is where make containerd put containerd and ctr.
func binDir() string {
	if d := os.Getenv("CONTAINERD_BIN_DIR"); d != "" {
		return d
	}
	abs, _ := filepath.Abs("../bin/containerd-v2.4.2")
	return abs
}

// setup returns the shared containerd, starting it (and importing the
// busybox image) on first use.
func setup(t *testing.T) *containerd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	bd := binDir()
	for _, b := range []string{"containerd", "ctr"} {
		if _, err := os.Stat(filepath.Join(bd, b)); err != nil {
			skipOrFail(t, "%s not found in %s (make containerd)", b, bd)
		}
	}
	sharedOnce.Do(func() {
		shared, sharedErr = newContainerd(t, bd, "")
		if sharedErr != nil {
			return
		}
		tar := testutil.OCIImageLayout(t, shared.dir, imageRef)
		if out, err := shared.ctr("images", "import", "--all-platforms", tar); err != nil {
			sharedErr = fmt.Errorf("import image: %v: %s", err, out)
		}
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	if shared.cmd == nil {
		t.Fatal("containerd is not running (an earlier test failed to restart it)")
	}
	return shared
}

// newContainerd starts a containerd from bd with the fre runtime and, when
// criOptions is set, the runtimes of criRuntimes.
func newContainerd(t testing.TB, bd, criOptions string) (*containerd, error) {
	return newContainerdWith(t, bd, ctdOptions{criOptions: criOptions})
}

// ctdOptions are what a test's own containerd differs in.
type ctdOptions struct {
	criOptions string
	shimFlags  []string // go build flags of the shim (-tags failpoints)
	env        []string // more environment, for containerd and its shims
}

func newContainerdWith(t testing.TB, bd string, o ctdOptions) (*containerd, error) {
	dir, err := os.MkdirTemp("/tmp", "fre-ctd-")
	if err != nil {
		return nil, err
	}
	// As containerd's own directories are (/run/containerd): a container
	// in a user namespace must reach its bundle's rootfs.
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	c := &containerd{dir: dir, binDir: bd, sock: filepath.Join(dir, "c.sock"),
		config: filepath.Join(dir, "config.toml"), shimDir: filepath.Join(dir, "bin"), criOptions: o.criOptions, extraEnv: o.env}
	// Build the shim from this tree, so the test never runs a stale binary.
	// FRE_TEST_SHIM_RACE=1 builds it with the race detector; its reports
	// (the shim's stderr is /dev/null) go to files that fail the run.
	extra := o.shimFlags
	if os.Getenv("FRE_TEST_SHIM_RACE") == "1" {
		extra = append(extra, "-race")
	}
	if err := testutil.GoBuild(filepath.Join(c.shimDir, "containerd-shim-fre-v1"), "../cmd/containerd-shim-fre-v1", extra...); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("build shim: %w", err)
	}
	if err := c.writeConfig(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := c.start(); err != nil {
		c.cleanup()
		return nil, err
	}
	return c, nil
}

func (c *containerd) writeConfig() error {
	cni := filepath.Join(c.dir, "cni")
	if err := os.MkdirAll(cni, 0o755); err != nil {
		return err
	}
	// Loopback only: no address outside 127.0.0.0/8 is ever assigned.
	// containerd's CRI insists on an eth0 with an address in the CNI
	// result, so a report-only plugin after loopback names lo's 127.0.0.1
	// as the pod's address; it creates nothing.
	lo := `{"cniVersion": "1.0.0", "name": "fre-lo", "plugins": [{"type": "loopback"}, {"type": "fre-report-lo"}]}`
	if err := os.WriteFile(filepath.Join(cni, "10-fre-lo.conflist"), []byte(lo), 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(c.shimDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.shimDir, "fre-report-lo"), []byte(reportLoPlugin), 0o755); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q
imports = []
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = %[5]q

# This host withholds CAP_SYS_RESOURCE: no oom_score_adj below containerd's.
# enable_unprivileged_ports and enable_unprivileged_icmp keep their
# defaults (true): CRI asks for net.ipv4.ip_unprivileged_port_start and
# net.ipv4.ping_group_range, which TestCRIPod checks inside the pod.
[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true

[plugins."io.containerd.cri.v1.runtime".containerd]
  default_runtime_name = "fre"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.fre]
  runtime_type = "io.containerd.fre.v1"
%[8]s
[plugins."io.containerd.cri.v1.runtime".cni]
  bin_dirs = [%[7]q, "/usr/lib/cni", "/opt/cni/bin"]
  conf_dir = %[6]q

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`, filepath.Join(c.dir, "root"), filepath.Join(c.dir, "state"), c.sock, c.sock+".ttrpc", pauseRef, cni, c.shimDir,
		criRuntimes(c.criOptions))
	return os.WriteFile(c.config, []byte(cfg), 0o644)
}

// criRuntimes is the config after the fre runtime's table: with options,
// fre's options table and a runc handler (containerd's runc shim) with
// the same one, as a node that switches from runc to FRE by runtime_type
// alone has them; without, nothing.
func criRuntimes(options string) string {
	if options == "" {
		return ""
	}
	const rt = `[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.`
	return fmt.Sprintf(`
%[1]sfre.options]
%[2]s

%[1]srunc]
  runtime_type = "io.containerd.runc.v2"

%[1]srunc.options]
%[2]s
`, rt, options)
}

// reportLoPlugin is a CNI plugin that only reports: the pod's "eth0"
// address is 127.0.0.1 (its loopback, which the loopback plugin brought
// up). It reads nothing and changes nothing.
const reportLoPlugin = `#!/bin/sh
cat >/dev/null
case "$CNI_COMMAND" in
ADD) printf '{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"%s"}],"ips":[{"address":"127.0.0.1/8","interface":0}]}' "$CNI_NETNS" ;;
VERSION) printf '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}' ;;
esac
`

func (c *containerd) env() []string {
	// The shims' tenants and channels (run.fre.tenant, run.fre.channel)
	// live in this containerd's directory, not the host's defaults.
	// So do the pools (host-wide by default) and their registry.
	env := append(os.Environ(), "PATH="+c.shimDir+":"+c.binDir+":"+os.Getenv("PATH"),
		"GORACE=log_path="+c.raceLog(), "FRE_TENANT_ROOT="+c.tenantRoot(), "FRE_CHANNEL_ROOT="+c.channelRoot(),
		"FRE_CGPOOL_DIR="+c.cgpoolDir(), "FRE_NETNS_POOL_DIR="+c.netnsPoolDir(), cgpool.RegistryEnv+"="+c.cgpoolRegistry(),
		task.ShimRegistryEnv+"="+filepath.Join(c.dir, "shims"))
	return append(env, c.extraEnv...)
}

func (c *containerd) cgpoolDir() string      { return filepath.Join(c.dir, "cgpool") }
func (c *containerd) netnsPoolDir() string   { return filepath.Join(c.dir, "netns-pool") }
func (c *containerd) cgpoolRegistry() string { return filepath.Join(c.dir, "cgpool-owners") }

func (c *containerd) tenantRoot() string  { return filepath.Join(c.dir, "tenants") }
func (c *containerd) channelRoot() string { return filepath.Join(c.dir, "channels") }

// raceLog is where a shim built with -race writes its reports
// (<raceLog>.<pid>), outside the dir cleanup removes.
func (c *containerd) raceLog() string { return c.dir + "-race" }

// start runs containerd and waits until it answers.
func (c *containerd) start() error {
	f, err := os.OpenFile(filepath.Join(c.dir, "containerd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(c.binDir, "containerd"), "--config", c.config, "--log-level", "debug")
	cmd.Env = c.env()
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return err
	}
	c.cmd, c.log, c.exited = cmd, f, make(chan struct{})
	go func() { cmd.Wait(); close(c.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-c.exited:
			c.cmd = nil
			return fmt.Errorf("containerd exited at start; log:\n%s", c.tail())
		default:
		}
		if _, err := c.ctr("version"); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("containerd did not answer in 30s; log:\n%s", c.tail())
}

// stop stops containerd by its pid (SIGTERM, then SIGKILL).
func (c *containerd) stop() {
	if c.cmd == nil {
		return
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(15 * time.Second):
		c.cmd.Process.Kill()
		<-c.exited
	}
	c.cmd = nil
	c.log.Close()
}

func (c *containerd) tail() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "containerd.log"))
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// ctr runs ctr against this containerd and returns its combined output.
func (c *containerd) ctr(args ...string) (string, error) {
	return c.ctrCtx(context.Background(), args...)
}

// ctrNS runs ctr in another containerd namespace.
func (c *containerd) ctrNS(ns string, args ...string) (string, error) {
	return c.ctrCtx(context.Background(), append([]string{"--namespace", ns}, args...)...)
}

func (c *containerd) ctrCtx(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, "ctr"), append([]string{"--address", c.sock, "--namespace", namespace}, args...)...)
	cmd.Env = c.env()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// A ctr that hangs is asked for its goroutines first (SIGQUIT), and
	// so are containerd and the shims (SIGUSR1, into containerd's log):
	// a hang seen once in CI says where it was.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err != nil && ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("%w: ctr %s timed out; %s", err, strings.Join(args, " "), c.stacks())
	}
	return dropWarnings(out.String()), err
}

// stacks has containerd and this containerd's shims dump their goroutines
// into containerd's log and returns the dumps.
func (c *containerd) stacks() string {
	if c.cmd == nil {
		return "no containerd"
	}
	before, _ := os.ReadFile(filepath.Join(c.dir, "containerd.log"))
	pids := append([]int{c.cmd.Process.Pid}, c.shimPids()...)
	for _, pid := range pids {
		unix.Kill(pid, unix.SIGUSR1)
	}
	var dumps string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(filepath.Join(c.dir, "containerd.log"))
		if len(b) >= len(before) {
			dumps = string(b[len(before):])
		}
		if strings.Count(dumps, "END goroutine stack dump") >= len(pids) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	tail := string(before)
	if len(tail) > 8000 {
		tail = tail[len(tail)-8000:]
	}
	return fmt.Sprintf("stacks of pids %v:\n%s\ncontainerd log before:\n%s", pids, strings.NewReplacer(`\n`, "\n", `\t`, "\t").Replace(dumps), tail)
}

// dropWarnings removes containerd's cgroup v1 deprecation notice, which
// ctr prints on this host before anything else.
func dropWarnings(s string) string {
	var keep []string
	for _, l := range strings.SplitAfter(s, "\n") {
		if strings.Contains(l, "level=warning") && strings.Contains(l, "DEPRECATION") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "")
}

// run is `ctr run --runtime io.containerd.fre.v1 <flags> IMAGE id args...`.
func (c *containerd) run(flags []string, id string, args ...string) (string, error) {
	a := append([]string{"run", "--runtime", runtimeName}, flags...)
	a = append(a, imageRef, id)
	return c.ctr(append(a, args...)...)
}

// shimPids are the fre shims serving this containerd.
func (c *containerd) shimPids() []int { return testutil.ShimPids("containerd-shim-fre-v1", c.sock) }

// cleanup removes every trace: tasks, containers, containerd, shims,
// mounts, cgroups and runtime state.
// cleanup stops containerd and removes what it and the tests made; it
// returns what had to be killed or could not be removed (leaks).
func (c *containerd) cleanup() (leaks []string) {
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
	}
	leaks = c.teardown()
	if !criCgroupBefore {
		// Made by these tests (containerd's CRI or a shim's pool): empty
		// now, unless something was left in it.
		leaks = append(leaks, testutil.RemoveCgroupTree(criNamespace)...)
	}
	leaks = append(leaks, testutil.RemoveCgroupTree(namespace)...)
	os.RemoveAll(freRoot)
	os.RemoveAll(filepath.Join("/run/containerd/runc", namespace)) // the drop-in test's runc shim root
	os.RemoveAll(filepath.Join(filepath.Dir(freRoot), criNamespace))
	c.keepLog()
	os.RemoveAll(c.dir)
	return leaks
}

// keepLog copies containerd's log to $FRE_TEST_CONTAINERD_LOG (when set)
// before its directory goes.
func (c *containerd) keepLog() {
	if p := os.Getenv("FRE_TEST_CONTAINERD_LOG"); p != "" {
		if b, err := os.ReadFile(filepath.Join(c.dir, "containerd.log")); err == nil {
			os.WriteFile(p, b, 0o644)
		}
	}
}

// teardown stops containerd, kills its shims (a leak if any lived),
// unmounts what is below its directory and drains its shims' pools; the
// caller removes its namespaces' cgroups and state, then c.dir.
func (c *containerd) teardown() (leaks []string) {
	c.stop()
	for _, pid := range c.shimPids() {
		unix.Kill(pid, unix.SIGKILL)
	}
	unmountUnder(c.dir)
	if reports, _ := filepath.Glob(c.raceLog() + ".*"); len(reports) > 0 {
		for _, r := range reports {
			b, _ := os.ReadFile(r)
			fmt.Printf("integration: race report of a shim (%s):\n%s\n", r, b)
			os.Remove(r)
		}
		leaks = append(leaks, fmt.Sprintf("%d race report(s) of shims", len(reports)))
	}
	// The shims' pool: a shim that lived a minute refilled its
	// namespace's parent (/fre-test, and /k8s.io for the CRI pod) with
	// idle cgroups, which the pool's own drain removes by its tag.
	oldRegistry := os.Getenv(cgpool.RegistryEnv)
	os.Setenv(cgpool.RegistryEnv, c.cgpoolRegistry())
	if p, err := cgpool.Open(cgpool.Config{StateDir: c.cgpoolDir(), Enabled: true}); err == nil {
		if err := p.Drain(""); err != nil {
			leaks = append(leaks, fmt.Sprintf("drain the shims' cgroup pool: %v", err))
		}
		p.Close()
	}
	os.Setenv(cgpool.RegistryEnv, oldRegistry)
	// The netns pool's tmpfs, if a test used the pool policy.
	if _, err := os.Stat(c.netnsPoolDir()); err == nil {
		if err := netns.Purge(c.netnsPoolDir()); err != nil {
			leaks = append(leaks, fmt.Sprintf("purge the shims' netns pool: %v", err))
		}
	}
	return leaks
}

// unmountUnder lazily unmounts every mount below dir, deepest first.
func unmountUnder(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var mps []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			mps = append(mps, fields[4])
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	for _, mp := range mps {
		unix.Unmount(mp, unix.MNT_DETACH)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s (last error: %v)", what, last)
}

// pollFor polls cond until it holds (true) or timeout passes (false).
func pollFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// exitCode is the exit code of a finished command.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err == nil {
		return 0
	}
	return -1
}
