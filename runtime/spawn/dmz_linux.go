package spawn

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// dmzFD is a sealed memfd holding fre-dmz, made once per process: exec'ing
// it costs far less than any copy of fre-runc, and nothing can write it.
var dmzFD = sync.OnceValues(func() (int, error) {
	fd, err := unix.MemfdCreate("fre-dmz", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return -1, fmt.Errorf("memfd for fre-dmz: %w", err)
	}
	for b := dmzBinary; len(b) > 0; {
		n, err := unix.Write(fd, b)
		if err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("write fre-dmz: %w", err)
		}
		b = b[n:]
	}
	const seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("seal fre-dmz: %w", err)
	}
	return fd, nil
})

// dmzArgs is fre-dmz's argv (see dmz/dmz.c); slot 6 is left for the child.
func dmzArgs(syncFD, fifoFD, seccompFD int, seccompFlags uint, seccompLen int, args []string) []string {
	out := []string{"fre-dmz", itoa(syncFD), itoa(fifoFD), itoa(seccompFD), itoa(int(seccompFlags)), itoa(seccompLen), ""}
	return append(out, args...)
}

func itoa(v int) string { return fmt.Sprint(v) }

// Prepare makes, ahead of the first Start, what every Start shares (the
// fre-dmz memfd).
func Prepare() error {
	_, err := dmzFD()
	return err
}
