package runtime

import (
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/netns"
	"github.com/fre-runtime/fre/runtime/spawn"
)

// namespaces is create's namespaces phase: the network namespace the
// policy gives (joined by path, taken from the pool, new, or the host's),
// which namespaces clone makes, which the child unshares or joins, and
// the choices that follow from them (async, a late cgroup claim).
func (j *createJob) namespaces() error {
	cfg, sc, st := j.cfg, j.sc, j.st
	// Network: a path is joined; otherwise the policy decides.
	policy, err := netns.PolicyFromAnnotations(cfg.Annotations, j.r.Options.NetnsPolicy)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	netPath := cfg.Join[specs.NetworkNamespace]
	newNet := false
	if cfg.NetRequested {
		switch policy {
		case netns.PolicyNew:
			newNet = true
		case netns.PolicyPool:
			p, _, err := j.r.NetnsPool().Take()
			if err != nil {
				return fmt.Errorf("netns pool: %w", err)
			}
			netPath = p
			st.NetnsPooled = p
			j.undo = append(j.undo, func() { j.r.NetnsPool().ReleaseNow(p) })
		}
	}
	if !newNet && netPath == "" {
		for k := range cfg.Sysctl {
			if strings.HasPrefix(k, "net.") {
				return fmt.Errorf("%w: linux.sysctl: %q needs a network namespace of the container's own (netns policy %s)", ErrInvalidConfig, k, policy)
			}
		}
	}

	// Namespaces: created by clone, or joined. A joined user namespace
	// must own the new ones, so those are unshared after joining it.
	flags := 0
	for _, t := range cfg.NewNamespaces {
		switch t {
		case specs.CgroupNamespace:
			sc.NewCgroupNS = true // after the cgroup join
		case specs.TimeNamespace:
			// unshared by the child (TimeNS below): clone(2) reads
			// CLONE_NEWTIME's bit as part of the exit signal.
		default:
			flags |= nsTypes[t]
		}
	}
	if newNet {
		flags |= unix.CLONE_NEWNET
	}
	if p, ok := cfg.Join[specs.UserNamespace]; ok {
		sc.Join = append(sc.Join, spawn.Join{Type: unix.CLONE_NEWUSER, Path: p})
		sc.UnshareFlags = flags &^ unix.CLONE_NEWPID
		flags &= unix.CLONE_NEWPID
	} else if flags&unix.CLONE_NEWUSER == 0 {
		// The child makes its namespaces but the pid one (only clone
		// puts a process in a new one): copying our mount table is the
		// costliest part of clone, and the child does it while we work.
		sc.UnshareFlags = flags &^ unix.CLONE_NEWPID
		flags &= unix.CLONE_NEWPID
	}
	sc.CloneFlags = flags
	for t, p := range cfg.Join {
		switch t {
		case specs.UserNamespace:
		case specs.PIDNamespace:
			sc.PidNS = p
		case specs.NetworkNamespace:
			// below, with the pool's
		default:
			sc.Join = append(sc.Join, spawn.Join{Type: nsTypes[t], Path: p})
		}
	}
	if netPath != "" {
		sc.Join = append(sc.Join, spawn.Join{Type: unix.CLONE_NEWNET, Path: netPath})
	}
	j.newUser = cfg.hasNew(specs.UserNamespace)
	sc.UsernsRoot = j.newUser
	// An async create returns right after clone. Without a user namespace
	// (the child then joins by path) and hooks of create (which may look
	// at it), the cgroup is claimed alongside clone, and made ready while
	// the child makes its namespaces and first mounts.
	j.createHooks = hasHooks(cfg.Hooks, prestartHooks) || hasHooks(cfg.Hooks, createContainerHooks)
	j.async = j.opts.Async && !j.opts.Started && !j.createHooks
	_, joinUser := cfg.Join[specs.UserNamespace]
	j.claimLate = !j.newUser && !joinUser && !j.createHooks
	return nil
}
