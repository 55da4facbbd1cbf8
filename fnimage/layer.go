package fnimage

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"
)

// epoch is every entry's mtime: the same files give the same layer.
var epoch = time.Unix(0, 0).UTC()

// entry is one file of a part, at its path in the image.
type entry struct {
	mode fs.FileMode // type and permission bits
	src  string      // a regular file's content: this host file...
	data []byte      // ...or these bytes, when src is ""
	link string      // a symlink's target
	// mtime is a base file's host mtime (Python checks a .pyc against its
	// source's); zero is the epoch, as for every other entry.
	mtime time.Time
}

// part is what one layer holds: image paths (clean, relative, no leading
// slash) to entries. Parents are added as 0755 directories when written.
type part struct {
	name    string
	entries map[string]*entry
}

func newPart(name string) *part { return &part{name: name, entries: map[string]*entry{}} }

func (p *part) dir(name string, perm fs.FileMode) {
	p.entries[clean(name)] = &entry{mode: fs.ModeDir | perm}
}

func (p *part) file(name, src string, perm fs.FileMode) {
	p.entries[clean(name)] = &entry{mode: perm, src: src}
}

func (p *part) bytes(name string, data []byte, perm fs.FileMode) {
	p.entries[clean(name)] = &entry{mode: perm, data: data}
}

func (p *part) symlink(name, target string) {
	p.entries[clean(name)] = &entry{mode: fs.ModeSymlink | 0o777, link: target}
}

func clean(name string) string { return strings.TrimPrefix(path.Clean("/"+name), "/") }

// withParents is the part's paths and every parent directory they need,
// sorted, so a tar lists a directory before what is in it.
func (p *part) withParents() []string {
	seen := map[string]bool{}
	var names []string
	for name := range p.entries {
		for d := path.Dir(name); d != "." && !seen[d]; d = path.Dir(d) {
			seen[d] = true
			if _, ok := p.entries[d]; !ok {
				names = append(names, d)
			}
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Layer is one written layer (also what the layer cache keeps of it).
type Layer struct {
	Part   string `json:"part"`
	Digest string `json:"digest"` // of the compressed blob: sha256:...
	DiffID string `json:"diffID"` // of the tar
	Size   int64  `json:"size"`   // compressed
	Tar    int64  `json:"tar"`    // uncompressed bytes
	Files  int    `json:"files"`
}

// writeLayer writes p as a gzip-compressed tar to w: the same part gives
// the same bytes (the same gzip level, no name, no time in its header).
func writeLayer(p *part, w io.Writer) (*Layer, error) {
	blob := sha256.New()
	bc := &counter{w: io.MultiWriter(w, blob)}
	gz, err := gzip.NewWriterLevel(bc, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	diff := sha256.New()
	tc := &counter{w: io.MultiWriter(gz, diff)}
	tw := tar.NewWriter(tc)
	l := &Layer{Part: p.name}
	for _, name := range p.withParents() {
		e := p.entries[name]
		if e == nil {
			e = &entry{mode: fs.ModeDir | 0o755}
		}
		hdr := &tar.Header{Name: name, Mode: tarMode(e.mode), ModTime: epoch, Uname: "root", Gname: "root"}
		if !e.mtime.IsZero() {
			hdr.ModTime = e.mtime
		}
		switch {
		case e.mode.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
		case e.mode&fs.ModeSymlink != 0:
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, e.link
		default:
			hdr.Typeflag = tar.TypeReg
			l.Files++
		}
		if hdr.Typeflag != tar.TypeReg {
			if err := tw.WriteHeader(hdr); err != nil {
				return nil, err
			}
			continue
		}
		if err := writeFile(tw, hdr, e); err != nil {
			return nil, fmt.Errorf("layer %s: /%s: %w", p.name, name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	l.Digest, l.DiffID = sum(blob), sum(diff)
	l.Size, l.Tar = bc.n, tc.n
	return l, nil
}

func writeFile(tw *tar.Writer, hdr *tar.Header, e *entry) error {
	if e.src == "" {
		hdr.Size = int64(len(e.data))
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(e.data)
		return err
	}
	f, err := os.Open(e.src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", e.src)
	}
	hdr.Size = st.Size()
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	// The size read is the size written: a file that changes meanwhile
	// fails the build instead of writing a torn layer.
	if n, err := io.Copy(tw, io.LimitReader(f, st.Size()+1)); err != nil || n != st.Size() {
		if err == nil {
			err = fmt.Errorf("%s changed size while read", e.src)
		}
		return err
	}
	return nil
}

// tarMode is a FileMode's permission and set-id/sticky bits as tar keeps
// them.
func tarMode(m fs.FileMode) int64 {
	v := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return v
}

type counter struct {
	w io.Writer
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func sum(h hash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }
