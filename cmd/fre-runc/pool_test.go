package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fre-runtime/fre/cgpool"
	"github.com/fre-runtime/fre/cgroup"
)

func TestPoolCommand(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates cgroups")
	}
	if md := cgroup.Mode(); md != cgroup.Legacy && md != cgroup.Hybrid {
		t.Skipf("the pool needs cgroup v1; host is %v", md)
	}
	root := t.TempDir()
	parent := "/fre-test-poolcli-" + time.Now().Format("150405.000000")
	t.Cleanup(func() {
		if m, err := cgroup.New(parent); err == nil {
			m.Destroy()
		}
	})
	g := &globalOptions{Root: root}
	pool := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		fs := flag.NewFlagSet("pool", flag.ContinueOnError)
		o := &poolOptions{}
		poolFlags(fs, o)
		if err := fs.Parse(args); err != nil {
			return "", err
		}
		err := runPool(g, o, fs.Args(), &out, &errb)
		return out.String() + errb.String(), err
	}
	var out, errb bytes.Buffer
	if rc := run([]string{"--root", root, "pool", "fill", "--parent", parent, "--size", "2"}, &out, &errb); rc != 0 {
		t.Fatalf("pool fill: rc %d: %s", rc, errb.String())
	}
	// Status flags before or after the subcommand.
	js, err := pool("status", "--format", "json")
	if err != nil {
		t.Fatalf("pool status: %v", err)
	}
	var st cgpool.Status
	if err := json.Unmarshal([]byte(js), &st); err != nil {
		t.Fatalf("status JSON: %v\n%s", err, js)
	}
	if len(st.Parents) != 1 || st.Parents[0].Parent != parent || st.Parents[0].Idle != 2 || !st.Enabled {
		t.Errorf("status = %+v", st)
	}
	if tab, err := pool("--format", "table", "status"); err != nil || !strings.Contains(tab, "PARENT") || !strings.Contains(tab, parent+"  2") {
		t.Errorf("table status: %v\n%s", err, tab)
	}
	if rc := run([]string{"--root", root, "pool", "drain", "--parent", parent}, &out, &errb); rc != 0 {
		t.Fatalf("pool drain: rc %d: %s", rc, errb.String())
	}
	if _, err := pool("nope"); err == nil {
		t.Error("unknown subcommand succeeded")
	}
}
