//go:build linux

package netns

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BenchmarkFigure1 reproduces figure 1 of the research FRE comes from: the
// latency of cloning a process under concurrency, with no namespaces, with
// IPC+mount+PID+UTS+user, plus a new netns, and plus a pooled netns joined
// with setns instead. Each iteration starts N clones at once (one locked OS
// thread each, released together), each op being
//
//	[pooled: Take from a filled Pool, open the pin, setns into it]
//	clone(flags) of a child that exits at once (or, with a user ns, as soon
//	as the parent has written its uid/gid maps)
//	[user ns: write uid_map and gid_map; pooled: setns back]
//
// and reports per-op p50/p99 in ms (children are reaped after the clock
// stops; the kernel tears namespaces down asynchronously). Bounded: run it
// as `go test -run '^$' -bench Figure1 -benchtime 3x -timeout 10m ./netns`.
func BenchmarkFigure1(b *testing.B) {
	requireRoot(b)
	const base = unix.CLONE_NEWIPC | unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWUSER
	variants := []struct {
		name   string
		flags  uintptr
		pooled mode
	}{
		{"none", 0, noPool},
		{"ipc+mnt+pid+uts+user", base, noPool},
		{"ipc+mnt+pid+uts+user+pooled-netns", base, pooled},
		{"ipc+mnt+pid+uts+user+pooled-netns-hidden", base, pooledHidden},
		{"ipc+mnt+pid+uts+user+new-netns", base | unix.CLONE_NEWNET, noPool},
	}
	for _, n := range []int{512, 1024} {
		for _, v := range variants {
			b.Run(fmt.Sprintf("c=%d/%s", n, v.name), func(b *testing.B) {
				benchClones(b, n, v.flags, v.pooled)
			})
		}
	}
}

// mode says where a clone's netns comes from.
type mode int

const (
	noPool mode = iota
	// pooled: Take from a Pool and setns into it. Every pin is a mount in
	// the cloning thread's mount namespace, so CLONE_NEWNS copies them all.
	pooled
	// pooledHidden: as pooled, but the clone runs from a mount namespace
	// prepared once without the pool directory (the thread leaves fs
	// sharing, then setns into it), so CLONE_NEWNS does not copy the pins.
	pooledHidden
)

func benchClones(b *testing.B, n int, flags uintptr, m mode) {
	// Every op holds a P during its raw clone (see rawClone), so n ops run
	// at once only with n Ps. 1024 is the runtime's maximum.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(min(n, 1024)))

	host, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(host)

	var pool *Pool
	hidden := -1
	if m != noPool {
		b.StopTimer()
		dir := testDir(b)
		pool = NewPool(dir, n)
		if err := pool.Fill(n); err != nil {
			b.Fatal(err)
		}
		defer func() {
			if err := pool.Close(); err != nil {
				b.Error(err)
			}
		}()
		if m == pooledHidden {
			hidden = mountNSWithout(b, dir)
			defer unix.Close(hidden)
		}
		b.StartTimer()
	}

	var lat []time.Duration
	var batch time.Duration
	for range b.N {
		l, wall, err := cloneBatch(n, flags, pool, host, hidden)
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, l...)
		batch += wall
		if pool != nil {
			b.StopTimer()
			recycle(b, pool)
			b.StartTimer()
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms/op")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms/op")
	b.ReportMetric(ms(batch/time.Duration(b.N)), "batch-ms")
	b.ReportMetric(float64(sum)/float64(len(lat)), "ns/op")
}

// mountNSWithout returns an fd of a mount namespace where dir (and every
// pin under it) is unmounted. Slave first, so the unmount does not propagate
// back to the host's shared peer group.
func mountNSWithout(b *testing.B, dir string) int {
	type res struct {
		fd  int
		err error
	}
	c := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies in its own mount ns
		err := unix.Unshare(unix.CLONE_FS | unix.CLONE_NEWNS)
		if err == nil {
			err = unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, "")
		}
		if err == nil {
			err = unix.Unmount(dir, unix.MNT_DETACH)
		}
		if err != nil {
			c <- res{-1, err}
			return
		}
		fd, err := unix.Open("/proc/thread-self/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		c <- res{fd, err}
	}()
	r := <-c
	if r.err != nil {
		b.Fatalf("mount ns without %s: %v", dir, r.err)
	}
	return r.fd
}

// recycle puts the namespaces a batch took back into idle/. Production code
// never does this (a netns serves one container); the benchmark does so that
// refilling 1024 namespaces per iteration does not dominate its run time:
// the cost measured, claim and setns, is the same for a fresh namespace.
func recycle(b *testing.B, p *Pool) {
	names, err := readNames(p.used)
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range names {
		if err := os.Rename(filepath.Join(p.used, name), filepath.Join(p.idle, name)); err != nil {
			b.Fatal(err)
		}
	}
}

// cloneBatch runs n ops at once and returns each op's latency, the batch's
// wall time (ops only) and the first error. It reaps every child.
func cloneBatch(n int, flags uintptr, pool *Pool, host, hidden int) ([]time.Duration, time.Duration, error) {
	var (
		ready, done sync.WaitGroup
		start       = make(chan struct{})
		lat         = make([]time.Duration, n)
		pids        = make([]int, n)
		errs        = make([]error, n)
	)
	ready.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			// One OS thread per op, so that the ops really run at once and
			// a setns stays on the thread that clones.
			runtime.LockOSThread()
			ready.Done()
			<-start
			t0 := time.Now()
			pid, tainted, err := cloneOp(flags, pool, host, hidden)
			lat[i] = time.Since(t0)
			pids[i], errs[i] = pid, err
			if !tainted {
				runtime.UnlockOSThread()
			} // else: the thread is left in a pooled netns; it dies with us.
		}()
	}
	ready.Wait()
	t0 := time.Now()
	close(start)
	done.Wait()
	wall := time.Since(t0)
	for _, pid := range pids {
		if pid > 0 {
			unix.Wait4(pid, nil, 0, nil)
		}
	}
	for _, err := range errs {
		if err != nil {
			return nil, 0, err
		}
	}
	return lat, wall, nil
}

// cloneOp is one timed op. tainted reports that the calling thread could not
// be switched back to the host netns.
func cloneOp(flags uintptr, pool *Pool, host, hidden int) (pid int, tainted bool, err error) {
	if pool != nil {
		path, _, err := pool.Take()
		if err != nil {
			return 0, false, err
		}
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, false, err
		}
		defer unix.Close(fd)
		if hidden >= 0 {
			// Never switched back: the thread dies with its goroutine.
			tainted = true
			if err := unix.Unshare(unix.CLONE_FS); err != nil {
				return 0, tainted, fmt.Errorf("unshare(CLONE_FS): %w", err)
			}
			if err := unix.Setns(hidden, unix.CLONE_NEWNS); err != nil {
				return 0, tainted, fmt.Errorf("setns mnt: %w", err)
			}
		}
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			return 0, tainted, fmt.Errorf("setns %s: %w", path, err)
		}
		defer func() {
			if serr := unix.Setns(host, unix.CLONE_NEWNET); serr != nil {
				tainted = true
				if err == nil {
					err = fmt.Errorf("setns back to the host netns: %w", serr)
				}
			}
		}()
	}

	userns := flags&unix.CLONE_NEWUSER != 0
	var p [2]int
	if userns {
		// The child waits on this pipe until its maps are written, as a
		// container's init would.
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			return 0, tainted, err
		}
		defer unix.Close(p[0])
		defer unix.Close(p[1])
	}
	pid, errno := rawClone(flags, userns, p[0])
	if errno != 0 {
		return 0, tainted, fmt.Errorf("clone(%#x): %w", flags, errno)
	}
	if userns {
		for _, m := range []string{"uid_map", "gid_map"} {
			if err := writeFile("/proc/"+strconv.Itoa(pid)+"/"+m, "0 0 1\n"); err != nil {
				return pid, tainted, err
			}
		}
		unix.Write(p[1], []byte{0})
	}
	return pid, tainted, nil
}

func writeFile(path, s string) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(s)); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// rawClone forks a child that, if wait, reads one byte from fd, then exits.
// The child is a copy of a multithreaded Go process with one thread, so it
// must run no Go runtime code: only raw syscalls, no stack growth (nosplit),
// as syscall.forkAndExecInChild does. RawSyscall keeps the P, so no runtime
// bookkeeping happens around the clone on either side.
//
//go:norace
//go:nosplit
func rawClone(flags uintptr, wait bool, fd int) (int, syscall.Errno) {
	var buf [1]byte
	pid, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE, flags|uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if errno != 0 || pid != 0 {
		return int(pid), errno
	}
	if wait {
		syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), 1)
	}
	for {
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
	}
}
