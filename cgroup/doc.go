// Package cgroup manages one container's cgroup on cgroupfs, for both
// cgroup v1 (legacy and hybrid layouts: one directory per controller
// hierarchy) and cgroup v2 (the unified hierarchy).
//
// Its one job is the cgroup side of a container's life: make the
// directories (Create), put the init in them (Add), apply the OCI
// linux.resources (Set), freeze, signal and list what runs inside, report
// statistics and OOM kills, and remove it all (Destroy). The runtime calls
// Create, Add and Set on the start path, so those do no reads they can
// avoid and start no goroutines.
//
// Paths follow the OCI cgroupfs form: "/a/b" is taken below the mount
// point of every hierarchy; a relative "a/b" is also taken below the root
// of every hierarchy (not below the caller's own cgroup, so that a
// runtime started from inside a service's cgroup still puts containers
// where containerd and kubelet expect them).
//
// On a hybrid host (v1 controllers plus an empty cgroup2 mount) the v1
// controllers are used, as runc does. The v1 controllers FRE manages are
// those it applies limits to or reads statistics from: cpu, cpuacct,
// cpuset, memory, devices, freezer, blkio, pids and hugetlb; others
// (net_cls, net_prio, perf_event, rdma, misc, name=systemd) are left to
// the parent cgroup. The container also gets its cgroup in the hybrid
// host's unified hierarchy (HybridDir: no controllers, so no limits), as
// runc does, so that systemd, which tracks a hybrid host's processes
// there, sees them outside the parent's unit ("0::/<path>").
//
// On cgroup v2 the device controller is an eBPF program, not a file: Set
// compiles the device rules into one (package devfilter) and attaches it
// to the cgroup, replacing the one an earlier Set attached (one query on
// an update, none on a cgroup Create just made); Reset detaches it, and it
// goes with the cgroup at Destroy. Invalid rules are ErrInvalidResources.
// In a user namespace, where bpf(2) is refused, the rules are skipped, as
// runc does. Real-time CPU limits do not exist on v2 and make Set fail
// with ErrNotSupported. cgroup v2 cannot rename a cgroup (the kernel
// answers EPERM), so Rename returns ErrNotSupported there.
package cgroup
