//go:build failpoints

package task

const failpointsBuilt = true
