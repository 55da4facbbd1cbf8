package task

import (
	"math"
	"os"
	"os/user"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// exeRssKB sums Rss over this process's read-only mappings of its
// executable.
func exeRssKB(t *testing.T) int {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	total, in := 0, false
	for _, l := range strings.Split(string(b), "\n") {
		fs := strings.Fields(l)
		if len(fs) >= 6 && strings.Contains(fs[0], "-") {
			in = fs[5] == exe && !strings.Contains(fs[1], "w")
			continue
		}
		if in && len(fs) >= 2 && fs[0] == "Rss:" {
			n, _ := strconv.Atoi(fs[1])
			total += n
		}
	}
	return total
}

func TestTrimTextDropsMappedCode(t *testing.T) {
	before := exeRssKB(t)
	trimText()
	after := exeRssKB(t)
	// What runs after the trim (this test, the runtime) faults back in;
	// the rest must be gone.
	if after >= before {
		t.Fatalf("resident code and constants: %d kB before the trim, %d kB after", before, after)
	}
	t.Logf("resident code and constants: %d kB before the trim, %d kB after", before, after)
	// Pages the dynamic loader relocated (RELRO) must have stayed: new
	// threads (pthread_create through the GOT, in a cgo binary) still
	// start, and libc still answers.
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			unix.Nanosleep(&unix.Timespec{Nsec: 20e6}, nil)
		}()
	}
	wg.Wait()
	if _, err := user.LookupId("0"); err != nil {
		t.Fatal(err)
	}
}

// DeferGC turns the collector off under a memory limit; restoreGC (the
// first idle spell) turns it back on at the shim library's percent, once.
func TestDeferGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev); debug.SetMemoryLimit(math.MaxInt64) })
	DeferGC()
	if p := debug.SetGCPercent(-1); p != -1 {
		t.Fatalf("GC percent %d after DeferGC, want -1 (off)", p)
	}
	if l := debug.SetMemoryLimit(-1); l != startupMemoryLimit {
		t.Fatalf("memory limit %d after DeferGC, want %d", l, startupMemoryLimit)
	}
	restoreGC()
	if p := debug.SetGCPercent(-1); p != shimGCPercent {
		t.Fatalf("GC percent %d after restoreGC, want %d", p, shimGCPercent)
	}
	debug.SetGCPercent(7)
	restoreGC() // once only: a later idle spell leaves the setting alone
	if p := debug.SetGCPercent(-1); p != 7 {
		t.Fatalf("a second restoreGC changed the GC percent to %d", p)
	}
}
