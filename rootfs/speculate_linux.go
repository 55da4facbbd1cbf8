package rootfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
)

// ErrStale: a speculated tree is not the directory's current content (see
// Speculate).
var ErrStale = errors.New("rootfs: directory changed since its last import")

// hintsDir holds, per imported directory, the fingerprint and tree of its
// last import: what Speculate bets on.
const hintsDir = "hints"

// Speculate returns, without walking dir, the tree dir's last ImportDir
// returned, held for opts.Ref as ImportDir would, and check, which walks
// dir as ImportDir does and returns nil if dir still has the fingerprint
// it had then (the tree is its content), ErrStale if not. ok is false when
// there is nothing to bet on (no import of dir recorded, or its tree is
// gone): use ImportDir.
//
// The walk of every entry is a cached import's whole cost, and on a
// container's start path it need not come first: the caller sets the
// container up on the tree while check runs, and lets no program of the
// container run before check has returned nil. On ErrStale it releases
// the tree (Release) and imports.
func (s *Store) Speculate(ctx context.Context, dir string, opts ImportOptions) (t *Tree, check func() error, ok bool, err error) {
	abs, err := absDir(dir)
	if err != nil {
		return nil, nil, false, nil // ImportDir will say
	}
	fp, id, found := s.readHint(abs)
	if !found {
		return nil, nil, false, nil
	}
	// Read and held under the store's lock, which GC takes alone: the
	// tree read is the tree held.
	unlock, err := s.lock(false)
	if err != nil {
		return nil, nil, false, err
	}
	t, err = s.readTree(id)
	if err != nil {
		unlock()
		return nil, nil, false, nil // collected (or unreadable): nothing to bet on
	}
	if opts.Ref != "" {
		if !validID(opts.Ref) {
			err = fmt.Errorf("rootfs: acquire tree %s for %q: %w", id, opts.Ref, ErrInvalidID)
		} else {
			err = s.acquireLocked(id, opts.Ref)
		}
	}
	unlock()
	if err != nil {
		return nil, nil, false, err
	}
	t.Cached = true
	check = func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		got, _, err := s.fingerprint("import dir", "dir", []string{abs})
		if err != nil {
			return fmt.Errorf("%w: %v", ErrStale, err)
		}
		if got != fp {
			return ErrStale
		}
		return nil
	}
	return t, check, true, nil
}

var hintSeq atomic.Int64

// hintPath is where the hint for directory abs lives: keyed by what the
// fingerprint depends on besides the directory's content.
func (s *Store) hintPath(abs string) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("fre-hint-v1 %t %t %s", s.opts.StripSetuid, s.opts.KeyMtime, abs)))
	return filepath.Join(s.root, hintsDir, hex.EncodeToString(h[:]))
}

// writeHint records that abs, with fingerprint fp, is tree id. Best
// effort: a hint is only ever a bet that check verifies.
func (s *Store) writeHint(abs, fp, id string) {
	p := s.hintPath(abs)
	want := fp + " " + id
	if b, err := readSmall(p); err == nil && string(b) == want {
		return
	}
	if err := os.Mkdir(filepath.Dir(p), 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return
	}
	tmp := p + ".tmp-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(hintSeq.Add(1), 10)
	if err := os.WriteFile(tmp, []byte(want), 0o600); err != nil {
		os.Remove(tmp)
		return
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
	}
}

func (s *Store) readHint(abs string) (fp, id string, ok bool) {
	b, err := readSmall(s.hintPath(abs))
	if err != nil {
		return "", "", false
	}
	fp, id, ok = strings.Cut(string(b), " ")
	if !ok || len(fp) != 64 || !validID(id) {
		return "", "", false
	}
	return fp, id, true
}
