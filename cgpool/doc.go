// Package cgpool keeps idle, pre-created cgroups so that creating a
// container's cgroup is a rename instead of a mkdir in every hierarchy.
//
// Its one job: take cgroup creation and removal off the container start
// path. Creating cgroups under concurrency is slow (the kernel serialises
// them on a global mutex and each v1 hierarchy is one more mkdir), while
// renaming an idle cgroup costs well under a millisecond at any
// concurrency.
//
// # Life of a pooled cgroup
//
// Fill(parent, n) makes idle cgroups named "<parent>/.fre-pool-<slot>" in
// every hierarchy. Slots are numbered 0..slots-1 (the parent's slot count
// lives in StateDir/slots), so a claim renames "slot k" straight away
// instead of listing the parent: a readdir of a cgroupfs directory with a
// thousand children costs more than the claim itself. Each idle cgroup is
// made as ".fre-new-<random>" and renamed into its slot, so a half-made
// one is never seen as idle; the names start with ".fre-" so leak checks
// and people see they are FRE's.
//
// Claim(cgroupsPath) takes an idle cgroup of the path's parent and renames
// it to the requested leaf name, so containerd, kubelet and cAdvisor find
// the container where its cgroupsPath says. The kernel renames only within
// one parent, hence a pool per parent. On a miss (empty pool, a cgroup
// already at that path, any error) it creates the cgroup as New+Create
// would: the pool never makes a create fail. The claimed cgroup exists;
// callers go on with Add and Set.
//
// Which parents are pooled: the hierarchy root, the configured Parents,
// and any parent given to Fill. Another parent (a pod's cgroup, a one-off
// path) gets no idle cgroups: whoever made it (kubelet) must be able to
// remove it once its containers are gone, so Release destroys there.
//
// Release(m) kills whatever is still inside (cgroup.kill on v2, freeze,
// kill, thaw on v1), removes child cgroups, resets every limit to a new
// cgroup's (cgroup.Manager.Reset: memory, swap, cpu, cpuset, pids,
// devices, blkio/io, hugetlb, thawed) and renames it back into the pool;
// above the pool's size, or if anything fails, it removes it.
//
// # Ownership
//
// Idle cgroups outlive the processes that made them, so they must belong
// to something whose removal removes them. fre-runc and the shim keep one
// pool for the host (StateDir DefaultStateDir, whatever the --root): its
// size bounds the idle cgroups of each parent. A pool with a StateDir of
// its own records itself in a host-wide registry (DefaultRegistry:
// owners/<tag> names the StateDir, parents/ every parent a pool used);
// when that StateDir is gone, Fill removes the pool's cgroups in the
// parent it fills and GC in every parent on the host, in claim order and
// with rmdir only, so a cgroup someone uses is never touched
// (owners_linux.go). Entries lists every pool's cgroups on the host with
// their owners (`fre-runc pool status`).
//
// # Concurrency across processes
//
// fre-runc runs as many short processes, so nothing is held in memory.
// Claim takes the parent's lock shared (claims never wait for each
// other), reads the slot count, then tries slots from the one its ticket
// names on: a counter in the shared counters file, so claimers that come
// together start at different slots. Hierarchies are renamed in one fixed order (sorted
// controller names), and the rename in the first hierarchy is the claim:
// when two claimers pick the same idle cgroup, the kernel lets one rename
// succeed and the other gets ENOENT and tries the next slot. Fill and
// Release make idle cgroups visible in the reverse order (first hierarchy
// last), so an idle name in the first hierarchy always exists in all.
// Release takes the lock shared too, once the parent's slot count is the
// pool's size (so any free slot is room): it tries the slot its cgroup was
// claimed from (ClaimSlot, ReleaseAt), then others, and its rename in the
// last hierarchy settles who gets a slot, between two releases as between
// a release and a claim still emptying it (EEXIST: the loser puts back
// what it moved and tries the next). Fill, Drain and a release that must
// set the slot count take the lock alone, so two fills do not overfill
// and stale half-made entries can be swept. (Releases used to take it
// alone always: with hundreds of containers at once, each holder,
// preempted on a crowded CPU, held every other release up.)
//
// Counters (hits, misses, releases, removals, the claim ticket) live in a small file under
// StateDir mapped shared into each process and updated with atomic adds:
// no lock and no read-modify-write on the start path.
//
// # API
//
//	Open(Config) (*Pool, error)
//	(*Pool).Claim(cgroupsPath) (cgroup.Manager, hit bool, error)
//	(*Pool).ClaimSlot(cgroupsPath) (cgroup.Manager, slot int, error)
//	(*Pool).Release(cgroup.Manager) error
//	(*Pool).ReleaseAt(cgroup.Manager, slot int) error
//	(*Pool).ReleaseOnlyAt(cgroup.Manager, ctrls []string, slot int) error
//	(*Pool).Fill(parent string, n int) error   // parent "": all known
//	(*Pool).Drain(parent string) error
//	(*Pool).Status() (Status, error)
//	(*Pool).Entries() ([]Entry, error)     // every pool's, host-wide
//	(*Pool).GC(unknown bool) (GCResult, error)
//
// # Cost
//
// On this kind of host (8 v1 hierarchies) a rename costs 12-40 µs per
// hierarchy against 40-100 µs for a mkdir plus the cpuset copy, so a claim
// is about half a create alone and far better in the tail under
// concurrency (see bench_test.go). The pool cannot make the kernel's
// global cgroup mutex go away: renames take it too.
//
// # cgroup v2
//
// cgroup v2 has no rename (the kernel answers EPERM), so on a unified host
// the pool is off: Claim creates, Release destroys, and Status says why.
package cgpool
