package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// frePar runs fre-runc for a test that runs many at once: output to a
// file of its own (a created container keeps its stdio open; a pipe's
// reader would wait for it), exit code returned.
func frePar(t *testing.T, e *env, dir string, n int, args ...string) (string, int) {
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("out-%d", n)))
	if err != nil {
		t.Error(err)
		return "", -2
	}
	defer f.Close()
	cmd := exec.Command(e.bin, append(append([]string{}, e.args...), args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	err = cmd.Run()
	out, _ := os.ReadFile(f.Name())
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Error(err)
		return string(out), -2
	}
	return string(out), 0
}

// 100 creates of one ID at once: exactly one wins, every other gets
// runc's "already exists"; then kill, delete and state on that ID at
// once: no error but runc's (does not exist, not running), and nothing of
// the container left.
func TestConcurrentOneID(t *testing.T) {
	e := newEnv(t)
	b := bundle(t, "sleep", "600")
	id := newID()
	dir := t.TempDir()
	const creators = 100
	var wg sync.WaitGroup
	start := make(chan struct{})
	outs, codes := make([]string, creators), make([]int, creators)
	for i := range creators {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			outs[i], codes[i] = frePar(t, e, dir, i, "create", "--bundle", b, id)
		}()
	}
	close(start)
	wg.Wait()
	won := 0
	for i, c := range codes {
		switch {
		case c == 0:
			won++
		case c == 1 && strings.Contains(outs[i], "container with given ID already exists"):
		default:
			t.Errorf("create %d: exit %d: %s", i, c, outs[i])
		}
	}
	if won != 1 {
		t.Fatalf("%d creates of one ID succeeded, want 1", won)
	}
	if st := e.state(id); st.Status != "created" {
		t.Fatalf("the winner's container: %+v", st)
	}

	const ops = 60
	codes, outs = make([]int, ops), make([]string, ops)
	start = make(chan struct{})
	for i := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			var args []string
			switch i % 3 {
			case 0:
				args = []string{"kill", id, "KILL"}
			case 1:
				args = []string{"delete", "--force", id}
			default:
				args = []string{"state", id}
			}
			outs[i], codes[i] = frePar(t, e, dir, creators+i, args...)
		}()
	}
	close(start)
	wg.Wait()
	for i, c := range codes {
		if c == 0 {
			continue
		}
		o := outs[i]
		if c != 1 || !(strings.Contains(o, "container does not exist") || strings.Contains(o, "container is not running") ||
			strings.Contains(o, "not running")) {
			t.Errorf("op %d (%d): exit %d: %s", i, i%3, c, o)
		}
	}
	e.run(nil, "delete", "--force", id)
	if _, err := os.Lstat(filepath.Join(e.root, id)); err == nil {
		t.Error("state dir left")
	}
	if cgs, _ := filepath.Glob("/sys/fs/cgroup/*/" + id); len(cgs) > 0 {
		t.Errorf("cgroups left: %v", cgs)
	}
	if procs := containerProcs(id); len(procs) > 0 {
		t.Errorf("processes left: %v", procs)
	}
}
