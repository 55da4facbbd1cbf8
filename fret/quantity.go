package fret

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// minMemory is the smallest memory limit a template may set: below it no
// language runtime starts, and the kernel's own minimum is a few pages.
const minMemory = 4 << 20

// ParseBytes reads a memory size: a number of bytes, or one with a binary
// (Ki, Mi, Gi, Ti) or decimal (k or K, M, G, T) suffix, as Kubernetes
// writes them ("128Mi", "1G").
func ParseBytes(s string) (int64, error) {
	num, mult := s, float64(1)
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
		{"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}} {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" || strings.ContainsAny(num, "eE+-") || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is not a size (bytes, or a number with Ki, Mi, Gi, Ti, K, M, G or T)", s)
	}
	b := v * mult
	if b > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	if b < minMemory {
		return 0, fmt.Errorf("%q is below the smallest limit, %d MiB", s, minMemory>>20)
	}
	return int64(b), nil
}

// maxCPUs bounds a CPU limit.
const maxCPUs = 1024

// ParseCPU reads a CPU limit in CPUs ("0.5", "2") or millicpus ("500m")
// and returns millicpus.
func ParseCPU(s string) (int64, error) {
	num, mult := s, 1000.0
	if strings.HasSuffix(s, "m") {
		num, mult = strings.TrimSuffix(s, "m"), 1
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" || strings.ContainsAny(num, "eE+-") || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is not a CPU limit (CPUs, e.g. 0.5, or millicpus, e.g. 500m)", s)
	}
	m := v * mult
	if m < 1 {
		return 0, fmt.Errorf("%q is below 1m", s)
	}
	if m > maxCPUs*1000 {
		return 0, fmt.Errorf("%q is more than %d CPUs", s, maxCPUs)
	}
	return int64(m), nil
}
