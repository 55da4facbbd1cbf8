package runtime

import (
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A tenant's size limit is a project quota (ext4 and xfs have them): the
// tenant's directory gets a project ID of its own, inherited by what is
// made below it, and the project a block limit. Where the file system has
// no project quota turned on, the limit is refused, never ignored.

// fsxattr is struct fsxattr (linux/fs.h).
type fsxattr struct {
	xflags, extsize, nextents, projid, cowextsize uint32
	pad                                           [8]byte
}

// ifDqblk is struct if_dqblk (linux/quota.h).
type ifDqblk struct {
	bhardlimit, bsoftlimit, curspace, ihardlimit, isoftlimit, curinodes, btime, itime uint64
	valid                                                                             uint32
	_                                                                                 uint32
}

const (
	fsIocFsgetxattr     = 0x801c581f // _IOR('X', 31, struct fsxattr)
	fsIocFssetxattr     = 0x401c5820 // _IOW('X', 32, struct fsxattr)
	fsXflagProjinherit  = 0x200
	qSetquota           = 0x800008
	prjQuota            = 2
	qifBlimits          = 1
	quotaBlock          = 1024
	tenantProjectIDBase = 1 << 30 // above the IDs an administrator picks by hand
)

// tenantProjectID is the tenant's project ID, from its name.
func tenantProjectID(tenant string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(tenant))
	return tenantProjectIDBase | h.Sum32()&(tenantProjectIDBase-1)
}

func qcmd(cmd, typ int) int { return cmd<<8 | typ&0xff }

// setProjectQuota gives dir the tenant's project ID (inherited) and that
// project a limit of bytes.
func setProjectQuota(dir, tenant string, bytes int64) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	fd := f.Fd()
	var x fsxattr
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, fd, fsIocFsgetxattr, uintptr(unsafe.Pointer(&x))); e != 0 {
		return noQuota(dir, e)
	}
	id := tenantProjectID(tenant)
	if x.projid != id || x.xflags&fsXflagProjinherit == 0 {
		x.projid, x.xflags = id, x.xflags|fsXflagProjinherit
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, fd, fsIocFssetxattr, uintptr(unsafe.Pointer(&x))); e != 0 {
			return noQuota(dir, e)
		}
	}
	q := ifDqblk{bhardlimit: uint64((bytes + quotaBlock - 1) / quotaBlock), valid: qifBlimits}
	q.bsoftlimit = q.bhardlimit
	if _, _, e := unix.Syscall6(unix.SYS_QUOTACTL_FD, fd, uintptr(qcmd(qSetquota, prjQuota)), uintptr(id), uintptr(unsafe.Pointer(&q)), 0, 0); e != 0 {
		return noQuota(dir, e)
	}
	return nil
}

// ErrNoQuota: the tenant's file system cannot limit its size.
var ErrNoQuota = errors.New("no project quota")

func noQuota(dir string, e unix.Errno) error {
	var fs unix.Statfs_t
	kind := "its file system"
	if unix.Statfs(dir, &fs) == nil {
		switch fs.Type {
		case unix.EXT4_SUPER_MAGIC:
			kind = "its ext4"
		case unix.XFS_SUPER_MAGIC:
			kind = "its xfs"
		default:
			kind = fmt.Sprintf("its file system (type 0x%x)", fs.Type)
		}
	}
	const how = "(ext4: mkfs.ext4 -O quota,project, or tune2fs -O project,quota, and mount -o prjquota; xfs: mount -o prjquota)"
	switch e {
	case unix.ENOTTY, unix.EOPNOTSUPP, unix.EINVAL, unix.ENOSYS:
		return fmt.Errorf("%w: %s at %s has no project IDs %s: %v", ErrNoQuota, kind, dir, how, e)
	case unix.ESRCH, unix.ENOENT:
		return fmt.Errorf("%w: project quota is not turned on for %s at %s %s: %v", ErrNoQuota, kind, dir, how, e)
	}
	return fmt.Errorf("%w: %s at %s: %v", ErrNoQuota, kind, dir, e)
}
