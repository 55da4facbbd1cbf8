package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCtrLogURIs: file:// has the container write the file itself;
// binary:// hands its output to a logging program.
func TestCtrLogURIs(t *testing.T) {
	c := setup(t)
	logFile := filepath.Join(c.dir, "logs", "file.log")
	if out, err := c.run([]string{"--rm", "--log-uri", "file://" + logFile}, "fre-log-file", "sh", "-c", "echo to-file; echo err-file >&2"); err != nil {
		t.Fatalf("ctr run: %v: %s", err, out)
	}
	b, err := os.ReadFile(logFile)
	if err != nil || !strings.Contains(string(b), "to-file") || !strings.Contains(string(b), "err-file") {
		t.Fatalf("file log: %v: %q", err, b)
	}

	// The logger: stdout on fd 3, stderr on fd 4, readiness on fd 5.
	logger := filepath.Join(c.dir, "fre-logger.sh")
	binOut := filepath.Join(c.dir, "logs", "binary.log")
	script := "#!/bin/sh\nexec 5>&-\ncat <&3 >>\"$2\" &\ncat <&4 >>\"$2\"\nwait\n"
	if err := os.WriteFile(logger, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := c.run([]string{"--rm", "--log-uri", "binary://" + logger + "?out=" + binOut}, "fre-log-binary", "sh", "-c", "echo to-binary"); err != nil {
		t.Fatalf("ctr run: %v: %s", err, out)
	}
	if !pollFor(10*time.Second, func() bool {
		b, _ := os.ReadFile(binOut)
		return strings.Contains(string(b), "to-binary")
	}) {
		b, _ := os.ReadFile(binOut)
		t.Fatalf("binary log: %q", b)
	}
}
