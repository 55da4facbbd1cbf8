package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/contract"
)

// A function instance (research 4.1.3, 4.1.4) has two writable things of
// its own: its tenant's workDir, which every instance of the tenant shares
// and which outlives them, and a channel, a directory of its own on the
// host in which it listens on a Unix socket (fn.sock) that the engine
// connects to. The annotations below ask for them; fre-runc, the shim and
// CRI all pass annotations through, so all three have them.
//
// The annotations are trusted input, as the spec's mounts are: whoever
// writes the spec picks the tenant. Under CRI only the annotations a
// runtime handler's pod_annotations lists reach the spec; list these only
// where the pod's author may choose its tenant.
const (
	// AnnotationTenant names the tenant (a plain name: lower-case
	// letters, digits, '.', '_', '-', at most 64, not starting with '.'):
	// <TenantRoot>/<tenant> is bound read-write at the workDir.
	AnnotationTenant = "run.fre.tenant"
	// AnnotationWorkDir is the workDir's path in the container (default
	// /work): clean, absolute, not "/".
	AnnotationWorkDir = "run.fre.workdir"
	// AnnotationTenantSize limits the tenant's directory (bytes, or with
	// a suffix k, M, G, Ki, Mi, Gi) by a project quota of its file
	// system; refused where the file system has none turned on.
	AnnotationTenantSize = "run.fre.tenant.size"
	// AnnotationChannel asks for a channel: "true" names it after the
	// container, any other value is its name (as a container ID). The
	// directory <ChannelRoot>/<name> is made at create (a name in use is
	// refused), bound at ChannelMount and removed at delete.
	AnnotationChannel = "run.fre.channel"

	// DefaultTenantRoot and DefaultChannelRoot are where tenants'
	// directories and instances' channels live by default;
	// ChannelMount is the channel's path in the container, and
	// ChannelSocket the socket the function listens on there
	// (package contract).
	DefaultTenantRoot  = contract.DefaultTenantRoot
	DefaultChannelRoot = contract.DefaultChannelRoot
	ChannelMount       = contract.ChannelMount
	ChannelSocket      = contract.Socket
	// DefaultWorkDir is the workDir without AnnotationWorkDir.
	DefaultWorkDir = contract.DefaultWorkDir
)

// TenantRoot is the directory of tenants' workDirs: the option, else
// $FRE_TENANT_ROOT, else DefaultTenantRoot.
func (r *Runtime) TenantRoot() string { return contract.TenantRoot(r.Options.TenantRoot) }

// ChannelRoot is the directory of instances' channels: the option, else
// $FRE_CHANNEL_ROOT, else DefaultChannelRoot.
func (r *Runtime) ChannelRoot() string { return contract.ChannelRoot(r.Options.ChannelRoot) }

// ValidTenant checks a tenant name: a plain name, never a path.
func ValidTenant(name string) error {
	if err := contract.ValidName(name); err != nil {
		return fmt.Errorf("%w: tenant %v", ErrInvalidConfig, err)
	}
	return nil
}

// instance adds the tenant's workDir and the channel the annotations ask
// for to the container's mounts (a phase of create, after the claim on
// the ID). The channel is undone with a failed create.
func (j *createJob) instance() error {
	cfg := j.cfg
	a := cfg.Annotations
	tenant, hasTenant := a[AnnotationTenant]
	if !hasTenant {
		for _, k := range []string{AnnotationWorkDir, AnnotationTenantSize} {
			if _, ok := a[k]; ok {
				return fmt.Errorf("%w: annotation %s without %s", ErrInvalidConfig, k, AnnotationTenant)
			}
		}
	} else {
		m, err := j.r.tenantMount(cfg, tenant, a[AnnotationWorkDir], a[AnnotationTenantSize])
		if err != nil {
			return err
		}
		cfg.Mounts = append(cfg.Mounts, m)
		j.st.Tenant = tenant
	}
	if name, ok := a[AnnotationChannel]; ok {
		if name == "true" {
			name = j.opts.ID
		}
		if err := ValidateID(name); err != nil {
			return fmt.Errorf("%w: annotation %s: %v", ErrInvalidConfig, AnnotationChannel, err)
		}
		dir, err := j.r.makeChannel(cfg, name)
		if err != nil {
			return err
		}
		j.undo = append(j.undo, func() { os.RemoveAll(dir) })
		cfg.Mounts = append(cfg.Mounts, Mount{Source: dir, Destination: ChannelMount, Type: "bind",
			Flags: unix.MS_BIND | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, Bind: true})
		j.st.Channel = dir
	}
	return nil
}

// tenantMount makes (once) the tenant's directory, owned by the
// container's user, applies its size limit and returns its bind mount.
func (r *Runtime) tenantMount(cfg *Config, tenant, workDir, size string) (Mount, error) {
	if err := ValidTenant(tenant); err != nil {
		return Mount{}, err
	}
	if workDir == "" {
		workDir = DefaultWorkDir
	}
	if !filepath.IsAbs(workDir) || filepath.Clean(workDir) != workDir || workDir == "/" {
		return Mount{}, fmt.Errorf("%w: annotation %s: %q: want a clean absolute path other than /", ErrInvalidConfig, AnnotationWorkDir, workDir)
	}
	if workDir == ChannelMount || strings.HasPrefix(ChannelMount, workDir+"/") || strings.HasPrefix(workDir, ChannelMount+"/") {
		return Mount{}, fmt.Errorf("%w: annotation %s: %q overlaps the channel's %s", ErrInvalidConfig, AnnotationWorkDir, workDir, ChannelMount)
	}
	var limit int64
	if size != "" {
		var err error
		if limit, err = ParseSize(size); err != nil || limit <= 0 {
			return Mount{}, fmt.Errorf("%w: annotation %s: %q: want a positive size such as 100Mi", ErrInvalidConfig, AnnotationTenantSize, size)
		}
	}
	root, err := realDir(r.TenantRoot(), 0o711)
	if err != nil {
		return Mount{}, fmt.Errorf("tenant root: %w", err)
	}
	dir := filepath.Join(root, tenant)
	uid, gid := hostIDs(cfg)
	switch err := os.Mkdir(dir, 0o770); {
	case err == nil:
		if err := os.Lchown(dir, int(uid), int(gid)); err != nil {
			os.Remove(dir)
			return Mount{}, fmt.Errorf("tenant %s: %w", tenant, err)
		}
	case !errors.Is(err, os.ErrExist):
		return Mount{}, fmt.Errorf("tenant %s: %w", tenant, err)
	}
	// Only root writes the tenant root, but it may have been tampered
	// with: the bind's source is a directory, never a link out of it.
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		return Mount{}, fmt.Errorf("%w: tenant %s: %s is not a directory", ErrInvalidConfig, tenant, dir)
	}
	if limit > 0 {
		if err := setProjectQuota(dir, tenant, limit); err != nil {
			return Mount{}, fmt.Errorf("tenant %s: size %s: %w", tenant, size, err)
		}
	}
	return Mount{Source: dir, Destination: workDir, Type: "bind",
		Flags: unix.MS_BIND | unix.MS_NOSUID | unix.MS_NODEV, Bind: true}, nil
}

// makeChannel makes the instance's channel directory, owned by the
// container's user so that it can make its socket there.
func (r *Runtime) makeChannel(cfg *Config, name string) (string, error) {
	root, err := realDir(r.ChannelRoot(), 0o711)
	if err != nil {
		return "", fmt.Errorf("channel root: %w", err)
	}
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o770); err != nil {
		if errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("%w: channel %s is in use (%s)", ErrExist, name, dir)
		}
		return "", fmt.Errorf("channel %s: %w", name, err)
	}
	uid, gid := hostIDs(cfg)
	if err := os.Lchown(dir, int(uid), int(gid)); err != nil {
		os.Remove(dir)
		return "", fmt.Errorf("channel %s: %w", name, err)
	}
	return dir, nil
}

// realDir makes dir (and its parents) and returns it with its symlinks
// resolved (the administrator's, once: what is below it is checked
// entry by entry).
func realDir(dir string, mode os.FileMode) (string, error) {
	if err := os.MkdirAll(dir, mode); err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(dir)
}

// hostIDs are the container user's uid and gid on the host.
func hostIDs(cfg *Config) (uint32, uint32) {
	uid, gid := cfg.Process.UID, cfg.Process.GID
	return mapID(cfg.UIDMappings, uid), mapID(cfg.GIDMappings, gid)
}

func mapID(maps []specs.LinuxIDMapping, id uint32) uint32 {
	if len(maps) == 0 {
		return id
	}
	for _, m := range maps {
		if id >= m.ContainerID && id-m.ContainerID < m.Size {
			return m.HostID + id - m.ContainerID
		}
	}
	return 65534 // unmapped: nobody's
}

// ParseSize reads 100, 100k, 100M, 1G, 100Ki, 100Mi, 1Gi.
func ParseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

// removeChannel removes a deleted container's channel.
func (c *Container) removeChannel() error {
	if dir := c.state.Channel; dir != "" {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove channel: %w", err)
		}
	}
	return nil
}
