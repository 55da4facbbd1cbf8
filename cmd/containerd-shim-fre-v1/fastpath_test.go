package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"google.golang.org/protobuf/proto"

	"github.com/fre-runtime/fre/shim/manager"
)

// The test binary is forked by fastpath.c for a start command as the shim
// is: go the same way (ForkedStart returns only to become the daemon).
func TestMain(m *testing.M) {
	if fd := startPipe(); fd >= 0 {
		manager.ForkedStart(fd)
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
