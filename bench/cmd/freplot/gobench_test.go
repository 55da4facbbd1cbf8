package main

import (
	"math"
	"strings"
	"testing"
)

const sample = `== go test -bench ./cgpool/ (benchtime 1x)
goos: linux
pkg: github.com/fre-runtime/fre/cgpool
BenchmarkCgroupCreate/c=16-2 	       1	   4893602 ns/op	         0.5892 ms/op	         0.5185 p50-ms	         1.095 p99-ms	   30656 B/op	     637 allocs/op
BenchmarkCgroupPoolClaim/c=16-2       	       1	   1917157 ns/op	         0.3818 ms/op	         0.2373 p50-ms	         1.006 p99-ms	   87640 B/op	    1216 allocs/op
BenchmarkCgroupPoolClaim/c=16-2       	       1	   1917157 ns/op	         0.1818 ms/op	         0.4373 p50-ms	         1.006 p99-ms	   87640 B/op	    1216 allocs/op
PASS
BenchmarkFigure1/c=512/ipc+mnt+pid+uts+user+new-netns-2            	       1	 737935197 ns/op	      2997 batch-ms	       511.5 p50-ms/op	      2856 p99-ms/op	  207952 B/op	    4099 allocs/op
--- FAIL: BenchmarkFigure1/c=1024/ipc+mnt+pid+uts+user+pooled-netns
    bench_test.go:90: netns: publish: no such file or directory
--- FAIL: BenchmarkFigure1
FAIL
`

func TestParseBench(t *testing.T) {
	res, fails, err := parseBench(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 {
		t.Fatalf("got %d results, want 3: %+v", len(res), res)
	}
	fig2 := cgroupFigure(res, fails)
	reuse, ok := fig2.get(fig2Reuse, 16)
	if !ok || !near(reuse.p50, 0.3373) || !near(reuse.mean, 0.2818) || reuse.p99 != 1.006 {
		t.Errorf("reuse at 16 (two runs averaged) = %+v, %v", reuse, ok)
	}
	fig1 := netnsFigure(res, fails)
	nn, ok := fig1.get("ipc+mnt+pid+uts+user+new-netns", 512)
	if !ok || nn.p50 != 511.5 || !near(nn.mean, 737.935197) || nn.batch != 2997 {
		t.Errorf("new-netns at 512 = %+v, %v", nn, ok)
	}
	x, ok := fig1.failed("ipc+mnt+pid+uts+user+pooled-netns", 1024)
	if !ok || x.verdict != "FAIL" || !strings.Contains(x.msg, "publish") {
		t.Errorf("failure = %+v, %v", x, ok)
	}
	if len(fig1.variants) != 2 {
		t.Errorf("fig1 variants = %v (the failed one belongs in the legend too)", fig1.variants)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
