package fnimage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"

	digest "github.com/opencontainers/go-digest"
	imgspecs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/fre-runtime/fre/fret"
)

// Labels the image config carries: the template's tenant, workDir and
// limits, for the engine and for whoever runs the image elsewhere.
const (
	LabelID       = "dev.fre.function.id"
	LabelVersion  = "dev.fre.function.version"
	LabelTenant   = "dev.fre.tenant"
	LabelWorkDir  = "dev.fre.workdir"
	LabelMemory   = "dev.fre.resources.memory"
	LabelCPU      = "dev.fre.resources.cpu"
	LabelPids     = "dev.fre.resources.pids"
	annotationRef = "org.opencontainers.image.ref.name"
	// annotationContainerdName is what `ctr images import` names the
	// image by first.
	annotationContainerdName = "io.containerd.image.name"
)

// DefaultPath is the PATH of every function image.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

type layout struct {
	manifest, config string
	layers           []*Layer
}

func blobPath(dir, d string) string {
	return filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(d, "sha256:"))
}

func (l *layout) layerFiles(dir string) []string {
	out := make([]string, len(l.layers))
	for i, x := range l.layers {
		out[i] = blobPath(dir, x.Digest)
	}
	return out
}

// writeLayout writes dir as an OCI image layout of one image: a layer per
// part that has files, bottom first.
func writeLayout(dir, cache string, t *fret.Template, parts []*part) (*layout, error) {
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return nil, err
	}
	lay := &layout{}
	for _, p := range parts {
		if len(p.entries) == 0 {
			continue
		}
		key := partKey(p)
		if l := fromCache(cache, key, dir); l != nil {
			lay.layers = append(lay.layers, l)
			continue
		}
		tmp := filepath.Join(dir, "blobs", "layer-"+p.name)
		f, err := os.Create(tmp)
		if err != nil {
			return nil, err
		}
		l, err := writeLayer(p, f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		if err := os.Rename(tmp, blobPath(dir, l.Digest)); err != nil {
			return nil, err
		}
		toCache(cache, key, dir, l)
		lay.layers = append(lay.layers, l)
	}
	cfg, err := imageConfig(t, lay.layers)
	if err != nil {
		return nil, err
	}
	cfgDesc, err := writeBlob(dir, ocispec.MediaTypeImageConfig, cfg)
	if err != nil {
		return nil, err
	}
	m := ocispec.Manifest{
		Versioned: imgspecs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cfgDesc,
	}
	for _, l := range lay.layers {
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip,
			Digest: digest.Digest(l.Digest), Size: l.Size,
			Annotations: map[string]string{"dev.fre.part": l.Part}})
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	mDesc, err := writeBlob(dir, ocispec.MediaTypeImageManifest, mb)
	if err != nil {
		return nil, err
	}
	name := ImageName(t)
	mDesc.Annotations = map[string]string{annotationRef: name, annotationContainerdName: name}
	mDesc.Platform = &ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"}
	idx, err := json.Marshal(ocispec.Index{
		Versioned: imgspecs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{mDesc},
	})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, ocispec.ImageLayoutFile), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return nil, err
	}
	lay.manifest, lay.config = string(mDesc.Digest), string(cfgDesc.Digest)
	return lay, nil
}

func writeBlob(dir, mediaType string, b []byte) (ocispec.Descriptor, error) {
	h := sha256.Sum256(b)
	d := "sha256:" + hex.EncodeToString(h[:])
	if err := os.WriteFile(blobPath(dir, d), b, 0o644); err != nil {
		return ocispec.Descriptor{}, err
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.Digest(d), Size: int64(len(b))}, nil
}

// imageEnv is a function's environment: PATH (the template's, else
// DefaultPath's), then the template's variables, sorted.
func imageEnv(t *fret.Template) []string {
	env := []string{DefaultPath}
	keys := make([]string, 0, len(t.Env))
	for k := range t.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "PATH" {
			env[0] = "PATH=" + t.Env[k]
			continue
		}
		env = append(env, k+"="+t.Env[k])
	}
	return env
}

// imageConfig is the image's config: the template's entrypoint, env (after
// PATH, sorted), /code as the working directory, limits and tenant as
// labels; created at the epoch, so the digest is the inputs'.
func imageConfig(t *fret.Template, layers []*Layer) ([]byte, error) {
	created := epoch
	env := imageEnv(t)
	labels := map[string]string{LabelID: t.ID, LabelVersion: t.Version, LabelTenant: t.Tenant, LabelWorkDir: "/" + workDir(t)}
	if r := t.Resources; r.Memory != "" {
		labels[LabelMemory] = r.Memory
	}
	if r := t.Resources; r.CPU != "" {
		labels[LabelCPU] = r.CPU
	}
	if r := t.Resources; r.Pids != 0 {
		labels[LabelPids] = strconv.FormatInt(r.Pids, 10)
	}
	img := ocispec.Image{
		Created:  &created,
		Platform: ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"},
		Config: ocispec.ImageConfig{
			Env: env, Entrypoint: t.Entrypoint, WorkingDir: "/" + CodeDir, Labels: labels,
			Volumes: map[string]struct{}{"/" + workDir(t): {}},
		},
		RootFS: ocispec.RootFS{Type: "layers"},
	}
	for _, l := range layers {
		img.RootFS.DiffIDs = append(img.RootFS.DiffIDs, digest.Digest(l.DiffID))
	}
	b, err := json.Marshal(img)
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	return b, nil
}
