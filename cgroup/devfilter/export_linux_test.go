package devfilter

import "testing"

// For the tests of package devfilter_test.
var (
	Cgroup2  = cgroup2
	RunIn    = inCgroup
	OpenDir  = openCgroup
	Programs = progs
)

func Expect(t *testing.T, got, want map[string]string) { t.Helper(); expect(t, got, want) }
