package cgroup

import "math"

// SharesToWeight converts v1 cpu.shares [2, 262144] to v2 cpu.weight
// [1, 10000] with the curve runc 1.3 and crun 1.23 adopted: it maps the
// defaults onto each other (1024 -> 100), which the older linear formula
// (1024 -> 39) did not. 0 means "not set" and stays 0.
func SharesToWeight(shares uint64) uint64 {
	if shares == 0 {
		return 0
	}
	if shares < 2 {
		shares = 2
	}
	if shares >= 262144 {
		return 10000
	}
	l := math.Log2(float64(shares))
	// Chosen so that 2 -> 1, 1024 -> 100 and 262144 -> 10000.
	w := math.Ceil(math.Pow(10, (l*l+125*l)/612.0-7.0/34.0))
	return uint64(min(max(w, 1), 10000))
}

// SwapToV2 converts OCI memory.swap (memory+swap, the v1 meaning) to
// memory.swap.max (swap alone). It answers the value to write, -1 for
// "max", or ok=false when nothing is to be written.
func SwapToV2(swap, limit int64) (v int64, ok bool, err error) {
	switch {
	case swap == 0 && limit == -1:
		// As on v1: unlimited memory with swap unset means both unlimited.
		return -1, true, nil
	case swap == 0:
		return 0, false, nil
	case swap == -1:
		return -1, true, nil
	case limit == 0 || limit == -1:
		return 0, false, ErrInvalidResources // swap limit without a memory limit
	case swap < limit:
		return 0, false, ErrInvalidResources // memory+swap below memory
	}
	return swap - limit, true, nil
}

// BlkioWeightToIOWeight converts v1 blkio.weight [10, 1000] to v2
// io.weight [1, 10000] (runc's linear mapping).
func BlkioWeightToIOWeight(w uint64) uint64 {
	if w == 0 {
		return 0
	}
	if w < 10 {
		w = 10
	}
	return 1 + (w-10)*9999/990
}
