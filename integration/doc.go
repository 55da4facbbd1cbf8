// Package integration runs containerd-shim-fre-v1 under a real, private
// containerd (its own root, state, socket and config) with ctr and the CRI
// API. The tests need root and the binaries `make containerd` builds
// (CONTAINERD_BIN_DIR); without them they skip, except under CI=true where
// they fail.
package integration
