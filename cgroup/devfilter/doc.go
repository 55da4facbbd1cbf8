// Package devfilter enforces OCI device rules (linux.resources.devices) on
// cgroup v2, where the device controller is an eBPF program of type
// BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup, not a file.
//
// Compile turns the rules into eBPF instructions, assembled here (no eBPF
// library), Load loads them, and Apply, ApplyNew and Remove attach and
// detach FRE's program on a cgroup directory. FRE's program is the one
// named "fre_devices"; programs of others on the same cgroup are left
// alone (the kernel runs them all: a request passes only if each allows
// it).
//
// # Rules
//
// Rules are taken in order and the last rule that matches a request
// decides; a request no rule matches is denied. A rule matches when its
// type ("a" or empty: block and char), major and minor (nil or negative:
// any) are the device's and
//   - an allow rule grants every access bit asked (r, w, m; empty: rwm):
//     opening read-write needs one rule that grants both, as on cgroup v1;
//   - a deny rule names at least one access bit asked, so "deny c 1:3 w"
//     also refuses opening c 1:3 read-write.
//
// A request asking no access bit (the kernel asks so for permission checks
// other than read, write and mknod) is matched on the device alone.
//
// For the lists runtimes write (a leading "a *:* rwm" deny then allowed
// devices, or a leading allow then denied ones) this is what runc does.
// It differs from runc, whose rules emulate cgroup v1's, in that:
//   - a deny after a wider allow punches a hole in it ("allow c 1:* rwm",
//     "deny c 1:5 rwm"), which runc refuses, and a deny of a wider range
//     covers an earlier narrower allow, which runc keeps;
//   - access bits granted by two rules for the same device do not add up:
//     after "allow c 1:3 r" and "allow c 1:3 w" opening read-write is
//     denied (runc merges them);
//   - an "a" rule with numbers or some access is taken as written, where
//     runc takes any "a" rule as every device with every access;
//   - after a leading allow, "deny c 1:3 w" also refuses read-write opens,
//     which runc's program lets through.
//
// # Start path
//
// ApplyNew, for a cgroup made just now, is one compile, one load and one
// attach. Apply, for an existing cgroup (an update), first queries the
// cgroup's programs and replaces FRE's atomically (BPF_F_REPLACE), so the
// cgroup is never without a filter nor with two of FRE's; a kernel before
// 5.6 gets the new filter attached before the old one is detached.
package devfilter
