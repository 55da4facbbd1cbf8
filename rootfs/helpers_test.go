package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

var ctx = context.Background()

func newStore(t testing.TB, opts ...func(*Options)) *Store {
	t.Helper()
	o := Options{Root: filepath.Join(t.TempDir(), "store")}
	for _, f := range opts {
		f(&o)
	}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (chown, trusted xattrs, device nodes, mounts)")
	}
}

// writeFiles creates files (content) under dir; a name ending in "/" is a
// directory.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if name[len(name)-1] == '/' {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func inode(t testing.TB, p string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func nlink(t testing.TB, p string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return uint64(st.Nlink)
}

// entry is one tar member.
type entry struct {
	name, body, link string
	typ              byte
	mode             int64
	uid              int
	size             int64 // header size if not len(body)
	xattrs           map[string]string
	major, minor     int64
}

func file(name, body string) entry {
	return entry{name: name, body: body, typ: tar.TypeReg, mode: 0o644}
}
func dir(name string) entry { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, target string) entry {
	return entry{name: name, link: target, typ: tar.TypeSymlink, mode: 0o777}
}
func hardlink(name, target string) entry { return entry{name: name, link: target, typ: tar.TypeLink} }

func tarBytes(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Linkname: e.link,
			ModTime: time.Unix(1700000000, 0), Devmajor: e.major, Devminor: e.minor, Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		for k, v := range e.xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeLayer writes a layer tar compressed with "gzip", "zstd" or "".
func writeLayer(t testing.TB, p, compression string, raw []byte) string {
	t.Helper()
	var buf bytes.Buffer
	switch compression {
	case "gzip":
		z := gzip.NewWriter(&buf)
		z.Write(raw)
		z.Close()
	case "zstd":
		z, _ := zstd.NewWriter(&buf)
		z.Write(raw)
		z.Close()
	default:
		buf.Write(raw)
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func layer(t testing.TB, compression string, entries ...entry) string {
	t.Helper()
	return writeLayer(t, filepath.Join(t.TempDir(), "layer.tar"), compression, tarBytes(t, entries))
}

func countFiles(t testing.TB, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

func countEntries(t testing.TB, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// assertUnchanged: a refused import left no ingest files, trees, index
// entries or objects.
func assertUnchanged(t testing.TB, s *Store, objectsBefore int) {
	t.Helper()
	if n := countEntries(t, filepath.Join(s.Root(), ingestDir)); n != 0 {
		t.Errorf("ingest has %d entries after a refused import", n)
	}
	if n := countEntries(t, filepath.Join(s.Root(), treesDir)); n != 0 {
		t.Errorf("trees has %d entries after a refused import", n)
	}
	if n := countEntries(t, filepath.Join(s.Root(), indexDir)); n != 0 {
		t.Errorf("index has %d entries after a refused import", n)
	}
	if n := countFiles(t, filepath.Join(s.Root(), objectsDir)); n != objectsBefore {
		t.Errorf("objects: %d, want %d", n, objectsBefore)
	}
}
