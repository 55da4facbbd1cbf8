package sysmon

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func policy(t *testing.T, tid int) uint32 {
	t.Helper()
	a, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		t.Fatalf("sched_getattr %d: %v", tid, err)
	}
	return a.Policy
}

// Quiet puts one thread, not the main one, in SCHED_BATCH; Normal puts it
// back.
func TestQuietThenNormal(t *testing.T) {
	Quiet()
	mu.Lock()
	q := tid
	mu.Unlock()
	if q == 0 || q == os.Getpid() {
		t.Fatalf("Quiet picked thread %d (main %d)", q, os.Getpid())
	}
	if p := policy(t, q); p != unix.SCHED_BATCH {
		t.Fatalf("thread %d after Quiet: policy %d, want SCHED_BATCH", q, p)
	}
	if p := policy(t, os.Getpid()); p != unix.SCHED_NORMAL {
		t.Fatalf("main thread's policy %d", p)
	}
	Normal()
	if p := policy(t, q); p != unix.SCHED_NORMAL {
		t.Fatalf("thread %d after Normal: policy %d, want SCHED_NORMAL", q, p)
	}
	Normal() // twice is fine
}
