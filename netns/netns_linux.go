package netns

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// New creates a network namespace with loopback up and pins it by
// bind-mounting its nsfs file onto <dir>/<name>, as `ip netns add` does.
// dir is created if needed and made a shared mount point (see
// prepareDir). The returned path can be opened and passed to setns(2), and
// stays valid until Remove.
func New(dir, name string) (string, error) {
	if name == "" || name == "." || name == ".." || filepath.Base(name) != name {
		return "", &Error{Op: "new", Path: filepath.Join(dir, name), Err: ErrInvalidName}
	}
	if err := prepareDir(dir, false); err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	if err := create(path); err != nil {
		return "", err
	}
	return path, nil
}

// Remove unpins the network namespace at path and removes the file. The
// namespace itself is destroyed by the kernel once no process is left in
// it. Removing a path that does not exist is not an error.
func Remove(path string) error {
	// A pin looks like a regular file (nsfs inodes are S_IFREG). Anything
	// else, a symlink in particular, is refused rather than followed.
	fi, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return &Error{Op: "remove", Path: path, Err: err}
	}
	if !fi.Mode().IsRegular() {
		return &Error{Op: "remove", Path: path, Err: ErrNotNetns}
	}
	// Unmount only nsfs mounts, so that a wrong path can never detach an
	// unrelated file system. Loop because a path may have been pinned twice.
	for {
		var st unix.Statfs_t
		if err := unix.Statfs(path, &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return nil
			}
			return &Error{Op: "statfs", Path: path, Err: err}
		}
		if st.Type != unix.NSFS_MAGIC {
			break
		}
		if err := unix.Unmount(path, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil {
			return &Error{Op: "unmount", Path: path, Err: err}
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return &Error{Op: "remove", Path: path, Err: err}
	}
	return nil
}

// create makes the pin file at path and a new netns behind it. path's
// parent must exist and sit under a prepared dir.
func create(path string) error {
	// The bind-mount target must exist first; O_EXCL so that two creators
	// never pin onto the same file.
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return &Error{Op: "create", Path: path, Err: err}
	}
	f.Close()

	errc := make(chan error, 1)
	go func() {
		// unshare changes the netns of this thread only: it stays locked
		// until it is back in the original netns, and is then given back
		// to Go. It is never ended (a goroutine exiting locked would end
		// it): a container init this thread cloned earlier may still be
		// setting up, and would die with it (PDEATHSIG). A thread that
		// could not switch back stays locked to a goroutine that never
		// exits. (Threads the runtime starts meanwhile come from its
		// template thread, not from this one, so they stay in the host's
		// netns.)
		runtime.LockOSThread()
		restored, err := unshareAndPin(path)
		errc <- err
		if !restored {
			select {}
		}
		runtime.UnlockOSThread()
	}()
	if err := <-errc; err != nil {
		_ = Remove(path)
		return err
	}
	return nil
}

// unshareAndPin runs on a locked thread that it may taint; restored
// reports whether the thread is back in its original netns.
func unshareAndPin(path string) (restored bool, err error) {
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return true, &Error{Op: "open", Path: "/proc/thread-self/ns/net", Err: err}
	}
	defer unix.Close(orig)
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return true, &Error{Op: "unshare", Path: path, Err: err}
	}
	defer func() {
		rerr := unix.Setns(orig, unix.CLONE_NEWNET)
		restored = rerr == nil
		if rerr != nil && err == nil {
			err = &Error{Op: "restore netns", Path: path, Err: rerr}
		}
	}()
	if err := unix.Mount("/proc/thread-self/ns/net", path, "", unix.MS_BIND, ""); err != nil {
		return false, &Error{Op: "pin", Path: path, Err: err}
	}
	if err := loopbackUp(); err != nil {
		return false, &Error{Op: "loopback up", Path: path, Err: err}
	}
	return false, nil
}

// loopbackUp sets IFF_UP on lo in the calling thread's netns: a socket
// belongs to the netns of the thread that opened it.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// preparedDirs remembers the dirs this process has already made shared
// mount points, so the mount(2) calls (which take the kernel's namespace
// lock) are not repeated on every New.
var preparedDirs sync.Map

// prepareDir creates dir and makes it a shared mount point, as iproute2
// does for /run/netns: a bind mount of itself (or, with tmpfs, a fresh
// tmpfs) if it is not a mount point yet, then MS_SHARED. Shared matters
// because mount namespaces created later (containers) get copies of the
// pins; with shared propagation our unmounts reach those copies too, so an
// unpinned netns is not kept alive by a stray copy in some container's mount
// table.
//
// Pools use tmpfs: claims are cross-directory renames, which the kernel
// serialises per file system and which on a journalling disk file system
// wait for the journal; and a pool on tmpfs cannot outlive a reboot as
// plain files that look like idle pins.
func prepareDir(dir string, tmpfs bool) error {
	if _, ok := preparedDirs.Load(dir); ok {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return &Error{Op: "mkdir", Path: dir, Err: err}
	}
	// Lock so two processes do not both see "not a mount point" and stack
	// two mounts. Whoever waited on the lock re-checks by path after the
	// winner mounted, and then finds a mount point.
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &Error{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		return &Error{Op: "lock", Path: dir, Err: err}
	}
	// EINVAL: dir is not a mount point.
	err = unix.Mount("", dir, "none", unix.MS_SHARED, "")
	if errors.Is(err, unix.EINVAL) {
		if tmpfs {
			err = unix.Mount("fre-netns", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700")
		} else {
			err = unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, "")
		}
		if err != nil {
			return &Error{Op: "mount", Path: dir, Err: err}
		}
		err = unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	}
	if err != nil {
		return &Error{Op: "make shared", Path: dir, Err: err}
	}
	preparedDirs.Store(dir, struct{}{})
	return nil
}

// unprepareDir undoes prepareDir's mount, if dir is a mount point (lazily,
// with any pins under it), and forgets dir.
func unprepareDir(dir string) error {
	preparedDirs.Delete(dir)
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return &Error{Op: "unmount", Path: dir, Err: err}
	}
	return nil
}
