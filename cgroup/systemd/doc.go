// Package systemd is the systemd side of FRE's systemd cgroup driver
// (runc's --systemd-cgroup, containerd's SystemdCgroup = true): a
// container's cgroup is a transient scope unit that systemd makes, over
// D-Bus, in a slice, and the limits systemd knows are unit properties.
//
// Its one job is what runc's systemd driver asks of systemd: where a
// container's unit and cgroup are (ParseCgroupsPath, ExpandSlice), which
// unit properties its resources become (Properties), and starting,
// updating and stopping the unit (Conn). What systemd has no property
// for, the caller writes to the cgroup's files as with cgroupfs (package
// cgroup); on cgroup v2 FRE's own device filter stays authoritative.
//
// The behaviour follows runc's (libcontainer/cgroups/systemd in 1.1,
// github.com/opencontainers/cgroups/systemd from 1.3); where runc 1.1.5
// and the later runc differ, the later is followed and the comment says
// so. Two differences are FRE's own: the resource properties go with the
// unit's start (runc starts the unit, then sets them in a second call),
// and one D-Bus connection carries both calls and job signals (see Conn).
package systemd
