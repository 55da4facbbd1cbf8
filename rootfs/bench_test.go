package rootfs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var (
	benchOnce sync.Once
	benchDir  string
	benchTar  string
)

// benchImage is a realistic image: a copy of this machine's Python
// standard library laid out as in a rootfs (usr/lib/python3.X), plus the
// same as a gzip layer.
func benchImage(b *testing.B) (string, string) {
	benchOnce.Do(func() {
		matches, _ := filepath.Glob("/usr/lib/python3.*")
		if len(matches) == 0 {
			return
		}
		d, err := os.MkdirTemp("", "fre-rootfs-bench-")
		if err != nil {
			return
		}
		os.MkdirAll(filepath.Join(d, "img/usr/lib"), 0o755)
		if out, err := exec.Command("cp", "-a", matches[0], filepath.Join(d, "img/usr/lib/")).CombinedOutput(); err != nil {
			b.Logf("copy: %v %s", err, out)
			return
		}
		if out, err := exec.Command("tar", "-czf", filepath.Join(d, "layer.tar.gz"), "-C", filepath.Join(d, "img"), ".").CombinedOutput(); err != nil {
			b.Logf("tar: %v %s", err, out)
			return
		}
		benchDir, benchTar = filepath.Join(d, "img"), filepath.Join(d, "layer.tar.gz")
	})
	if benchDir == "" {
		b.Skip("no /usr/lib/python3.* to build a benchmark image from")
	}
	return benchDir, benchTar
}

func reportImage(b *testing.B, t *Tree) {
	b.ReportMetric(float64(t.Files), "files")
	b.ReportMetric(float64(t.LogicalSize)/(1<<20), "MiB")
}

// BenchmarkImportDirCold: an empty store every time.
func BenchmarkImportDirCold(b *testing.B) {
	dir, _ := benchImage(b)
	var t *Tree
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := newStore(b)
		b.StartTimer()
		var err error
		if t, err = s.ImportDir(ctx, dir, ImportOptions{}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		removeAll(s.Root())
		b.StartTimer()
	}
	reportImage(b, t)
}

// BenchmarkImportDirSharedContent: a new image whose files are all in the
// store already (another image had them): hash and link, no writes.
func BenchmarkImportDirSharedContent(b *testing.B) {
	dir, _ := benchImage(b)
	s := newStore(b)
	if _, err := s.ImportDir(ctx, dir, ImportOptions{}); err != nil {
		b.Fatal(err)
	}
	var t *Tree
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// One file differs: a new tree (trees are named by content, not
		// mtimes) whose other files are all in the store.
		if err := os.WriteFile(filepath.Join(dir, ".bench-marker"), []byte(fmt.Sprint(time.Now().UnixNano(), i)), 0o644); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		var err error
		if t, err = s.ImportDir(ctx, dir, ImportOptions{}); err != nil || t.Cached {
			b.Fatal(err, t.Cached)
		}
	}
	reportImage(b, t)
}

// BenchmarkImportDirCached: the next container of the same image.
func BenchmarkImportDirCached(b *testing.B) {
	dir, _ := benchImage(b)
	s := newStore(b)
	t, err := s.ImportDir(ctx, dir, ImportOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if t, err = s.ImportDir(ctx, dir, ImportOptions{}); err != nil || !t.Cached {
			b.Fatal(err)
		}
	}
	reportImage(b, t)
}

func BenchmarkImportLayerCold(b *testing.B) {
	_, layer := benchImage(b)
	var t *Tree
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := newStore(b)
		b.StartTimer()
		var err error
		if t, err = s.ImportLayers(ctx, []string{layer}, ImportOptions{}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		removeAll(s.Root())
		b.StartTimer()
	}
	reportImage(b, t)
}

func BenchmarkImportLayerCached(b *testing.B) {
	_, layer := benchImage(b)
	s := newStore(b)
	t, err := s.ImportLayers(ctx, []string{layer}, ImportOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if t, err = s.ImportLayers(ctx, []string{layer}, ImportOptions{}); err != nil || !t.Cached {
			b.Fatal(err)
		}
	}
	reportImage(b, t)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(filepath.Dir(benchDir))
	}
	os.Exit(code)
}
