package fnimage

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// CodeDir is where a function's code goes in its image.
const CodeDir = "code"

// maxCodeBytes bounds what a code archive may unpack to (archive bombs).
const maxCodeBytes = 1 << 30

// CodeError is code the build refuses: a link out of it, a device, a
// hostile archive entry.
type CodeError struct {
	Path string // in the code directory or archive
	Why  string
}

func (e *CodeError) Error() string { return fmt.Sprintf("code: %s: %s", e.Path, e.Why) }

// codePart reads the template's code, a directory or an archive, into the
// code part under /code: regular files, directories and symlinks that stay
// inside the code; anything else is refused.
func codePart(src string) (*part, error) {
	p := newPart("code")
	p.dir(CodeDir, 0o755)
	st, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("code: %w", err)
	}
	if st.IsDir() {
		return p, codeFromDir(p, src)
	}
	switch {
	case strings.HasSuffix(src, ".zip"):
		return p, codeFromZip(p, src)
	case strings.HasSuffix(src, ".tar"), strings.HasSuffix(src, ".tar.gz"), strings.HasSuffix(src, ".tgz"):
		return p, codeFromTar(p, src)
	}
	return nil, fmt.Errorf("code: %s is neither a directory nor an archive (.tar, .tar.gz, .tgz, .zip)", src)
}

func codeFromDir(p *part, root string) error {
	return filepath.WalkDir(root, func(host string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, host)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch m := info.Mode(); {
		case m.IsDir():
			p.dir(path.Join(CodeDir, rel), m.Perm())
		case m.IsRegular():
			p.file(path.Join(CodeDir, rel), host, m.Perm()|m&(fs.ModeSetuid|fs.ModeSetgid))
		case m&fs.ModeSymlink != 0:
			target, err := os.Readlink(host)
			if err != nil {
				return err
			}
			if err := linkInside(rel, target); err != nil {
				return err
			}
			p.symlink(path.Join(CodeDir, rel), target)
		default:
			return &CodeError{Path: rel, Why: fmt.Sprintf("a %v, not a file, directory or link", m.Type())}
		}
		return nil
	})
}

// linkInside: a link at rel (in the code) to target must stay in the code,
// resolved from the link's directory; an absolute target never does.
func linkInside(rel, target string) error {
	if path.IsAbs(target) {
		return &CodeError{Path: rel, Why: fmt.Sprintf("a link to %s, outside the code (absolute)", target)}
	}
	if !filepath.IsLocal(path.Join(path.Dir(rel), target)) {
		return &CodeError{Path: rel, Why: fmt.Sprintf("a link to %s, outside the code", target)}
	}
	return nil
}

// entryName checks an archive entry's name: relative, inside, no "..".
func entryName(name string) (string, error) {
	n := strings.TrimSuffix(name, "/")
	if n == "" || path.IsAbs(n) || !filepath.IsLocal(n) || strings.Contains(n, "\\") {
		return "", &CodeError{Path: name, Why: "an entry outside the archive's root"}
	}
	return path.Clean(n), nil
}

// budget counts what an archive unpacks to.
type budget struct{ left int64 }

func (b *budget) take(name string, n int64) error {
	if b.left -= n; b.left < 0 {
		return &CodeError{Path: name, Why: fmt.Sprintf("the archive unpacks to more than %d bytes", int64(maxCodeBytes))}
	}
	return nil
}

func codeFromTar(p *part, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if !strings.HasSuffix(src, ".tar") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("code: %s: %w", src, err)
		}
		defer gz.Close()
		r = gz
	}
	tr := tar.NewReader(r)
	b := &budget{left: maxCodeBytes}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("code: %s: %w", src, err)
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return err
		}
		at := path.Join(CodeDir, name)
		perm := fs.FileMode(hdr.Mode) & fs.ModePerm
		switch hdr.Typeflag {
		case tar.TypeDir:
			p.dir(at, perm)
		case tar.TypeReg:
			if err := b.take(name, hdr.Size); err != nil {
				return err
			}
			data, err := io.ReadAll(io.LimitReader(tr, hdr.Size))
			if err != nil {
				return fmt.Errorf("code: %s: %s: %w", src, name, err)
			}
			p.bytes(at, data, perm)
		case tar.TypeSymlink:
			if err := linkInside(name, hdr.Linkname); err != nil {
				return err
			}
			p.symlink(at, hdr.Linkname)
		default:
			return &CodeError{Path: name, Why: fmt.Sprintf("tar entry type %q, not a file, directory or symlink", hdr.Typeflag)}
		}
	}
}

func codeFromZip(p *part, src string) error {
	zr, err := zip.OpenReader(src)
	if err != nil {
		return fmt.Errorf("code: %s: %w", src, err)
	}
	defer zr.Close()
	b := &budget{left: maxCodeBytes}
	for _, zf := range zr.File {
		name, err := entryName(zf.Name)
		if err != nil {
			return err
		}
		at := path.Join(CodeDir, name)
		m := zf.Mode()
		switch {
		case m.IsDir():
			p.dir(at, m.Perm()|0o700)
		case m.IsRegular():
			if err := b.take(name, int64(zf.UncompressedSize64)); err != nil {
				return err
			}
			data, err := readZip(zf)
			if err != nil {
				return fmt.Errorf("code: %s: %s: %w", src, name, err)
			}
			p.bytes(at, data, m.Perm()|0o400)
		case m&fs.ModeSymlink != 0:
			target, err := readZip(zf)
			if err != nil {
				return err
			}
			if err := linkInside(name, string(target)); err != nil {
				return err
			}
			p.symlink(at, string(target))
		default:
			return &CodeError{Path: name, Why: fmt.Sprintf("zip entry of mode %v, not a file, directory or symlink", m)}
		}
	}
	return nil
}

func readZip(zf *zip.File) ([]byte, error) {
	rc, err := zf.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, int64(zf.UncompressedSize64)+1))
	if err == nil && uint64(len(data)) != zf.UncompressedSize64 {
		err = fmt.Errorf("size %d, the archive says %d", len(data), zf.UncompressedSize64)
	}
	return data, err
}
