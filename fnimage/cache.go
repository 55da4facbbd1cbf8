package fnimage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// The layer cache: a part whose inputs are unchanged (the same entries,
// and each host file with the same size, mtime, ctime, inode and device)
// is not compressed again; its blob is linked from the cache. So a rebuild
// after a change of the code compresses only the code.
const cacheVersion = "fnimage-layer-v1 gzip-default"

// partKey is the cache's key for p: "" when an input cannot be read (the
// build then fails where it reads it).
func partKey(p *part) string {
	h := sha256.New()
	io.WriteString(h, cacheVersion+"\x00"+p.name+"\x00")
	for _, name := range p.withParents() {
		e := p.entries[name]
		if e == nil {
			fmt.Fprintf(h, "%s\x00dir\x00", name)
			continue
		}
		fmt.Fprintf(h, "%s\x00%o\x00%s\x00", name, uint32(e.mode), e.link)
		switch {
		case e.src != "":
			var st unix.Stat_t
			if unix.Stat(e.src, &st) != nil {
				return ""
			}
			fmt.Fprintf(h, "%s\x00%d %d.%d %d.%d %d %d\x00", e.src, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec, st.Ino, st.Dev)
		case e.data != nil:
			d := sha256.Sum256(e.data)
			fmt.Fprintf(h, "data %x\x00", d)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// fromCache links the cached layer of key into the layout at dir.
func fromCache(cache, key, dir string) *Layer {
	if cache == "" || key == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(cache, key+".json"))
	if err != nil {
		return nil
	}
	var l Layer
	if json.Unmarshal(b, &l) != nil || !strings.HasPrefix(l.Digest, "sha256:") {
		return nil
	}
	if linkOrCopy(blobPath(cache, l.Digest), blobPath(dir, l.Digest)) != nil {
		return nil
	}
	return &l
}

// toCache keeps a written layer for the next build; a failure only costs
// the next build the compression.
func toCache(cache, key, dir string, l *Layer) {
	if cache == "" || key == "" {
		return
	}
	if os.MkdirAll(filepath.Dir(blobPath(cache, l.Digest)), 0o700) != nil {
		return
	}
	if linkOrCopy(blobPath(dir, l.Digest), blobPath(cache, l.Digest)) != nil {
		return
	}
	b, _ := json.Marshal(l)
	tmp := filepath.Join(cache, key+".json.tmp"+fmt.Sprint(os.Getpid()))
	if os.WriteFile(tmp, b, 0o600) == nil {
		if os.Rename(tmp, filepath.Join(cache, key+".json")) != nil {
			os.Remove(tmp)
		}
	}
}

func linkOrCopy(src, dst string) error {
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}
