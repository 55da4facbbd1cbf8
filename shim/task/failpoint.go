package task

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// FailpointEnv names a file that arms the shim's failpoints, in a build
// with the tag failpoints only (failpoint_on.go): the fault tests' kill -9
// of the shim (and of containerd) at a named RPC. The file holds one line,
//
//	<point> <action> [n]
//
// point: a Task RPC ("Create", "Start", "Delete", ...) or "bootstrap" (the
// start command); action: kill-before or kill-after (SIGKILL the shim
// before the handler runs or after it returned, before containerd has its
// reply), block-before or block-after (create <file>.blocked and wait
// until it is removed: containerd can be killed meanwhile); n: the nth
// call of point in this process (1 when absent). The file is read at
// every call, so a test arms a running shim by writing it; a point
// reached writes <file>.fired.
const FailpointEnv = "FRE_SHIM_FAILPOINT"

var failpointCalls = struct {
	sync.Mutex
	n map[string]int
}{n: map[string]int{}}

// Failpoint runs point's before-failpoint and returns its after-failpoint
// (to run once the handler returned), both of this call: n counts the
// calls of point as they begin, whenever each ends. A shim built without
// the tag failpoints compiles them to nothing.
func Failpoint(point string) (after func()) {
	if !failpointsBuilt {
		return func() {}
	}
	file := os.Getenv(FailpointEnv)
	if file == "" {
		return func() {}
	}
	failpointCalls.Lock()
	failpointCalls.n[point]++
	n := failpointCalls.n[point]
	failpointCalls.Unlock()
	failpointAt(file, point, n, "before")
	return func() { failpointAt(file, point, n, "after") }
}

func failpointAt(file, point string, n int, when string) {
	b, err := os.ReadFile(file)
	if err != nil {
		return
	}
	f := strings.Fields(string(b))
	if len(f) < 2 || f[0] != point {
		return
	}
	want := 1
	if len(f) > 2 {
		want, _ = strconv.Atoi(f[2])
	}
	if n != want || (f[1] != "kill-"+when && f[1] != "block-"+when) {
		return
	}
	// The test's proof that the point was reached.
	os.WriteFile(file+".fired", []byte(strings.Join(f, " ")), 0o644)
	if f[1] == "kill-"+when {
		unix.Kill(unix.Getpid(), unix.SIGKILL)
		select {} // the signal is on its way
	}
	blocked := file + ".blocked"
	if err := os.WriteFile(blocked, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return
	}
	for {
		if _, err := os.Stat(blocked); os.IsNotExist(err) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
