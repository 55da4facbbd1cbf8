package sysmon

import (
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// idleThreads lists the process's threads at SCHED_IDLE.
func idleThreads(t *testing.T) []int {
	d, err := os.Open("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		t.Fatal(err)
	}
	var idle []int
	for _, n := range names {
		tid, _ := strconv.Atoi(n)
		a, err := unix.SchedGetAttr(tid, 0)
		if err == nil && a.Policy == unix.SCHED_IDLE {
			idle = append(idle, tid)
		}
	}
	return idle
}

func TestQuietThenNormal(t *testing.T) {
	if got := idleThreads(t); len(got) != 0 {
		t.Fatalf("idle threads before Quiet: %v", got)
	}
	Quiet()
	got := idleThreads(t)
	if len(got) != 1 || got[0] == os.Getpid() {
		t.Fatalf("after Quiet: idle threads %v (main %d), want one, not the main thread", got, os.Getpid())
	}
	Normal()
	if got := idleThreads(t); len(got) != 0 {
		t.Fatalf("idle threads after Normal: %v", got)
	}
	Normal() // twice is fine
}
