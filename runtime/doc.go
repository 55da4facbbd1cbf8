// Package runtime is FRE's container runtime library: it turns an OCI
// bundle into a running container and manages its life (create, start,
// state, kill, delete). Both fre-runc and containerd-shim-fre-v1 use it.
//
// The spec is converted once into a Config (specconv.go); the library never
// reads the spec again. The start path (create.go) reads top to bottom:
// load → convert → state dir → cgroup → netns → plan → clone (spawn) →
// maps, cgroup join, limits → release → wait until set up → save state.
// The child side of clone is the C plan executor in runtime/spawn.
package runtime
