package testutil

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	_ "crypto/sha256" // go-digest needs sha256 registered
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	imgspecs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// AnnotationContainerdImageName is the annotation containerd's importer
// reads first for an image's full name (images.AnnotationImageName). It is
// set beside the OCI ref.name so both import paths of `ctr images import`
// (local and transfer service) name the image the same way.
const AnnotationContainerdImageName = "io.containerd.image.name"

// epoch is the mtime of every entry, so the same rootfs always gives the same
// layer digest.
var epoch = time.Unix(0, 0).UTC()

// WriteOCIImageLayoutTar writes to tarPath an OCI image layout (oci-layout,
// index.json, blobs/sha256/...) holding one linux image of the host's
// architecture whose only layer is rootfs, gzip-compressed. The index names
// the image ref (e.g. "docker.io/library/busybox-fre:latest") with the
// org.opencontainers.image.ref.name annotation, which `ctr images import`
// uses as the image name.
func WriteOCIImageLayoutTar(tarPath, ref, rootfs string, cmd ...string) error {
	if len(cmd) == 0 {
		cmd = []string{"/bin/sh"}
	}
	layer, diffID, err := layerTarGz(rootfs)
	if err != nil {
		return err
	}
	layerDesc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageLayerGzip,
		Digest:    digest.FromBytes(layer),
		Size:      int64(len(layer)),
	}
	created := epoch
	config, err := json.Marshal(ocispec.Image{
		Created:  &created,
		Platform: ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"},
		Config: ocispec.ImageConfig{
			Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd:        cmd,
			WorkingDir: "/",
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
	})
	if err != nil {
		return fmt.Errorf("testutil: encode image config: %w", err)
	}
	configDesc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageConfig,
		Digest:    digest.FromBytes(config),
		Size:      int64(len(config)),
	}
	manifest, err := json.Marshal(ocispec.Manifest{
		Versioned: imgspecs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    configDesc,
		Layers:    []ocispec.Descriptor{layerDesc},
	})
	if err != nil {
		return fmt.Errorf("testutil: encode manifest: %w", err)
	}
	index, err := json.Marshal(ocispec.Index{
		Versioned: imgspecs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{{
			MediaType: ocispec.MediaTypeImageManifest,
			Digest:    digest.FromBytes(manifest),
			Size:      int64(len(manifest)),
			Platform:  &ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"},
			Annotations: map[string]string{
				ocispec.AnnotationRefName:     ref,
				AnnotationContainerdImageName: ref,
			},
		}},
	})
	if err != nil {
		return fmt.Errorf("testutil: encode index: %w", err)
	}
	layout, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return fmt.Errorf("testutil: encode oci-layout: %w", err)
	}

	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	dirs := []string{"blobs/", "blobs/sha256/"}
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch}); err != nil {
			return fmt.Errorf("testutil: write layout tar: %w", err)
		}
	}
	files := []struct {
		name string
		data []byte
	}{
		{ocispec.ImageLayoutFile, layout},
		{"index.json", index},
		{blobPath(layerDesc.Digest), layer},
		{blobPath(configDesc.Digest), config},
		{blobPath(digest.FromBytes(manifest)), manifest},
	}
	for _, f := range files {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: epoch}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("testutil: write layout tar: %w", err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return fmt.Errorf("testutil: write layout tar: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("testutil: write layout tar: %w", err)
	}
	// Write then rename, so a reader never sees half a tar under the name.
	tmp := tarPath + ".tmp"
	if err := os.WriteFile(tmp, out.Bytes(), 0o644); err != nil {
		return fmt.Errorf("testutil: write %s: %w", tarPath, err)
	}
	if err := os.Rename(tmp, tarPath); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("testutil: write %s: %w", tarPath, err)
	}
	return nil
}

func blobPath(d digest.Digest) string {
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
}

// layerTarGz tars rootfs (sorted, owned by root, fixed mtimes) and gzips it.
// It returns the compressed layer and the digest of the uncompressed tar
// (the diff ID the image config lists).
func layerTarGz(rootfs string) (layer []byte, diffID digest.Digest, err error) {
	var paths []string
	err = filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != rootfs {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("testutil: walk rootfs %s: %w", rootfs, err)
	}
	sort.Strings(paths)

	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			return nil, "", fmt.Errorf("testutil: layer: %w", err)
		}
		var link string
		if fi.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return nil, "", fmt.Errorf("testutil: layer: %w", err)
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return nil, "", fmt.Errorf("testutil: layer header %s: %w", p, err)
		}
		rel, _ := filepath.Rel(rootfs, p)
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = epoch, time.Time{}, time.Time{}
		hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, "", fmt.Errorf("testutil: layer header %s: %w", p, err)
		}
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, "", fmt.Errorf("testutil: layer: %w", err)
			}
			if _, err := tw.Write(data); err != nil {
				return nil, "", fmt.Errorf("testutil: layer %s: %w", p, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", fmt.Errorf("testutil: layer: %w", err)
	}

	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, "", fmt.Errorf("testutil: gzip layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, "", fmt.Errorf("testutil: gzip layer: %w", err)
	}
	return gz.Bytes(), digest.FromBytes(raw.Bytes()), nil
}

// OCIImageLayout builds a busybox rootfs and writes it as an OCI image layout
// tar named ref into dir (a new temporary directory when dir is ""). The
// returned path can be given to `ctr images import`.
func OCIImageLayout(t testing.TB, dir, ref string) (tarPath string) {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	rootfs, err := os.MkdirTemp(dir, "fre-rootfs-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(rootfs)
	if err := WriteBusyboxRootfs(rootfs); err != nil {
		if (errors.Is(err, ErrNoBusybox) || errors.Is(err, ErrBusyboxNotStatic)) && os.Getenv("CI") == "" {
			t.Skipf("busybox image: %v", err)
		}
		t.Fatalf("busybox image: %v", err)
	}
	tarPath = filepath.Join(dir, layoutFileName(ref)+".oci.tar")
	if err := WriteOCIImageLayoutTar(tarPath, ref, rootfs); err != nil {
		t.Fatal(err)
	}
	return tarPath
}

// layoutFileName turns a reference into a file name: "docker.io/library/
// busybox-fre:latest" → "busybox-fre_latest".
func layoutFileName(ref string) string {
	name := ref
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	return strings.NewReplacer(":", "_", "@", "_").Replace(name)
}
