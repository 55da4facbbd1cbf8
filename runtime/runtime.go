package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/cgpool"
	"github.com/fre-runtime/fre/cgroup"
	"github.com/fre-runtime/fre/cgroup/systemd"
	"github.com/fre-runtime/fre/internal/flock"
	"github.com/fre-runtime/fre/netns"
)

// Options are FRE's own settings (flags, config file, shim options).
type Options struct {
	// NetnsPolicy decides what a netns request without a path gets.
	NetnsPolicy netns.Policy `json:"netnsPolicy,omitempty"`
	// NetnsPoolSize is the number of idle namespaces the pool keeps.
	NetnsPoolSize int `json:"netnsPoolSize,omitempty"`
	// CgroupPool: reuse idle cgroups instead of creating them (default on
	// for cgroup v1, off for v2: see cgroupPoolOn).
	CgroupPool *bool `json:"cgroupPool,omitempty"`
	// CgroupPoolSize is the number of idle cgroups kept per parent.
	CgroupPoolSize int `json:"cgroupPoolSize,omitempty"`
	// CgroupPoolParents are pooled (kept warm) besides the hierarchy root
	// and the parents given to `pool fill`.
	CgroupPoolParents []string `json:"cgroupPoolParents,omitempty"`
	// CgroupPoolDir is the cgroup pool's state (default $FRE_CGPOOL_DIR,
	// else cgpool.DefaultStateDir): one pool for the host, whatever the
	// --root, so its size bounds the idle cgroups of each parent.
	CgroupPoolDir string `json:"cgroupPoolDir,omitempty"`
	// NetnsPoolDir is the netns pool's directory (default
	// $FRE_NETNS_POOL_DIR, else netns.DefaultPoolDir), host-wide too.
	NetnsPoolDir string `json:"netnsPoolDir,omitempty"`
	// Rootfs is "plain" (default: the bundle's rootfs as it is, as runc
	// runs it) or "shared" (a plain-directory rootfs runs on the
	// shared-layer store); the annotation run.fre.rootfs wins.
	Rootfs string `json:"rootfs,omitempty"`
	// StoreRoot is the store's directory (default $FRE_STORE_ROOT, else
	// /var/lib/fre/store).
	StoreRoot string `json:"storeRoot,omitempty"`
	// SystemdCgroup: the systemd cgroup driver (runc's --systemd-cgroup):
	// cgroupsPath is "slice:prefix:name", the cgroup a transient scope
	// (systemd.go).
	SystemdCgroup bool `json:"systemdCgroup,omitempty"`
	// SystemdScopeAlongside: the systemd driver starts the scope while
	// the init sets up, not before it. Off by default: in the systemd
	// guest it measured 1-7% slower (systemd's latency is the cost, and
	// the set-up it overlaps is short); make bench-systemd's A/B.
	SystemdScopeAlongside bool `json:"systemdScopeAlongside,omitempty"`
	// TenantRoot holds tenants' workDirs (default /var/lib/fre/tenants)
	// and ChannelRoot instances' channels (default /run/fre/channels):
	// annotations run.fre.tenant and run.fre.channel (instance.go).
	TenantRoot  string `json:"tenantRoot,omitempty"`
	ChannelRoot string `json:"channelRoot,omitempty"`
}

// Runtime is a state root: every container under it.
type Runtime struct {
	Root    string
	Options Options

	netPool *netns.Pool
	cgPool  *cgpool.Pool
	// taken wakes KeepPoolsWarm when Create took a cgroup of the pool.
	taken chan struct{}
	// sdConn is the systemd driver's D-Bus connection (systemd.go).
	sdMu   sync.Mutex
	sdConn *systemd.Conn
	// Warn receives warnings (a failed poststart or poststop hook).
	Warn func(msg string)
	// Trace, when set, receives the duration of each phase of Create. It
	// is called from more than one goroutine at once (the cgroup claim and
	// the rootfs's walk run beside the rest).
	Trace func(phase string, d time.Duration)
}

// phases times the steps of an operation for Trace.
type phases struct {
	trace func(string, time.Duration)
	last  time.Time
}

func (r *Runtime) phases() *phases {
	if r.Trace == nil {
		return &phases{}
	}
	return &phases{trace: r.Trace, last: time.Now()}
}

func (p *phases) done(name string) {
	if p.trace == nil {
		return
	}
	now := time.Now()
	p.trace(name, now.Sub(p.last))
	p.last = now
}

// New opens (and creates) the state root.
func New(root string, opts Options) (*Runtime, error) {
	if root == "" {
		return nil, errors.New("runtime: empty root")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o711); err != nil {
		return nil, fmt.Errorf("create root %s: %w", abs, err)
	}
	if opts.NetnsPolicy == "" {
		opts.NetnsPolicy = netns.DefaultPolicy
	}
	if opts.NetnsPoolSize == 0 {
		opts.NetnsPoolSize = 4
	}
	opts.CgroupPoolDir = poolDir(opts.CgroupPoolDir, "FRE_CGPOOL_DIR", cgpool.DefaultStateDir)
	opts.NetnsPoolDir = poolDir(opts.NetnsPoolDir, "FRE_NETNS_POOL_DIR", netns.DefaultPoolDir)
	return &Runtime{Root: abs, Options: opts, taken: make(chan struct{}, 1)}, nil
}

// poolDir is a pool directory's setting, else $env, else def; absolute.
func poolDir(set, env, def string) string {
	if set == "" {
		set = os.Getenv(env)
	}
	if set == "" {
		set = def
	}
	if abs, err := filepath.Abs(set); err == nil {
		return abs
	}
	return set
}

// cgroupPoolOn: the pool's setting, or its default: on for cgroup v1
// (a pooled cgroup is renamed into place), off for v2, where cgroup2
// cannot rename and the pool only has cgroups FRE names itself: in the v2
// guest, fre-runc run with it measured 122 ms against 93 without (a
// cgroup made at create, the init cloned into it), though in-process
// create+start+delete was 2 ms faster with it (make bench-v2's A/B).
func (r *Runtime) cgroupPoolOn() bool {
	if r.Options.CgroupPool != nil {
		return *r.Options.CgroupPool
	}
	return cgroup.Mode() != cgroup.Unified
}

// CgroupPool is the cgroup pool (in Options.CgroupPoolDir), opened on
// first use.
func (r *Runtime) CgroupPool() (*cgpool.Pool, error) {
	if r.cgPool == nil {
		// Under the systemd driver systemd owns the tree and every
		// container's cgroup is its scope's: nothing is pre-created.
		on := r.cgroupPoolOn() && !r.Options.SystemdCgroup
		p, err := cgpool.Open(cgpool.Config{StateDir: r.Options.CgroupPoolDir, Size: r.Options.CgroupPoolSize, Enabled: on, Parents: r.Options.CgroupPoolParents})
		if err != nil {
			return nil, err
		}
		r.cgPool = p
	}
	return r.cgPool, nil
}

// Close releases what the runtime holds open (not the pools' contents).
func (r *Runtime) Close() error {
	var err error
	if r.netPool != nil {
		err = r.netPool.Wait()
	}
	if r.cgPool != nil {
		err = errors.Join(err, r.cgPool.Close())
	}
	r.sdMu.Lock()
	if r.sdConn != nil {
		err = errors.Join(err, r.sdConn.Close())
		r.sdConn = nil
	}
	r.sdMu.Unlock()
	return err
}

// NetnsPool is the pool behind the "pool" policy (in Options.NetnsPoolDir).
func (r *Runtime) NetnsPool() *netns.Pool {
	if r.netPool == nil {
		r.netPool = netns.NewPool(r.Options.NetnsPoolDir, r.Options.NetnsPoolSize)
	}
	return r.netPool
}

// ValidateID checks a container ID as runc does.
func ValidateID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty", ErrInvalidID)
	}
	if len(id) > 1024 {
		return fmt.Errorf("%w: longer than 1024 bytes", ErrInvalidID)
	}
	if id == "." || id == ".." || !idChars(id) {
		return fmt.Errorf("%w: %q", ErrInvalidID, id)
	}
	return nil
}

// idChars: id is made of runc's characters, [\w+\-.] (ASCII letters,
// digits, '_', '+', '-', '.'). A loop, not a regexp: the regexp package's
// set-up cost every fre-runc process about 40 us.
func idChars(id string) bool {
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func (r *Runtime) dir(id string) string { return filepath.Join(r.Root, id) }

// lockDir takes an flock on a container's state directory: exclusive for
// operations that change it, shared for readers.
func lockDir(dir string, exclusive bool) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	if err := flock.Lock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return f, nil
}

// KeepPoolsWarm refills the cgroup pool (every parent it has seen or is
// configured with) and, under the pool policy, the netns pool, until ctx
// ends. A long-lived process (the shim) runs it in the background. The
// cgroup pool is topped up settle after this runtime's creates took from
// it (the creates of a burst should not share the CPU with the refill), and
// every period in case other processes sharing the pool took; between
// those it does nothing, so an idle shim stays idle. filled, if set, runs
// after each refill.
func (r *Runtime) KeepPoolsWarm(ctx context.Context, settle, every time.Duration, filled func()) {
	if r.Options.NetnsPolicy == netns.PolicyPool {
		go r.NetnsPool().Run(ctx)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.taken:
			// Takes during the wait are served by this refill or,
			// having set taken again, by the next one.
			select {
			case <-ctx.Done():
				return
			case <-time.After(settle):
			}
		}
		if p, err := r.CgroupPool(); err == nil {
			p.Fill("", 0)
		}
		if filled != nil {
			filled()
		}
	}
}

// tookFromPool tells KeepPoolsWarm that a create took a pooled cgroup.
func (r *Runtime) tookFromPool() {
	if r.taken == nil {
		return
	}
	select {
	case r.taken <- struct{}{}:
	default:
	}
}
