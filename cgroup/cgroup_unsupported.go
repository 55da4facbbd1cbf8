//go:build !linux

package cgroup

// New is not supported off Linux.
func New(cgroupsPath string) (Manager, error) { return nil, ErrNotSupported }

// NewV2 is not supported off Linux.
func NewV2(mountpoint, cgroupsPath string) (Manager, error) { return nil, ErrNotSupported }

// Load is not supported off Linux.
func Load(paths map[string]string) (Manager, error) { return nil, ErrNotSupported }

// Mode is Unavailable off Linux.
func Mode() CgroupMode { return Unavailable }

// UnifiedMountpoint is empty off Linux.
func UnifiedMountpoint() string { return "" }

// HybridDir is empty off Linux.
func HybridDir(cgroupsPath string) string { return "" }

// MakeHybrid is not supported off Linux.
func MakeHybrid(dir string) (bool, error) { return false, ErrNotSupported }

// RemoveHybrid does nothing off Linux.
func RemoveHybrid(dir string) error { return nil }

// JoinHybrid is not supported off Linux.
func JoinHybrid(dir string, pid int) error { return ErrNotSupported }
