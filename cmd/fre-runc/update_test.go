package main

import "testing"

// update's memory flags read sizes as runc does (go-units' RAMInBytes).
func TestRAMInBytes(t *testing.T) {
	for in, want := range map[string]int64{"104857600": 100 << 20, "100M": 100 << 20, "100m": 100 << 20, "100MB": 100 << 20,
		"100MiB": 100 << 20, "1.5g": 3 << 29, "512k": 512 << 10, "512 kb": 512 << 10, "7b": 7, "-1": -1, "1t": 1 << 40} {
		if got, err := ramInBytes(in); err != nil || got != want {
			t.Errorf("ramInBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "1x", "-2", "1..5m", ".5m", "5.m", "1mm"} {
		if got, err := ramInBytes(in); err == nil {
			t.Errorf("ramInBytes(%q) = %d, want an error", in, got)
		}
	}
}
