package testutil

import "errors"

var (
	// ErrNoBusybox means no busybox binary was found on the host.
	ErrNoBusybox = errors.New("testutil: busybox not found (install busybox-static)")
	// ErrBusyboxNotStatic means the busybox found is dynamically linked and
	// would not run inside a rootfs that has no libc.
	ErrBusyboxNotStatic = errors.New("testutil: busybox is dynamically linked (install busybox-static)")
)
