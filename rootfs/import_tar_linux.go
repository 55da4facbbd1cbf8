package rootfs

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"compress/gzip"
	"github.com/fre-runtime/fre/rootfs/internal/zstd"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// smallFile is the size up to which a layer's file is read into memory and
// hashed before anything is written: a file already in the store then costs
// no write at all. Larger files stream through an ingest file.
const smallFile = 1 << 20

// ChainID is the OCI chain ID of a stack of layer diff IDs (bottom first).
func ChainID(diffIDs []string) string {
	if len(diffIDs) == 0 {
		return ""
	}
	chain := diffIDs[0]
	for _, d := range diffIDs[1:] {
		sum := sha256.Sum256([]byte(chain + " " + d))
		chain = "sha256:" + hex.EncodeToString(sum[:])
	}
	return chain
}

// ImportLayers imports OCI layer tars (bottom first; gzip, zstd or
// uncompressed, told apart by their magic bytes) as one image, applying
// whiteouts and opaque directories in layer order. The tree is named by the
// layers' chain ID; the same layer files (path, size, mtime, ctime, inode)
// imported again return the tree without being read.
func (s *Store) ImportLayers(ctx context.Context, layers []string, opts ImportOptions) (*Tree, error) {
	return s.bounded(ctx)(s.importLayers(ctx, layers, opts))
}

func (s *Store) importLayers(ctx context.Context, layers []string, opts ImportOptions) (*Tree, error) {
	const op = "import layer"
	if len(layers) == 0 {
		return nil, fmt.Errorf("rootfs: import layers: no layers")
	}
	abs := make([]string, len(layers))
	fph := sha256.New()
	fmt.Fprintf(fph, "fre-fingerprint-v1 layers %t %t\n", s.opts.StripSetuid, s.opts.KeyMtime)
	var total int64
	for i, l := range layers {
		a, err := filepath.Abs(l)
		if err != nil {
			return nil, &ImportError{Op: op, Source: l, Err: err}
		}
		abs[i] = a
		var st unix.Stat_t
		if err := unix.Stat(a, &st); err != nil {
			return nil, &ImportError{Op: op, Source: a, Err: err}
		}
		total += st.Size
		fmt.Fprintf(fph, "%x %d %d %d %d %d\n", a, st.Dev, st.Ino, st.Size, st.Mtim.Nano(), st.Ctim.Nano())
	}
	fp := hex.EncodeToString(fph.Sum(nil))

	unlock, err := s.lock(false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if t := s.lookupIndex(fp); t != nil {
		if opts.Ref != "" {
			if err := s.acquireLocked(t.ID, opts.Ref); err != nil {
				return nil, err
			}
		}
		return t, nil
	}
	imp, err := s.newImporter(opts.Progress)
	if err != nil {
		return nil, err
	}
	defer imp.cleanup()
	imp.prog.total.Store(total)
	mt := newMergeTree(s.opts.MaxEntries, s.implicitMeta())

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.Workers)
	budget := &limit{left: s.opts.MaxSize}
	diffIDs := make([]string, len(abs))
	for i, l := range abs {
		d, err := s.readLayer(gctx, imp, g, mt, l, i, budget)
		if err != nil {
			g.Wait()
			return nil, err
		}
		diffIDs[i] = d
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	chain := ChainID(diffIDs)
	t := &Tree{ID: strings.TrimPrefix(chain, "sha256:"), Kind: "layers", Sources: abs, DiffIDs: diffIDs}
	return s.finish(ctx, imp, t, mt.root, []string{fp}, opts.Ref)
}

// limit bounds the uncompressed bytes of one import and remembers the
// entry being read, to name it when the bound is hit.
type limit struct {
	left  int64
	entry string
}

type limitReader struct {
	r io.Reader
	l *limit
}

func (r *limitReader) Read(p []byte) (int, error) {
	if r.l.left <= 0 {
		// At the limit: only a stream that ends here is within it.
		var one [1]byte
		if n, err := r.r.Read(one[:]); n == 0 && err != nil {
			return 0, err
		}
		return 0, reason(ErrTooLarge, "layer decompresses to more than the MaxSize limit")
	}
	if int64(len(p)) > r.l.left {
		p = p[:r.l.left]
	}
	n, err := r.r.Read(p)
	r.l.left -= int64(n)
	return n, err
}

type countReader struct {
	r    io.Reader
	prog *progress
}

func (r *countReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.prog.add(int64(n))
	return n, err
}

// decompress detects the layer's compression by its magic bytes.
func decompress(r *bufio.Reader) (io.Reader, func(), error) {
	magic, _ := r.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, reason(ErrBadLayer, "gzip: %v", err)
		}
		return z, func() { z.Close() }, nil
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return zstdErrors{zstd.NewReader(r)}, func() {}, nil
	case bytes.HasPrefix(magic, []byte("BZh")), bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X'}):
		return nil, nil, reason(ErrBadLayer, "unsupported compression (bzip2/xz)")
	}
	return r, func() {}, nil
}

// zstdErrors marks the decoder's errors as a bad layer's, as gzip's are
// marked where the tar reader meets them.
type zstdErrors struct{ r io.Reader }

func (z zstdErrors) Read(p []byte) (int, error) {
	n, err := z.r.Read(p)
	if err != nil && err != io.EOF {
		err = reason(ErrBadLayer, "zstd: %v", err)
	}
	return n, err
}

// readLayer applies one layer to the merge tree and returns its diff ID.
// Entries are read in order; hashing happens here, writing new objects in
// the pool g.
func (s *Store) readLayer(ctx context.Context, imp *importer, g *errgroup.Group, mt *mergeTree, file string, layer int, budget *limit) (string, error) {
	const op = "import layer"
	f, err := os.Open(file)
	if err != nil {
		return "", &ImportError{Op: op, Source: file, Err: err}
	}
	defer f.Close()
	br := bufio.NewReaderSize(&countReader{f, imp.prog}, 256<<10)
	plain, closeFn, err := decompress(br)
	if err != nil {
		return "", &ImportError{Op: op, Source: file, Err: err}
	}
	defer closeFn()
	diff := sha256.New()
	stream := io.TeeReader(&limitReader{plain, budget}, diff)
	tr := tar.NewReader(stream)
	budget.entry = ""
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", s.layerErr(file, budget.entry, err)
		}
		budget.entry = hdr.Name
		if err := s.applyTarEntry(imp, g, mt, tr, hdr, layer); err != nil {
			return "", s.layerErr(file, hdr.Name, err)
		}
	}
	// The diff ID covers the whole stream, end-of-archive padding included.
	if _, err := io.Copy(io.Discard, stream); err != nil {
		return "", s.layerErr(file, "", err)
	}
	return "sha256:" + hex.EncodeToString(diff.Sum(nil)), nil
}

func (s *Store) layerErr(file, entry string, err error) error {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		err = reason(ErrBadLayer, "truncated")
	case errors.Is(err, tar.ErrHeader), errors.Is(err, tar.ErrFieldTooLong):
		err = reason(ErrBadLayer, "%v", err)
	case errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader):
		err = reason(ErrBadLayer, "%v", err)
	}
	var ie *ImportError
	if errors.As(err, &ie) {
		return err
	}
	return &ImportError{Op: "import layer", Source: file, Entry: entry, Err: err}
}

func tarMeta(hdr *tar.Header) (meta, error) {
	if hdr.Uid < 0 || hdr.Gid < 0 || hdr.Uid > 1<<32-1 || hdr.Gid > 1<<32-1 {
		return meta{}, reason(ErrUnsupported, "uid/gid %d/%d", hdr.Uid, hdr.Gid)
	}
	m := meta{mode: uint32(hdr.Mode) & 0o7777, uid: uint32(hdr.Uid), gid: uint32(hdr.Gid), mtime: hdr.ModTime.UnixNano()}
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			if m.xattrs == nil {
				m.xattrs = map[string]string{}
			}
			m.xattrs[name] = v
		}
	}
	return m, nil
}

func (s *Store) applyTarEntry(imp *importer, g *errgroup.Group, mt *mergeTree, tr *tar.Reader, hdr *tar.Header, layer int) error {
	rel, err := cleanEntry(hdr.Name)
	if err != nil {
		return err
	}
	dir, base := path.Split(rel)
	dir = path.Clean(dir)
	if strings.HasPrefix(base, ".wh.") {
		switch {
		case base == ".wh..wh..opq":
			return mt.opaque(dir, layer)
		case strings.HasPrefix(base, ".wh..wh."):
			return nil // aufs bookkeeping
		}
		name := strings.TrimPrefix(base, ".wh.")
		if name == "" || name == "." || name == ".." {
			return reason(ErrUnsafePath, "bad whiteout")
		}
		return mt.whiteout(path.Join(dir, name), layer)
	}
	var k kind
	switch hdr.Typeflag {
	case tar.TypeDir:
		k = kindDir
	case tar.TypeReg, tar.TypeGNUSparse:
		k = kindReg
	case tar.TypeSymlink:
		k = kindSymlink
	case tar.TypeFifo:
		k = kindFifo
	case tar.TypeLink:
		return s.tarHardlink(mt, rel, hdr, layer)
	case tar.TypeChar, tar.TypeBlock:
		return reason(ErrDevice, "device %d:%d", hdr.Devmajor, hdr.Devminor)
	default:
		return reason(ErrUnsupported, "tar type %q", hdr.Typeflag)
	}
	m, err := tarMeta(hdr)
	if err != nil {
		return err
	}
	if err := s.applyPolicy(&m, k); err != nil {
		return err
	}
	n := &node{kind: k, meta: m, layer: layer}
	switch k {
	case kindSymlink:
		if symlinkEscapes(rel, hdr.Linkname) {
			return reason(ErrUnsafePath, "symlink to %q leaves the tree", hdr.Linkname)
		}
		n.target = hdr.Linkname
	case kindReg:
		// Check the path before spending work on the content.
		if rel == "." {
			return reason(ErrUnsafePath, "root is not a directory")
		}
		if _, _, err := mt.parent(rel, layer, true); err != nil {
			return err
		}
		n.file = &fileRef{meta: m, size: hdr.Size}
		if err := s.ingestTar(imp, g, tr, n.file); err != nil {
			return err
		}
	}
	return mt.put(rel, n)
}

// tarHardlink links rel to a regular file already in the merged tree.
func (s *Store) tarHardlink(mt *mergeTree, rel string, hdr *tar.Header, layer int) error {
	target, err := cleanEntry(hdr.Linkname)
	if err != nil {
		return reason(ErrBadLink, "target %q: %v", hdr.Linkname, err)
	}
	t, err := mt.lookup(target)
	if err != nil {
		return reason(ErrBadLink, "target %q: %v", hdr.Linkname, err)
	}
	if t == nil || t.kind != kindReg {
		return reason(ErrBadLink, "target %q is not a regular file earlier in the tree", hdr.Linkname)
	}
	return mt.put(rel, &node{kind: kindReg, layer: layer, file: t.file})
}

// ingestTar hashes one file's content from the layer and queues the write
// of its object when the store does not have it.
func (s *Store) ingestTar(imp *importer, g *errgroup.Group, tr io.Reader, f *fileRef) error {
	if f.size <= smallFile {
		buf := make([]byte, f.size)
		if _, err := io.ReadFull(tr, buf); err != nil {
			return sizeErr(err, f.size)
		}
		sum := sha256.Sum256(buf)
		s.hashed.Add(1)
		f.key = s.objectKey(sum[:], &f.meta)
		temp := imp.tempName("obj-")
		if !imp.claim(f.key, temp) {
			return nil
		}
		g.Go(func() error {
			return s.writeObject(temp, &f.meta, sum[:], func(dst *os.File) ([]byte, error) {
				got, _, err := copyHashed(dst, bytes.NewReader(buf))
				return got, err
			})
		})
		return nil
	}
	big := imp.tempName("big-")
	out, err := os.OpenFile(big, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("rootfs: create ingest file: %w", err)
	}
	defer out.Close()
	var h hash.Hash = sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(out, h), io.LimitReader(tr, f.size), make([]byte, 256<<10))
	if err == nil && n != f.size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return sizeErr(err, f.size)
	}
	s.hashed.Add(1)
	sum := h.Sum(nil)
	f.key = s.objectKey(sum, &f.meta)
	if !imp.claim(f.key, big) {
		out.Close()
		return os.Remove(big)
	}
	if err := s.setMeta(out, &f.meta); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	return out.Close()
}

func sizeErr(err error, size int64) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return reason(ErrBadLayer, "truncated: content shorter than its size %d", size)
	}
	return err
}
