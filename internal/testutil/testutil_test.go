package testutil

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestBusyboxBundle(t *testing.T) {
	bundle := BusyboxBundle(t, "", "/bin/echo", "hello")

	for _, p := range []string{"rootfs/bin/busybox", "rootfs/etc/passwd", "rootfs/etc/group", "config.json"} {
		if _, err := os.Stat(filepath.Join(bundle, p)); err != nil {
			t.Errorf("bundle lacks %s: %v", p, err)
		}
	}
	for _, applet := range []string{"sh", "true", "echo", "sleep"} {
		target, err := os.Readlink(filepath.Join(bundle, "rootfs/bin", applet))
		if err != nil || target != "busybox" {
			t.Errorf("applet %s: link %q, %v; want busybox", applet, target, err)
		}
	}
	fi, err := os.Stat(filepath.Join(bundle, "rootfs/tmp"))
	if err != nil || fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
		t.Errorf("rootfs/tmp: mode %v, %v; want sticky 0777", fi.Mode(), err)
	}
	passwd, _ := os.ReadFile(filepath.Join(bundle, "rootfs/etc/passwd"))
	if !strings.HasPrefix(string(passwd), "root:x:0:0:") || !strings.Contains(string(passwd), "\nnobody:x:65534:65534:") {
		t.Errorf("passwd lacks root or nobody: %q", passwd)
	}

	s, err := ReadSpec(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if s.Process.Terminal {
		t.Error("terminal is true; want false")
	}
	if !reflect.DeepEqual(s.Process.Args, []string{"/bin/echo", "hello"}) {
		t.Errorf("args = %q", s.Process.Args)
	}

	MutateSpec(t, bundle, func(s *specs.Spec) { s.Hostname = "fre-test" })
	if s, err = ReadSpec(bundle); err != nil || s.Hostname != "fre-test" {
		t.Errorf("after MutateSpec hostname = %q, %v", s.Hostname, err)
	}
}

// TestDefaultSpecMatchesRunc checks DefaultSpec against what the installed
// runc prints, when it is the runc 1.1 the spec was copied from.
func TestDefaultSpecMatchesRunc(t *testing.T) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("runc not installed")
	}
	ver, _ := exec.Command(runc, "--version").Output()
	if !strings.HasPrefix(string(ver), "runc version 1.1.") {
		t.Skipf("DefaultSpec mirrors runc 1.1; installed: %s", strings.SplitN(string(ver), "\n", 2)[0])
	}
	dir := t.TempDir()
	if out, err := exec.Command(runc, "spec", "--bundle", dir).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v: %s", err, out)
	}
	want, err := ReadSpec(dir)
	if err != nil {
		t.Fatal(err)
	}
	want.Process.Terminal = false
	got := DefaultSpec()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("DefaultSpec differs from runc spec:\ngot  %s\nwant %s", g, w)
	}
}

// TestBusyboxBundleRuns runs the bundle with runc: the rootfs must be
// complete enough for a real runtime.
func TestBusyboxBundleRuns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("runc not installed")
	}
	bundle := BusyboxBundle(t, "", "/bin/echo", "hello from fre testutil")
	root := t.TempDir()
	id := "fre-testutil-" + filepath.Base(bundle)
	t.Cleanup(func() { exec.Command(runc, "--root", root, "delete", "--force", id).Run() })
	cmd := exec.Command(runc, "--root", root, "run", "--bundle", bundle, id)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("runc run: %v: %s", err, out)
	}
	if strings.TrimSpace(string(out)) != "hello from fre testutil" {
		t.Errorf("output %q", out)
	}
}

// TestOCIImageLayout validates the layout tar: every blob is named by its
// digest, the descriptors' digests and sizes match, the layer's diff ID is
// the config's, and the index names the image.
func TestOCIImageLayout(t *testing.T) {
	const ref = "docker.io/library/busybox-fre:latest"
	path := OCIImageLayout(t, "", ref)

	files := readTar(t, path)
	var layout ocispec.ImageLayout
	mustUnmarshal(t, files[ocispec.ImageLayoutFile], &layout)
	if layout.Version != ocispec.ImageLayoutVersion {
		t.Errorf("oci-layout version %q", layout.Version)
	}
	for name, data := range files {
		if !strings.HasPrefix(name, "blobs/sha256/") || strings.HasSuffix(name, "/") {
			continue
		}
		if got := digest.FromBytes(data).Encoded(); got != strings.TrimPrefix(name, "blobs/sha256/") {
			t.Errorf("blob %s has digest %s", name, got)
		}
	}
	blob := func(d ocispec.Descriptor) []byte {
		t.Helper()
		data, ok := files[blobPath(d.Digest)]
		if !ok {
			t.Fatalf("missing blob %s (%s)", d.Digest, d.MediaType)
		}
		if int64(len(data)) != d.Size {
			t.Errorf("blob %s: size %d, descriptor says %d", d.Digest, len(data), d.Size)
		}
		return data
	}

	var index ocispec.Index
	mustUnmarshal(t, files["index.json"], &index)
	if index.SchemaVersion != 2 || len(index.Manifests) != 1 {
		t.Fatalf("index: schema %d, %d manifests", index.SchemaVersion, len(index.Manifests))
	}
	md := index.Manifests[0]
	if md.Annotations[ocispec.AnnotationRefName] != ref || md.MediaType != ocispec.MediaTypeImageManifest {
		t.Errorf("manifest descriptor: %+v", md)
	}
	var manifest ocispec.Manifest
	mustUnmarshal(t, blob(md), &manifest)
	var config ocispec.Image
	mustUnmarshal(t, blob(manifest.Config), &config)
	if manifest.Config.MediaType != ocispec.MediaTypeImageConfig || config.OS != "linux" {
		t.Errorf("config: media type %q, os %q", manifest.Config.MediaType, config.OS)
	}
	if len(manifest.Layers) != 1 || len(config.RootFS.DiffIDs) != 1 {
		t.Fatalf("%d layers, %d diff IDs; want 1", len(manifest.Layers), len(config.RootFS.DiffIDs))
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob(manifest.Layers[0])))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if got := digest.FromBytes(raw); got != config.RootFS.DiffIDs[0] {
		t.Errorf("layer diff ID %s, config says %s", got, config.RootFS.DiffIDs[0])
	}
	layer := readTarBytes(t, raw)
	if _, ok := layer["bin/busybox"]; !ok {
		t.Error("layer lacks bin/busybox")
	}

	// The same rootfs gives the same image: layers are reproducible.
	again := OCIImageLayout(t, "", ref)
	if a, b := readTar(t, again)["index.json"], files["index.json"]; !bytes.Equal(a, b) {
		t.Error("two builds of the same image differ")
	}
}

func TestLayoutFileName(t *testing.T) {
	if got := layoutFileName("docker.io/library/busybox-fre:latest"); got != "busybox-fre_latest" {
		t.Errorf("got %q", got)
	}
}

func TestFindBusyboxRejectsDynamic(t *testing.T) {
	t.Setenv("FRE_BUSYBOX", "/bin/ls") // dynamically linked on Debian
	if _, err := FindBusybox(); err != nil && !errors.Is(err, ErrBusyboxNotStatic) {
		t.Fatalf("err = %v; want ErrBusyboxNotStatic", err)
	}
}

func readTar(t *testing.T, path string) map[string][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return readTarBytes(t, data)
}

func readTarBytes(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[hdr.Name] = b
	}
}

func mustUnmarshal(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("parse %T: %v", v, err)
	}
}
