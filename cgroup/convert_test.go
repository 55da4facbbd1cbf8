package cgroup

import (
	"errors"
	"testing"
)

func TestSharesToWeight(t *testing.T) {
	for _, c := range []struct{ shares, weight uint64 }{
		{0, 0}, {2, 1}, {1024, 100}, {262144, 10000}, {1 << 20, 10000},
		{512, 59}, {2048, 174}, // monotonic around the default
	} {
		if got := SharesToWeight(c.shares); got != c.weight {
			t.Errorf("SharesToWeight(%d) = %d, want %d", c.shares, got, c.weight)
		}
	}
	prev := uint64(0)
	for s := uint64(2); s <= 262144; s += 97 {
		w := SharesToWeight(s)
		if w < prev || w < 1 || w > 10000 {
			t.Fatalf("SharesToWeight(%d) = %d after %d: not monotonic in [1,10000]", s, w, prev)
		}
		prev = w
	}
}

func TestSwapToV2(t *testing.T) {
	for _, c := range []struct {
		swap, limit int64
		v           int64
		ok          bool
		err         bool
	}{
		{0, 0, 0, false, false},      // nothing asked
		{0, 100, 0, false, false},    // limit only: swap untouched
		{0, -1, -1, true, false},     // unlimited memory: unlimited swap
		{-1, 100, -1, true, false},   // unlimited swap
		{300, 100, 200, true, false}, // memory+swap 300 = 100 + 200 swap
		{100, 100, 0, true, false},   // no swap at all
		{50, 100, 0, false, true},    // memory+swap below memory
		{300, 0, 0, false, true},     // swap without memory limit
		{300, -1, 0, false, true},    // swap with unlimited memory
	} {
		v, ok, err := SwapToV2(c.swap, c.limit)
		if v != c.v || ok != c.ok || (err != nil) != c.err {
			t.Errorf("SwapToV2(%d, %d) = %d, %v, %v; want %d, %v, err=%v", c.swap, c.limit, v, ok, err, c.v, c.ok, c.err)
		}
		if err != nil && !errors.Is(err, ErrInvalidResources) {
			t.Errorf("SwapToV2(%d, %d) error %v is not ErrInvalidResources", c.swap, c.limit, err)
		}
	}
}

func TestBlkioWeightToIOWeight(t *testing.T) {
	for _, c := range []struct{ in, out uint64 }{{0, 0}, {10, 1}, {500, 4950}, {1000, 10000}} {
		if got := BlkioWeightToIOWeight(c.in); got != c.out {
			t.Errorf("BlkioWeightToIOWeight(%d) = %d, want %d", c.in, got, c.out)
		}
	}
}
