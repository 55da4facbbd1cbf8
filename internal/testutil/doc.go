// Package testutil builds the inputs FRE's tests and benchmarks run
// containers from: a busybox OCI bundle with runc's default spec, and an OCI
// image layout tar of the same rootfs for `ctr images import`.
//
// Everything is made from the host's static busybox (Debian's busybox-static),
// because no registry is reachable from the test machines. The helpers taking
// a testing.TB fail the test on error and register cleanup; the plain
// functions beside them serve programs such as the bench tool.
package testutil
