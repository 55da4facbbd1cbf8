//go:build !failpoints

package task

// failpointsBuilt: this shim has no failpoints (failpoint.go).
const failpointsBuilt = false
