package integration

import (
	"strings"
	"testing"
)

func TestCtrRunEcho(t *testing.T) {
	c := setup(t)
	out, err := c.run([]string{"--rm"}, "fre-echo", "echo", "hello")
	if err != nil {
		t.Fatalf("ctr run: %v: %s\ncontainerd log:\n%s", err, out, c.tail())
	}
	if strings.TrimSpace(out) != "hello" {
		t.Fatalf("output %q, want hello", out)
	}
}

func TestCtrRunExitCode(t *testing.T) {
	c := setup(t)
	out, err := c.run([]string{"--rm"}, "fre-exit", "sh", "-c", "echo out; echo err >&2; exit 3")
	if got := exitCode(err); got != 3 {
		t.Fatalf("exit code %d (%v), want 3: %s", got, err, out)
	}
	if !strings.Contains(out, "out") || !strings.Contains(out, "err") {
		t.Fatalf("output %q lacks stdout or stderr", out)
	}
}
