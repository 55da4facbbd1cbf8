package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"google.golang.org/protobuf/proto"
)

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

// No record, a record that does not parse, or another command: the
// constructor steps aside (here the test binary's Go main then refuses
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
		{"12 0 1 2\n", []string{"-namespace", "default", "-id", "c1", "start"}},
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
