// Package testpools gives a test binary pools of its own: FRE's cgroup
// and netns pools are host-wide by default (/run/fre), and a test must
// leave the host's as it found them.
package testpools

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/fre-runtime/fre/cgpool"
	"github.com/fre-runtime/fre/netns"
)

// Run points $FRE_CGPOOL_DIR, $FRE_NETNS_POOL_DIR and the cgroup pools'
// registry at a temporary directory (inherited by the runtimes, shims and
// fre-runc processes the tests start), runs the tests, then drains what
// is left there and removes it. A test binary's TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testpools.Run(m.Run)) }
func Run(run func() int) int {
	dir, err := os.MkdirTemp("", "fre-test-pools-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testpools:", err)
		return 1
	}
	cg, nsDir, reg := filepath.Join(dir, "cgpool"), filepath.Join(dir, "netns-pool"), filepath.Join(dir, "cgpool-owners")
	os.Setenv("FRE_CGPOOL_DIR", cg)
	os.Setenv("FRE_NETNS_POOL_DIR", nsDir)
	os.Setenv(cgpool.RegistryEnv, reg)
	code := run()
	if _, err := os.Stat(cg); err == nil {
		if p, err := cgpool.Open(cgpool.Config{StateDir: cg, Enabled: true}); err == nil {
			if err := p.Drain(""); err != nil {
				fmt.Fprintln(os.Stderr, "testpools: drain:", err)
				code = max(code, 1)
			}
			p.Close()
		}
	}
	if _, err := os.Stat(nsDir); err == nil {
		if err := netns.Purge(nsDir); err != nil {
			fmt.Fprintln(os.Stderr, "testpools: netns purge:", err)
			code = max(code, 1)
		}
	}
	os.RemoveAll(dir)
	return code
}
