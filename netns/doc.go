// Package netns creates, pins and pools network namespaces, so that a
// container start that needs a new netns gets one with a single setns(2)
// instead of paying for its creation under the kernel's global lock.
//
// # Pins
//
// New creates a namespace on a dedicated OS thread (unshare(CLONE_NEWNET),
// then the thread is thrown away, so the process's own netns is never
// touched), brings loopback up and bind-mounts /proc/thread-self/ns/net
// onto a file, exactly as `ip netns add` does. The directory holding pins
// is made a shared mount point (a bind mount of itself), as iproute2 does
// for /run/netns, so unmounting a pin also unmounts the copies that mount
// namespaces created in the meantime hold. Remove unpins; the kernel
// destroys the namespace when its last process exits.
//
// # Pool protocol
//
// A Pool lives in one directory shared by every process using it (the
// shim's goroutine, short-lived fre-runc processes):
//
//	<dir>/                 a tmpfs, shared propagation
//	<dir>/fill.lock        flock(2) held by whoever fills or drains
//	<dir>/staging/<id>/net pin being created, or being destroyed by a drain
//	<dir>/idle/<id>/net    ready to be taken
//	<dir>/used/<id>/net    handed out; owned by one container
//
// A pin is a mount point and rename(2) of a mount point fails with EBUSY,
// but the directory holding it can be renamed, and the mount follows. So:
//
//   - Take claims an idle namespace with rename(idle/<id>, used/<id>).
//     rename is atomic: of two processes racing for one id, one wins and
//     the other gets ENOENT and tries the next id. No lock on this path.
//     Within one process, the idle names are read once and each is given
//     to one goroutine, so concurrent Takes only race other processes.
//     With nothing idle, Take creates a namespace straight in used/.
//   - Fill (and Run) take fill.lock, sweep staging/ (anything there was
//     left by a crashed filler), then create pins in staging/<id> and
//     publish each with rename(staging/<id>, idle/<id>), so a taker never
//     sees a half-made namespace.
//   - Release unpins used/<id>/net and removes used/<id>, in the
//     background. A namespace is never handed out twice: nothing of one
//     tenant's network state reaches the next.
//   - Close drains: under fill.lock it claims every idle entry by renaming
//     it into staging/ and destroys it. Short-lived processes call Wait
//     instead, which leaves the idle set for the next process.
//
// An entry in used/ whose owner crashed before recording it stays until
// Purge, which destroys the whole directory.
//
// # Cost of pins
//
// Every pin is a mount in the host's mount namespace, and clone(CLONE_NEWNS)
// copies the whole mount table under the kernel's namespace lock. Measured
// here (kernel 6.18), a sequential clone with a new mount namespace costs
// about 0.6 ms with no pins and about 4 ms with 1,024 of them, and takes the
// lock that Take's renames and every other mount also need. So keep the
// pool small (the burst it must absorb, not the peak), or clone containers
// from a mount namespace where the pool directory is not mounted
// (BenchmarkFigure1's pooled-netns-hidden variant shows that case).
package netns
