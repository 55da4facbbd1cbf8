// Command frebench measures FRE's start path against runc and crun on the
// same machine, in one run, and writes its figures under results/.
//
// Scenarios are subcommands; each is a function over the same set of
// runtimes, so later issues add theirs (exec latency, memory PSS, ctr run
// latency) beside these:
//
//	frebench [flags] sequential   N sequential `run` of a busybox /bin/true bundle
//	frebench [flags] concurrent   C containers started at once, each with a
//	                              cgroupsPath and a memory limit
//	frebench [flags] memory       5 language images x 5 containers: memory
//	                              (PSS + page cache) on the host, under runc
//	                              and under fre-runc's shared store; store
//	                              size and import time (memory*.go)
//	frebench [flags] memory-templates
//	                              the same on FRE function images built from
//	                              templates (fre build), fre-runc on the
//	                              images' trees vs the host (memory_templates.go)
//	frebench [flags] shim         containerd-shim-fre-v1 vs containerd's runc
//	                              shim on a private containerd: ctr run --rm
//	                              latency, shim PSS per container, Create+Start
//	                              inside the shim (shim.go)
//	frebench [flags] images       the memory scenario's apps as Docker-Hub-style
//	                              images and as FRE function images (fre
//	                              build): sizes, build times (figure 11)
//	frebench [flags] engine       request to response through FRE's engine
//	                              (fre serve's): Python and Node.js HTTP
//	                              functions, cold (sequential, 256 at once)
//	                              and warm, fre shim vs runc shim (engine.go)
//	frebench [flags] all          every scenario above
//
// crun refuses this machine's hybrid cgroup layout, so its runs happen in a
// worker (this binary, re-executed) inside a private mount namespace with
// cgroup2 mounted on /sys/fs/cgroup and crun's cgroup manager disabled; the
// worker times each run itself, so the figures exclude the round trip.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

type options struct {
	binDir      string
	workDir     string
	results     string
	n           int
	warmup      int
	concurrency int
	runtimes    []string
	memLimit    int64
	keep        bool
	memPer      int    // memory: containers per image
	store       string // memory: fre-runc's store (default: a temp dir)
	memDir      string // memory: where images and bundles go (disk, not tmpfs)
	// systemd: every runtime's systemd cgroup driver (a systemd host):
	// each container's cgroup is a transient scope made over D-Bus.
	systemd bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == workerArg {
		os.Exit(workerMain(os.Args[2:]))
	}
	var o options
	var runtimes string
	flag.StringVar(&o.binDir, "bin-dir", "bin", "directory holding fre-runc")
	flag.StringVar(&o.workDir, "work-dir", "/dev/shm", "where bundles and state roots go (a tmpfs, as /run usually is)")
	flag.StringVar(&o.results, "results", "results", "directory for CSV results")
	flag.IntVar(&o.n, "n", 100, "sequential runs per runtime")
	flag.IntVar(&o.warmup, "warmup", 3, "untimed runs per runtime before timing")
	flag.IntVar(&o.concurrency, "concurrency", 256, "containers started at once (concurrent)")
	flag.StringVar(&runtimes, "runtimes", "fre-runc,fre-runc-shared,runc,crun", "runtimes to compare, comma-separated")
	flag.Int64Var(&o.memLimit, "memory-limit", 64<<20, "memory limit in bytes per container (concurrent)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary bundles and state dirs")
	flag.IntVar(&o.memPer, "mem-per", 5, "containers per image (memory)")
	flag.StringVar(&o.memDir, "mem-dir", "/var/tmp", "directory for the memory scenario's images and bundles (a disk, not tmpfs)")
	flag.BoolVar(&o.systemd, "systemd-cgroup", false, "every runtime with its systemd cgroup driver (fre-runc and runc --systemd-cgroup, crun --cgroup-manager=systemd); needs systemd as PID 1")
	flag.StringVar(&o.store, "store", "", "fre-runc store directory for memory (default: a temporary one)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: frebench [flags] sequential|exec|concurrent|memory|memory-templates|shim|images|engine|all\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	o.runtimes = strings.Split(runtimes, ",")
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "frebench: must run as root")
		os.Exit(1)
	}
	scenarios := map[string][]func(*env) error{
		"sequential": {sequential},
		"exec":       {execLatency},
		"concurrent": {concurrent},
		"memory":     {memory},
		// The memory scenario on FRE function images (fre build).
		"memory-templates": {memoryTemplates},
		"shim":             {shimScenario},
		"images":           {images},
		"engine":           {engineScenario},
		// memory last: it writes some 12 GiB of image copies, and the
		// disk's write-back after it slowed the shim's figures by half.
		"all": {sequential, execLatency, concurrent, shimScenario, engineScenario, images, memoryTemplates, memory},
	}
	run, ok := scenarios[flag.Arg(0)]
	if !ok {
		flag.Usage()
		os.Exit(2)
	}
	e, err := newEnv(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "frebench:", err)
		os.Exit(1)
	}
	defer e.close()
	for _, s := range run {
		if err := s(e); err != nil {
			fmt.Fprintln(os.Stderr, "frebench:", err)
			e.close()
			os.Exit(1)
		}
	}
}
