package rootfs

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestHostileLayersRefused(t *testing.T) {
	setuidUser := file("bin/evil", "x")
	setuidUser.mode, setuidUser.uid = 0o4755, 1000
	setuidWritable := file("bin/evil", "x")
	setuidWritable.mode = 0o4777
	setgidWritable := file("bin/evil", "x")
	setgidWritable.mode = 0o2775
	for _, tc := range []struct {
		name    string
		entries []entry
		want    error
		entry   string
	}{
		{"dotdot", []entry{file("../evil", "x")}, ErrUnsafePath, "../evil"},
		{"dotdot inside", []entry{dir("a/"), file("a/../../evil", "x")}, ErrUnsafePath, "a/../../evil"},
		{"absolute", []entry{file("/etc/passwd", "x")}, ErrUnsafePath, "/etc/passwd"},
		{"symlink out", []entry{dir("a/"), symlink("a/l", "../../etc")}, ErrUnsafePath, "a/l"},
		{"write through symlink", []entry{symlink("a", "/etc"), file("a/passwd", "root::0:0")}, ErrUnsafePath, "a/passwd"},
		{"write through relative symlink", []entry{dir("d/"), symlink("l", "d"), file("l/x", "x")}, ErrUnsafePath, "l/x"},
		{"below a file", []entry{file("f", "x"), file("f/g", "y")}, ErrUnsafePath, "f/g"},
		{"hardlink absolute", []entry{hardlink("p", "/etc/passwd")}, ErrBadLink, "p"},
		{"hardlink dotdot", []entry{hardlink("p", "../../etc/passwd")}, ErrBadLink, "p"},
		{"hardlink missing", []entry{hardlink("p", "nothing")}, ErrBadLink, "p"},
		{"hardlink to later file", []entry{hardlink("p", "f"), file("f", "x")}, ErrBadLink, "p"},
		{"hardlink to dir", []entry{dir("d/"), hardlink("p", "d")}, ErrBadLink, "p"},
		{"hardlink through symlink", []entry{dir("d/"), file("d/f", "x"), symlink("l", "d"), hardlink("p", "l/f")}, ErrBadLink, "p"},
		{"char device", []entry{{name: "dev/mem", typ: tar.TypeChar, mode: 0o600, major: 1, minor: 1}}, ErrDevice, "dev/mem"},
		{"whiteout device", []entry{{name: "x", typ: tar.TypeChar, mode: 0o600}}, ErrDevice, "x"},
		{"block device", []entry{{name: "sda", typ: tar.TypeBlock, mode: 0o600, major: 8}}, ErrDevice, "sda"},
		{"setuid non-root", []entry{setuidUser}, ErrSetuid, "bin/evil"},
		{"setuid world-writable", []entry{setuidWritable}, ErrSetuid, "bin/evil"},
		{"setgid group-writable", []entry{setgidWritable}, ErrSetuid, "bin/evil"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			l := layer(t, "gzip", tc.entries...)
			_, err := s.ImportLayers(ctx, []string{l}, ImportOptions{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			var ie *ImportError
			if !errors.As(err, &ie) || ie.Entry != tc.entry || ie.Source != l {
				t.Errorf("error does not name entry %q of %s: %v", tc.entry, l, err)
			}
			assertUnchanged(t, s, 0)
		})
	}
}

func TestTruncatedAndMismatchedLayers(t *testing.T) {
	big := strings.Repeat("0123456789", 300000) // 3 MB: the streaming path
	raw := tarBytes(t, []entry{file("a", "small"), file("big", big), file("c", "after")})
	small := tarBytes(t, []entry{file("a", strings.Repeat("s", 5000)), file("b", "x")})
	// Header claims more than the archive holds.
	var lying bytes.Buffer
	tw := tar.NewWriter(&lying)
	tw.WriteHeader(&tar.Header{Name: "liar", Typeflag: tar.TypeReg, Size: 1 << 20, Mode: 0o644})
	tw.Write([]byte("only this"))
	lyingBytes := lying.Bytes() // no Close: the archive ends early
	for _, tc := range []struct {
		name, compression string
		data              []byte
		entry             string
	}{
		{"truncated in big file", "", raw[:2<<20], "big"},
		{"truncated in small file", "", small[:1024], "a"},
		{"truncated gzip", "gzip", raw[:len(raw)/2], "big"},
		{"truncated zstd", "zstd", raw[:len(raw)/2], "big"},
		{"size mismatch", "", lyingBytes, "liar"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			p := filepath.Join(t.TempDir(), "l.tar")
			writeLayer(t, p, tc.compression, tc.data)
			if tc.compression != "" {
				// Truncate the compressed stream instead.
				writeLayer(t, p, tc.compression, raw)
				b, _ := os.ReadFile(p)
				os.WriteFile(p, b[:len(b)/2], 0o644)
			}
			_, err := s.ImportLayers(ctx, []string{p}, ImportOptions{})
			if !errors.Is(err, ErrBadLayer) {
				t.Fatalf("got %v, want ErrBadLayer", err)
			}
			if testing.Verbose() {
				t.Log(err)
			}
			var ie *ImportError
			if tc.compression == "" && (!errors.As(err, &ie) || ie.Entry != tc.entry) {
				t.Errorf("error does not name %q: %v", tc.entry, err)
			}
			assertUnchanged(t, s, 0)
		})
	}
}

func TestDecompressionBombBounded(t *testing.T) {
	s := newStore(t, func(o *Options) { o.MaxSize = 1 << 20 })
	l := layer(t, "gzip", file("small", "ok"), file("zeros", strings.Repeat("\x00", 8<<20)))
	if fi, _ := os.Stat(l); fi.Size() > 100<<10 {
		t.Fatalf("test bomb is %d bytes compressed", fi.Size())
	}
	_, err := s.ImportLayers(ctx, []string{l}, ImportOptions{})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), `"zeros"`) {
		t.Fatalf("got %v, want ErrTooLarge naming zeros", err)
	}
	assertUnchanged(t, s, 0)
}

func TestTooManyEntries(t *testing.T) {
	s := newStore(t, func(o *Options) { o.MaxEntries = 3 })
	l := layer(t, "", file("a", "1"), file("b", "2"), file("c", "3"), file("d", "4"))
	if _, err := s.ImportLayers(ctx, []string{l}, ImportOptions{}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v", err)
	}
	assertUnchanged(t, s, 0)
}

// A refusal late in an import leaves the store as it was, even though
// earlier entries were new content.
func TestRefusalLeavesStoreUnchanged(t *testing.T) {
	s := newStore(t)
	good := layer(t, "", file("keep", "kept content"))
	if _, err := s.ImportLayers(ctx, []string{good}, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	objects := countFiles(t, filepath.Join(s.Root(), objectsDir))
	trees := countEntries(t, filepath.Join(s.Root(), treesDir))
	bad := layer(t, "", file("new1", strings.Repeat("n", 2<<20)), file("new2", "fresh"), file("../escape", "x"))
	_, err := s.ImportLayers(ctx, []string{good, bad}, ImportOptions{})
	if !errors.Is(err, ErrUnsafePath) {
		t.Fatalf("got %v", err)
	}
	if n := countFiles(t, filepath.Join(s.Root(), objectsDir)); n != objects {
		t.Errorf("objects %d -> %d", objects, n)
	}
	if n := countEntries(t, filepath.Join(s.Root(), treesDir)); n != trees {
		t.Errorf("trees %d -> %d", trees, n)
	}
	if n := countEntries(t, filepath.Join(s.Root(), ingestDir)); n != 0 {
		t.Errorf("ingest not cleaned: %d", n)
	}
}

func TestHostileDirsRefused(t *testing.T) {
	s := newStore(t)
	d := t.TempDir()
	writeFiles(t, d, map[string]string{"a/b": "x"})
	os.Symlink("../../../etc/shadow", filepath.Join(d, "a/l"))
	_, err := s.ImportDir(ctx, d, ImportOptions{})
	var ie *ImportError
	if !errors.Is(err, ErrUnsafePath) || !errors.As(err, &ie) || ie.Entry != "a/l" {
		t.Fatalf("escaping symlink: %v", err)
	}
	assertUnchanged(t, s, 0)

	// Absolute symlinks resolve inside the container: fine.
	os.Remove(filepath.Join(d, "a/l"))
	os.Symlink("/etc/shadow", filepath.Join(d, "a/l"))
	if _, err := s.ImportDir(ctx, d, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestHostileDirDevicesAndSetuid(t *testing.T) {
	requireRoot(t)
	s := newStore(t)
	d := t.TempDir()
	writeFiles(t, d, map[string]string{"ok": "x"})
	if err := unix.Mknod(filepath.Join(d, "mem"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 1))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ImportDir(ctx, d, ImportOptions{}); !errors.Is(err, ErrDevice) {
		t.Fatalf("device: %v", err)
	}
	assertUnchanged(t, s, 0)
	os.Remove(filepath.Join(d, "mem"))
	writeFiles(t, d, map[string]string{"suid": "x"})
	os.Chown(filepath.Join(d, "suid"), 1000, 1000)
	unix.Chmod(filepath.Join(d, "suid"), 0o4755)
	if _, err := s.ImportDir(ctx, d, ImportOptions{}); !errors.Is(err, ErrSetuid) {
		t.Fatalf("setuid of uid 1000: %v", err)
	}
	assertUnchanged(t, s, 0)
	// StripSetuid neutralises instead.
	s2 := newStore(t, func(o *Options) { o.StripSetuid = true })
	tr, err := s2.ImportDir(ctx, d, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	unix.Lstat(filepath.Join(tr.Path(), "suid"), &st)
	if st.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
		t.Error("StripSetuid kept the bit")
	}
}

func TestMaxSizeExactlyFits(t *testing.T) {
	raw := tarBytes(t, []entry{file("a", "12345")})
	s := newStore(t, func(o *Options) { o.MaxSize = int64(len(raw)) })
	p := writeLayer(t, filepath.Join(t.TempDir(), "l.tar"), "gzip", raw)
	if _, err := s.ImportLayers(ctx, []string{p}, ImportOptions{}); err != nil {
		t.Fatalf("a layer of exactly MaxSize: %v", err)
	}
	s2 := newStore(t, func(o *Options) { o.MaxSize = int64(len(raw)) - 1 })
	if _, err := s2.ImportLayers(ctx, []string{p}, ImportOptions{}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("one byte over: %v", err)
	}
}
