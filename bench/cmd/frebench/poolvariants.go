package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fre-runtime/fre/cgroup"
)

// fre-runc's cgroup pool is measured on and off in the concurrent
// scenario: each is fre-runc with its own --root and a --config file
// written here ({"cgroupPool": true|false}, on top of -fre-config if
// given), so the host's /etc/fre/config.json plays no part. The pool-on
// run starts with the pool filled for every container (`pool fill`,
// untimed) and ends with `pool drain`, so no idle cgroup is left behind.
var (
	freCgroupPool = flag.String("fre-cgroup-pool", "on,off",
		`fre-runc variants of the concurrent scenario: "on", "off" or both; "" runs fre-runc as configured on the host`)
	freConfig = flag.String("fre-config", "",
		"base fre-runc config file (JSON) for the pool variants; cgroupPool and cgroupPoolSize are set per variant")
)

// concurrentBench is one runtime of the concurrent scenario, with what must
// happen around its timed run.
type concurrentBench struct {
	*bench
	prepare func() error // before the timed run
	finish  func() error // after it, containers deleted
}

// concurrentBenches returns e.benches with fre-runc replaced by its pool
// variants. parent is the cgroup (from the root of the hierarchy) under
// which the containers' cgroupsPaths are.
func concurrentBenches(e *env, parent string) ([]concurrentBench, error) {
	var out []concurrentBench
	for _, b := range e.benches {
		l, isLocal := b.r.(*local)
		if b.name == "fre-runc-nopool" {
			continue // the concurrent scenario makes its own pool-off variant
		}
		if b.name != "fre-runc" || *freCgroupPool == "" || !isLocal {
			out = append(out, concurrentBench{bench: b})
			continue
		}
		for _, v := range strings.Split(*freCgroupPool, ",") {
			v = strings.TrimSpace(v)
			if v == "on" && cgroup.Mode() == cgroup.Unified {
				// cgroup2 cannot rename: a pool cannot hand out a cgroup
				// at a cgroupsPath it did not make (fre-runc pool says so).
				fmt.Println("fre-runc-pool: not run: the cgroup pool is off on cgroup v2 (no rename)")
				continue
			}
			cb, err := e.poolVariant(l.path, v, parent)
			if err != nil {
				return nil, err
			}
			out = append(out, cb)
		}
	}
	return out, nil
}

func (e *env) poolVariant(path, v, parent string) (concurrentBench, error) {
	var on bool
	switch v {
	case "on":
		on = true
	case "off":
	default:
		return concurrentBench{}, fmt.Errorf("-fre-cgroup-pool: %q is neither on nor off", v)
	}
	name := "fre-runc-nopool"
	if on {
		name = "fre-runc-pool"
	}
	cfg := map[string]any{}
	if *freConfig != "" {
		data, err := os.ReadFile(*freConfig)
		if err != nil {
			return concurrentBench{}, fmt.Errorf("-fre-config: %w", err)
		}
		if err := json.Unmarshal(data, &cfg); err != nil {
			return concurrentBench{}, fmt.Errorf("-fre-config %s: %w", *freConfig, err)
		}
	}
	cfg["cgroupPool"] = on
	if _, ok := cfg["storeRoot"]; !ok {
		cfg["storeRoot"] = filepath.Join(e.dir, "store")
	}
	if on {
		// Released cgroups go back to the pool rather than being removed
		// (untimed either way: deletes happen after the clock stops).
		cfg["cgroupPoolSize"] = e.opts.concurrency
	}
	data, _ := json.MarshalIndent(cfg, "", "  ")
	cfgPath := filepath.Join(e.dir, "fre-config-"+name+".json")
	if err := os.WriteFile(cfgPath, data, 0o644); err != nil {
		return concurrentBench{}, err
	}
	l := &local{path: path, global: []string{"--root", filepath.Join(e.dir, "state", name), "--config", cfgPath}}
	note := fmt.Sprintf("cgroup pool off (--config %s)", filepath.Base(cfgPath))
	cb := concurrentBench{bench: &bench{name: name, r: l}}
	if on {
		note = fmt.Sprintf("cgroup pool on, pre-filled with %d (--config %s)", e.opts.concurrency, filepath.Base(cfgPath))
		cb.prepare = func() error {
			t0 := time.Now()
			if out, err := l.command("pool", "fill", "--parent", parent, "--size", fmt.Sprint(e.opts.concurrency)).CombinedOutput(); err != nil {
				return fmt.Errorf("%s pool fill --parent %s: %v: %s", name, parent, err, strings.TrimSpace(string(out)))
			}
			fmt.Printf("%s: pool fill --parent %s --size %d took %.0f ms (untimed)\n", name, parent, e.opts.concurrency, float64(time.Since(t0))/1e6)
			return nil
		}
		cb.finish = func() error {
			printPoolStatus(name, l)
			if out, err := l.command("pool", "drain", "--parent", parent).CombinedOutput(); err != nil {
				return fmt.Errorf("%s pool drain --parent %s: %v: %s", name, parent, err, strings.TrimSpace(string(out)))
			}
			// Not fatal: the scenario removes whatever is left under its
			// parent at the end (and says so if it cannot).
			if left := idleLeft(parent); len(left) > 0 {
				fmt.Printf("WARNING: %s: pool drain left %d cgroup dirs under %s (removed at the end of the scenario): %s\n",
					name, len(left), parent, strings.Join(left, " "))
			}
			return nil
		}
	}
	cb.note = note
	return cb, nil
}

// printPoolStatus shows whether the containers got pooled cgroups.
func printPoolStatus(name string, l *local) {
	out, err := l.command("pool", "status", "--format", "json").Output()
	if err != nil {
		fmt.Printf("%s: pool status: %v\n", name, err)
		return
	}
	var st struct{ Hits, Misses, Released, Removed uint64 }
	if err := json.Unmarshal(out, &st); err != nil {
		fmt.Printf("%s: pool status: %v\n", name, err)
		return
	}
	fmt.Printf("%s: pool hits %d, misses %d, released back %d, removed %d\n", name, st.Hits, st.Misses, st.Released, st.Removed)
}

// idleLeft lists the pool's idle cgroups still under parent in any
// hierarchy.
func idleLeft(parent string) []string {
	left, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", parent, ".fre-*"))
	more, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", parent, ".fre-*"))
	return append(left, more...)
}
