package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"github.com/containerd/containerd/v2/pkg/shim"
	"google.golang.org/protobuf/proto"

	"github.com/fre-runtime/fre/shim/manager"
)

// The test binary is forked by fastpath.c for a start command as the shim
// is: go the same way (ForkedStart returns only to become the daemon).
func TestMain(m *testing.M) {
	if startAddr() != "" {
		// The daemon fastpath.c forked after answering itself: say so
		// in the bundle (its cwd) for TestStartAnswersLikeGo.
		if os.WriteFile("front-child.tmp", []byte(startAddr()), 0o644) == nil {
			os.Rename("front-child.tmp", "front-child") // whole, or not there
		}
		os.Exit(4)
	}
	if fd := startPipe(); fd >= 0 {
		stdin, read := startStdin()
		manager.ForkedStart(fd, stdin, read)
		os.Exit(3)
	}
	os.Exit(m.Run())
}

// The test binary carries fastdelete.c too: run it with the shim's delete
// arguments and it answers before Go (and the testing package) start.
func runSelf(t *testing.T, dir string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Dir = dir
	cmd.Stderr = nil
	return cmd.Output()
}

func TestFastDeleteAnswersLikeGo(t *testing.T) {
	for _, tc := range []struct {
		line       string
		pid, code  uint32
		sec, nsec  int64
		zeroExited bool
	}{
		{"4242 137 1763900000 123456789\n", 4242, 137, 1763900000, 123456789, false},
		{"1 0 1763900000 0\n", 1, 0, 1763900000, 0, false},
		{"0 0 -62135596800 0\n", 0, 0, 0, 0, true}, // time.Time{}
	} {
		bundle := t.TempDir()
		if err := os.WriteFile(filepath.Join(bundle, "fre-deleted"), []byte(tc.line), 0o600); err != nil {
			t.Fatal(err)
		}
		at := time.Unix(tc.sec, tc.nsec)
		if tc.zeroExited {
			at = time.Time{}
		}
		want, err := proto.Marshal(&taskAPI.DeleteResponse{Pid: tc.pid, ExitStatus: tc.code, ExitedAt: protobuf.ToTimestamp(at)})
		if err != nil {
			t.Fatal(err)
		}
		// As containerd runs it: in the bundle, and with -bundle.
		for _, args := range [][]string{
			{"-namespace", "default", "-address", "/run/containerd/containerd.sock", "-publish-binary", "/usr/bin/containerd", "-id", "c1", "-bundle", bundle, "delete"},
			{"-namespace=default", "-debug", "-id", "c1", "delete"},
		} {
			got, err := runSelf(t, bundle, args...)
			if err != nil {
				t.Fatalf("%q: %v", args, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%q of %q: got %x, want %x (proto.Marshal)", tc.line, args, got, want)
			}
		}
	}
}

// No record, a record that does not parse, or arguments it does not know:
// the delete fast path steps aside (here the test binary's Go main then refuses
// the shim's flags).
func TestFastDeleteStepsAside(t *testing.T) {
	bundle := t.TempDir()
	for _, tc := range []struct {
		record string
		args   []string
	}{
		{"", []string{"-namespace", "default", "-id", "c1", "delete"}},
		{"12 x 1 2\n", []string{"-namespace", "default", "-id", "c1", "delete"}},
		{"12 0 1 2000000000\n", []string{"-namespace", "default", "-id", "c1", "delete"}},
		{"12 0 1 2\n", []string{"-id", "c1", "delete"}},
		{"12 0 1 2\n", []string{"-namespace", "default", "-v", "delete"}},
		{"12 0 1 2\n", []string{"-namespace", "default", "-bogus", "delete"}},
	} {
		p := filepath.Join(bundle, "fre-deleted")
		os.Remove(p)
		if tc.record != "" {
			if err := os.WriteFile(p, []byte(tc.record), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command(os.Args[0], tc.args...)
		cmd.Dir = bundle
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err == nil || len(out) > 0 || !strings.Contains(stderr.String(), "flag provided but not defined") {
			t.Fatalf("%q with %q: out %x, err %v, stderr %q: want Go's flag error", tc.record, tc.args, out, err, stderr.String())
		}
	}
}

// A start command with bad bootstrap parameters: the forked child reports
// the error through the pipe, the start command prints it and exits 1, and
// no process stays behind.
func TestForkedStartErrors(t *testing.T) {
	bad, err := proto.Marshal(&bootapi.BootstrapParams{InstanceID: "other", Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		stdin []byte
		want  string
	}{
		{nil, "no bootstrap parameters"},
		{[]byte("\xff\xff not protobuf"), "failed to unmarshal bootstrap parameters"},
		{bad, "do not match"},
	} {
		cmd := exec.Command(os.Args[0], "-namespace", "default", "-id", "c1", "-address", "/nonexistent.sock", "start")
		cmd.Dir = t.TempDir()
		cmd.Stdin = bytes.NewReader(tc.stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if exitCode := cmd.ProcessState.ExitCode(); err == nil || exitCode != 1 || len(out) > 0 || !strings.Contains(stderr.String(), tc.want) {
			t.Fatalf("stdin %q: exit %d, out %q, stderr %q; want exit 1 and %q", tc.stdin, exitCode, out, stderr.String(), tc.want)
		}
	}
}

// startCmd runs the test binary as containerd runs a shim's start command:
// in the bundle, with the bootstrap parameters on stdin.
func startCmd(t *testing.T, bundle string, params *bootapi.BootstrapParams) []byte {
	t.Helper()
	in, err := proto.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-namespace", params.Namespace, "-address", params.ContainerdGrpcAddress,
		"-publish-binary", "/usr/bin/containerd", "-id", params.InstanceID, "start")
	cmd.Dir = bundle
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("start: %v: %s", err, stderr.String())
	}
	return out
}

// The start command answers as the Go one would: the same socket address
// (shim.CreateSocketAddress of the group, the container's ID when it has
// none), the socket made 0600, the debug socket's address recorded, the
// socket-dir link. A container of a group goes the Go way and gets its
// group's address.
func TestStartAnswersLikeGo(t *testing.T) {
	for _, tc := range []struct {
		name  string
		group string
		level bootapi.LogLevel
	}{
		{"own shim", "", bootapi.LogLevel_LOG_LEVEL_INFO},
		{"own shim, debug", "", bootapi.LogLevel_LOG_LEVEL_DEBUG},
		{"group", "g1", bootapi.LogLevel_LOG_LEVEL_INFO},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bundle := t.TempDir()
			// A socket path must fit in 108 bytes: not under TempDir's.
			sockets, err := os.MkdirTemp("", "fs")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(sockets) })
			spec := `{"ociVersion": "1.2.0", "annotations": {"x": "y"}}`
			if tc.group != "" {
				spec = `{"ociVersion": "1.2.0", "annotations": {"run.fre.group": "` + tc.group + `"}}`
			}
			if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(spec), 0o644); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(sockets, "s")
			params := &bootapi.BootstrapParams{InstanceID: "c1", Namespace: "default", LogLevel: tc.level,
				ContainerdGrpcAddress: "/run/containerd/containerd.sock", SocketDir: &dir}
			out := startCmd(t, bundle, params)
			key := "c1"
			if tc.group != "" {
				key = tc.group
			}
			ctx := namespaces.WithNamespace(context.Background(), "default")
			var addr string
			addr, err = shim.CreateSocketAddress(ctx, dir, params.ContainerdGrpcAddress, key, false)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := proto.Marshal(&bootapi.BootstrapResult{Version: 3, Address: addr, Protocol: "ttrpc"})
			if !bytes.Equal(out, want) {
				var got bootapi.BootstrapResult
				proto.Unmarshal(out, &got)
				t.Fatalf("answer %x (%v), want %x (%s)", out, &got, want, addr)
			}
			// The start command answered before Go (its child says so)
			// unless the container has a group.
			front := ""
			for deadline := time.Now().Add(10 * time.Second); tc.group == ""; {
				if b, err := os.ReadFile(filepath.Join(bundle, "front-child")); err == nil {
					front = string(b)
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no word from the daemon of the C start path")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if tc.group == "" && front != addr {
				t.Fatalf("the daemon serves %q, the answer says %q", front, addr)
			}
			path := strings.TrimPrefix(addr, "unix://")
			t.Cleanup(func() { os.Remove(path) })
			fi, err := os.Stat(path)
			if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
				t.Fatalf("socket %s: %v, %v", path, fi, err)
			}
			if l, err := os.Readlink(filepath.Join(bundle, "s")); err != nil || l != dir {
				t.Fatalf("socket-dir link: %q, %v", l, err)
			}
			if tc.level == bootapi.LogLevel_LOG_LEVEL_DEBUG {
				daddr, _ := shim.CreateSocketAddress(ctx, dir, params.ContainerdGrpcAddress, key, true)
				t.Cleanup(func() { os.Remove(strings.TrimPrefix(daddr, "unix://")) })
				if b, err := os.ReadFile(filepath.Join(bundle, "fre-debug-socket")); err != nil || string(b) != daddr {
					t.Fatalf("fre-debug-socket: %q, %v; want %q", b, err, daddr)
				}
				if _, err := os.Stat(strings.TrimPrefix(daddr, "unix://")); err != nil {
					t.Fatalf("debug socket: %v", err)
				}
			}
		})
	}
}
