package netns

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/internal/flock"
)

// Layout of a pool directory; see the package documentation.
const (
	idleDir    = "idle"
	usedDir    = "used"
	stagingDir = "staging"
	fillLock   = "fill.lock"
	pinName    = "net"
)

// runInterval bounds how long Run waits before recounting the idle set:
// other processes take from the same directory without waking this one.
const runInterval = time.Second

// Pool keeps pre-created, pinned network namespaces in a directory shared
// by every process that opens a Pool on it. Its methods are safe for
// concurrent use, within and across processes.
type Pool struct {
	dir, idle, used, staging string
	size                     int

	kick chan struct{} // wakes Run after a Take
	wg   sync.WaitGroup

	// cands are idle names read from disk and not yet tried by this
	// process. Handing each to one goroutine means concurrent Takes of one
	// process never race each other for an entry, and the directory is
	// read once per batch of Takes, not once per Take.
	cmu   sync.Mutex
	cands []string

	mu     sync.Mutex
	closed bool
	errs   []error // from background releases, reported by Wait and Close
}

// Stats is a snapshot of a pool directory.
type Stats struct {
	Idle int // ready to be taken
	Used int // handed out and not yet released (by any process)
}

// NewPool returns a pool of size idle namespaces in dir. It touches nothing
// on disk: the directory is set up by the first Take, Fill or Stats.
func NewPool(dir string, size int) *Pool {
	return &Pool{
		dir:     dir,
		idle:    filepath.Join(dir, idleDir),
		used:    filepath.Join(dir, usedDir),
		staging: filepath.Join(dir, stagingDir),
		size:    size,
		kick:    make(chan struct{}, 1),
	}
}

// Dir returns the pool's directory.
func (p *Pool) Dir() string { return p.dir }

// Size returns the number of idle namespaces Run keeps.
func (p *Pool) Size() int { return p.size }

// Take hands out a network namespace: an idle one (pooled=true) if any, a
// new one otherwise, so an empty pool never makes a start fail. path is
// owned by the caller until it passes it to Release.
func (p *Pool) Take() (path string, pooled bool, err error) {
	done, err := p.use()
	if err != nil {
		return "", false, err
	}
	defer done()
	for refreshed := false; ; {
		name, ok := p.popCandidate()
		if !ok {
			if refreshed {
				break
			}
			if err := p.refreshCandidates(); err != nil {
				return "", false, err
			}
			refreshed = true
			continue
		}
		err := os.Rename(filepath.Join(p.idle, name), filepath.Join(p.used, name))
		if err == nil {
			p.wake()
			return filepath.Join(p.used, name, pinName), true, nil
		}
		// ENOENT: another process took it first.
		if !errors.Is(err, fs.ErrNotExist) {
			return "", false, &Error{Op: "claim", Path: filepath.Join(p.idle, name), Err: err}
		}
	}
	// Miss: create one straight into used/, where no one else looks.
	entry, err := newEntry(p.used)
	if err != nil {
		return "", false, err
	}
	path = filepath.Join(entry, pinName)
	if err := create(path); err != nil {
		os.Remove(entry)
		return "", false, err
	}
	p.wake()
	return path, false, nil
}

// Release unpins a namespace handed out by Take, in the background (the
// kernel's netns teardown is slow and serialised). It is never reused: the
// namespace dies with the last process in it. Errors are reported by Wait
// and Close.
func (p *Pool) Release(path string) {
	p.mu.Lock()
	closed := p.closed
	if !closed {
		p.wg.Add(1)
	}
	p.mu.Unlock()
	if closed {
		p.record(p.release(path))
		return
	}
	go func() {
		defer p.wg.Done()
		p.record(p.release(path))
	}()
}

// ReleaseNow is Release done before it returns: the pin is gone (the
// kernel tears the namespace down on its own time), and so is the pool's
// tmpfs if that was its last pin. Delete uses it, so that no pin outlives
// the state that records it.
func (p *Pool) ReleaseNow(path string) error { return p.release(path) }

// Fill creates idle namespaces until there are at least n. Fills are
// serialised across processes by a lock file, so concurrent fills do not
// overshoot.
func (p *Pool) Fill(n int) error {
	done, err := p.use()
	if err != nil {
		return err
	}
	defer done()
	unlock, err := p.lockFill()
	if err != nil {
		return err
	}
	defer unlock()
	if p.isClosed() {
		return ErrPoolClosed
	}
	// Under the fill lock nobody is staging, so whatever is left in
	// staging/ was abandoned by a crashed filler.
	if err := p.sweep(p.staging); err != nil {
		return err
	}
	names, err := readNames(p.idle)
	if err != nil {
		return err
	}
	for have := len(names); have < n; have++ {
		if p.isClosed() {
			return ErrPoolClosed
		}
		// Stage, then rename into idle/ once complete, so a taker never
		// sees a half-made namespace.
		entry, err := newEntry(p.staging)
		if err != nil {
			return err
		}
		if err := create(filepath.Join(entry, pinName)); err != nil {
			os.Remove(entry)
			return err
		}
		name := filepath.Base(entry)
		if err := os.Rename(entry, filepath.Join(p.idle, name)); err != nil {
			return &Error{Op: "publish", Path: entry, Err: err}
		}
		p.pushCandidate(name)
	}
	return nil
}

// Run keeps the pool at its size until ctx is done or the pool is closed:
// it refills after every Take of this process and at least every second
// (for Takes of other processes). It returns the first Fill error; the
// caller logs it and may call Run again. Takes keep working meanwhile.
func (p *Pool) Run(ctx context.Context) error {
	t := time.NewTicker(runInterval)
	defer t.Stop()
	for {
		if err := p.Fill(p.size); err != nil {
			if errors.Is(err, ErrPoolClosed) {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.kick:
		case <-t.C:
		}
	}
}

// Wait waits for this process's background releases and returns their
// errors. Short-lived processes sharing the directory (the CLI) call Wait,
// not Close, before exiting, so the idle set survives for the next one.
func (p *Pool) Wait() error {
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	err := errors.Join(p.errs...)
	p.errs = nil
	return err
}

// Close stops the pool: Take, Fill and Run fail with ErrPoolClosed, it
// waits for background releases and destroys every idle namespace in the
// directory. Namespaces handed out stay pinned until released.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	errs := []error{p.Wait()}
	if _, err := os.Stat(p.idle); err == nil {
		if done, err := p.enter(); err == nil {
			errs = append(errs, p.drain())
			done()
		}
		errs = append(errs, p.unmountIfEmpty())
	}
	return errors.Join(errs...)
}

// Stats counts the idle and used namespaces in the directory.
func (p *Pool) Stats() (Stats, error) {
	done, err := p.use()
	if err != nil {
		return Stats{}, err
	}
	defer done()
	idle, err := readNames(p.idle)
	if err != nil {
		return Stats{}, err
	}
	used, err := readNames(p.used)
	if err != nil {
		return Stats{}, err
	}
	return Stats{Idle: len(idle), Used: len(used)}, nil
}

// Purge destroys a pool directory entirely: every namespace in it, idle or
// handed out, is unpinned, the directory's own bind mount is undone and the
// directory removed. Namespaces still in use by processes live on until
// those exit. For cleanup after a crash, uninstall and tests.
func Purge(dir string) error {
	var errs []error
	for _, sub := range []string{stagingDir, idleDir, usedDir} {
		d := filepath.Join(dir, sub)
		names, err := readNames(d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, name := range names {
			errs = append(errs, removeEntry(filepath.Join(d, name)))
		}
	}
	errs = append(errs, unprepareDir(dir))
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, &Error{Op: "remove", Path: dir, Err: err})
	}
	os.Remove(dir + ".lock")
	return errors.Join(errs...)
}

// use marks the directory in use for one operation (a shared lock on a
// file beside it, which unmountIfEmpty takes alone) and makes sure its
// tmpfs is there: set up at first use, and again after the last pin went
// and whoever released it unmounted the pool (idle/ is then missing).
func (p *Pool) use() (done func(), err error) {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return nil, ErrPoolClosed
	}
	return p.enter()
}

// enter is use without the closed check (Close's drain).
func (p *Pool) enter() (done func(), err error) {
	fd, err := p.lockUse(unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	done = func() { unix.Close(fd) }
	var st unix.Stat_t
	if unix.Stat(p.idle, &st) == nil {
		return done, nil
	}
	preparedDirs.Delete(p.dir) // unmounted by another process meanwhile
	if err := prepareDir(p.dir, true); err != nil {
		done()
		return nil, err
	}
	for _, d := range []string{p.idle, p.used, p.staging} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			done()
			return nil, &Error{Op: "mkdir", Path: d, Err: err}
		}
	}
	return done, nil
}

// lockUse takes the lock beside the directory (how: LOCK_SH, or LOCK_EX
// with LOCK_NB) and returns its fd.
func (p *Pool) lockUse(how int) (int, error) {
	f := p.dir + ".lock"
	fd, err := unix.Open(f, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err == unix.ENOENT {
		// The pool's parent is not there yet: made once, not checked on
		// every Take.
		if err := os.MkdirAll(filepath.Dir(p.dir), 0o755); err != nil {
			return -1, &Error{Op: "mkdir", Path: filepath.Dir(p.dir), Err: err}
		}
		fd, err = unix.Open(f, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	}
	if err != nil {
		return -1, &Error{Op: "open", Path: f, Err: err}
	}
	err = flock.Lock(fd, how)
	if err != nil {
		unix.Close(fd)
		return -1, &Error{Op: "lock", Path: f, Err: err}
	}
	return fd, nil
}

// release destroys a namespace handed out, then unmounts the pool if that
// was its last pin.
func (p *Pool) release(path string) error {
	done, err := p.use()
	if err != nil {
		if errors.Is(err, ErrPoolClosed) {
			return p.destroy(path)
		}
		return err
	}
	err = p.destroy(path)
	done()
	return errors.Join(err, p.unmountIfEmpty())
}

// unmountIfEmpty unmounts the pool's tmpfs and removes its directory when
// no pin is left in it (idle, used or staging) and no one else is using
// it; it leaves it as it is otherwise (whoever is, releases later and
// looks again). So a pool that is not kept warm holds no mount once its
// last container is gone.
func (p *Pool) unmountIfEmpty() error {
	fd, err := p.lockUse(unix.LOCK_EX | unix.LOCK_NB)
	if err != nil {
		return nil // in use: not now
	}
	defer unix.Close(fd)
	for _, d := range []string{p.idle, p.used, p.staging} {
		names, err := readNames(d)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // not set up, or gone already
			}
			return err
		}
		if len(names) > 0 {
			return nil
		}
	}
	p.cmu.Lock()
	p.cands = nil
	p.cmu.Unlock()
	if err := unprepareDir(p.dir); err != nil {
		return err
	}
	if err := os.Remove(p.dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return &Error{Op: "remove", Path: p.dir, Err: err}
	}
	return nil
}

// drain destroys the idle set under the fill lock, so no filler (of any
// process) races with it.
func (p *Pool) drain() error {
	unlock, err := p.lockFill()
	if err != nil {
		return err
	}
	defer unlock()
	var errs []error
	names, err := readNames(p.idle)
	if err != nil {
		return err
	}
	for _, name := range names {
		// Claim before destroying: another process may be taking it.
		staged := filepath.Join(p.staging, name)
		if err := os.Rename(filepath.Join(p.idle, name), staged); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, &Error{Op: "claim", Path: filepath.Join(p.idle, name), Err: err})
			}
			continue
		}
		errs = append(errs, removeEntry(staged))
	}
	return errors.Join(errs...)
}

// sweep destroys every entry of d.
func (p *Pool) sweep(d string) error {
	names, err := readNames(d)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		errs = append(errs, removeEntry(filepath.Join(d, name)))
	}
	return errors.Join(errs...)
}

// destroy unpins path and, when it is one of this pool's entries, removes
// its entry directory.
func (p *Pool) destroy(path string) error {
	entry := filepath.Dir(path)
	if filepath.Base(path) == pinName && filepath.Dir(entry) == p.used {
		return removeEntry(entry)
	}
	return Remove(path)
}

func (p *Pool) lockFill() (unlock func(), err error) {
	path := filepath.Join(p.dir, fillLock)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &Error{Op: "open", Path: path, Err: err}
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return nil, &Error{Op: "lock", Path: path, Err: err}
	}
	// Closing the fd drops the lock.
	return func() { unix.Close(fd) }, nil
}

func (p *Pool) popCandidate() (string, bool) {
	p.cmu.Lock()
	defer p.cmu.Unlock()
	if len(p.cands) == 0 {
		return "", false
	}
	name := p.cands[len(p.cands)-1]
	p.cands = p.cands[:len(p.cands)-1]
	return name, true
}

func (p *Pool) pushCandidate(name string) {
	p.cmu.Lock()
	p.cands = append(p.cands, name)
	p.cmu.Unlock()
}

// refreshCandidates rereads idle/ if no candidate is left; concurrent
// callers wait for one read. The order is shuffled so that processes that
// read the same directory do not all race for the same first entry.
func (p *Pool) refreshCandidates() error {
	p.cmu.Lock()
	defer p.cmu.Unlock()
	if len(p.cands) > 0 {
		return nil
	}
	names, err := readNames(p.idle)
	if err != nil {
		return err
	}
	rand.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	p.cands = names
	return nil
}

func (p *Pool) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *Pool) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

func (p *Pool) record(err error) {
	if err == nil {
		return
	}
	p.mu.Lock()
	p.errs = append(p.errs, err)
	p.mu.Unlock()
}

// removeEntry unpins <entry>/net and removes the entry directory.
func removeEntry(entry string) error {
	if err := Remove(filepath.Join(entry, pinName)); err != nil {
		return err
	}
	if err := os.Remove(entry); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return &Error{Op: "remove", Path: entry, Err: err}
	}
	return nil
}

// newEntry creates a uniquely named empty entry directory in d.
func newEntry(d string) (string, error) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], rand.Uint64())
	entry := filepath.Join(d, hex.EncodeToString(b[:]))
	if err := os.Mkdir(entry, 0o700); err != nil {
		return "", &Error{Op: "mkdir", Path: entry, Err: err}
	}
	return entry, nil
}

// readNames lists d; a missing d is empty.
func readNames(d string) ([]string, error) {
	f, err := os.Open(d)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, &Error{Op: "list", Path: d, Err: err}
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, &Error{Op: "list", Path: d, Err: err}
	}
	return names, nil
}
