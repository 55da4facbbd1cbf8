package task

import (
	"bufio"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// scheduleTrim drops, once the shim has been idle for trimIdle, this
// process's mappings of its own executable's read-only segments (code and
// constants). Starting a Go program this size runs the init code of some
// 400 packages spread over all of its text, and fault-around maps 64 KiB
// around each touched page: nearly the whole binary ends up resident in a
// process that then uses a small part of it, and each burst of work
// (creates, deletes, a pool refill) maps more. The pages are read-only
// views of the file, so dropping them loses nothing: what the shim runs
// next faults back in (a few hundred microseconds on the first call after
// an idle spell), the rest stays in the page cache, reclaimable. Called
// after the work it follows, so the timer only starts when that is done.
func scheduleTrim() {
	trimMu.Lock()
	defer trimMu.Unlock()
	if trimTimer == nil {
		trimTimer = time.AfterFunc(trimIdle, onIdle)
		return
	}
	trimTimer.Reset(trimIdle)
}

const trimIdle = time.Second

func onIdle() {
	restoreGC()
	trimText()
}

// DeferGC turns the garbage collector off while the shim starts: Go's
// start-up and the shim's own leave enough garbage for a collection
// right when containerd's first requests arrive, and a request then waits
// for mark assists and a stop-the-world. A memory limit still bounds the
// heap. The first idle spell (the trim timer), or gcDeferMax after the
// start for a shim that is never idle, turns the collector back on at the
// shim library's setting and returns the start-up's garbage.
func DeferGC() {
	gcDeferred.Store(true)
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(startupMemoryLimit)
	gcDeferOnce.Do(func() { time.AfterFunc(gcDeferMax, restoreGC) })
}

const (
	startupMemoryLimit = 64 << 20
	gcDeferMax         = 5 * time.Second
	shimGCPercent      = 40 // the shim library's (pkg/shim setRuntime)
)

var gcDeferOnce sync.Once

var gcDeferred atomic.Bool

func restoreGC() {
	if !gcDeferred.CompareAndSwap(true, false) {
		return
	}
	debug.SetGCPercent(shimGCPercent)
	debug.SetMemoryLimit(math.MaxInt64)
	debug.FreeOSMemory()
}

// trimAfterGC schedules a trim after every garbage collection: a cycle
// walks every goroutine's stack through the function tables and runs the
// collector's code, mapping megabytes of the binary again, also in an idle
// shim (the shim library forces one every 30 s).
func trimAfterGC() { gcWatch.Do(watchGC) }

var gcWatch sync.Once

func watchGC() {
	type sentinel struct{ _ [16]byte }
	var arm func()
	arm = func() {
		runtime.SetFinalizer(new(sentinel), func(*sentinel) {
			scheduleTrim()
			arm()
		})
	}
	arm()
}

var (
	trimMu    sync.Mutex
	trimTimer *time.Timer
)

func trimText() {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return
	}
	defer f.Close()
	type span struct{ start, end uintptr }
	var spans []span
	var cur *span
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) == 0 {
			continue
		}
		if a, b, ok := strings.Cut(fs[0], "-"); ok && len(fs) >= 5 {
			// start-end perms offset dev inode [path]: a new mapping.
			cur = nil
			if len(fs) < 6 || fs[5] != exe || strings.Contains(fs[1], "w") {
				continue
			}
			start, err1 := strconv.ParseUint(a, 16, 64)
			end, err2 := strconv.ParseUint(b, 16, 64)
			if err1 == nil && err2 == nil && end > start {
				spans = append(spans, span{uintptr(start), uintptr(end)})
				cur = &spans[len(spans)-1]
			}
			continue
		}
		// A page written once (the dynamic loader's relocations, then
		// made read-only: RELRO) is anonymous now; dropping it would
		// bring the file's unrelocated bytes back. Such mappings stay.
		if cur != nil && fs[0] == "Anonymous:" && fs[1] != "0" {
			cur.start, cur.end = 0, 0
		}
	}
	for _, s := range spans {
		if s.end > s.start {
			unix.Syscall(unix.SYS_MADVISE, s.start, s.end-s.start, unix.MADV_DONTNEED)
		}
	}
}
