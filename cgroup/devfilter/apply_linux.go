package devfilter

import (
	"errors"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// ApplyNew enforces rules on the cgroup v2 directory cgroupDir, made just
// now: it attaches FRE's program without looking for an older one.
func ApplyNew(cgroupDir string, rules []specs.LinuxDeviceCgroup) error {
	return apply(cgroupDir, rules, false)
}

// Apply enforces rules on the cgroup v2 directory cgroupDir, replacing
// FRE's program if one is attached (an update) so that the cgroup is not
// left without a filter meanwhile. Programs of others stay.
func Apply(cgroupDir string, rules []specs.LinuxDeviceCgroup) error {
	return apply(cgroupDir, rules, true)
}

func apply(dir string, rules []specs.LinuxDeviceCgroup, existing bool) error {
	insns, err := Compile(rules)
	if err != nil {
		return err
	}
	cg, err := openCgroup(dir)
	if err != nil {
		return err
	}
	defer unix.Close(cg)
	prog, err := Load(insns)
	if err != nil {
		return err
	}
	defer unix.Close(prog)
	if !existing {
		if err := attach(cg, prog, -1); err != nil {
			return &PathError{Op: "attach", Path: dir, Err: err}
		}
		return nil
	}
	return swap(dir, cg, prog, true)
}

// swap attaches prog on cg in place of FRE's programs there: replacing
// one atomically (BPF_F_REPLACE, Linux 5.6) unless replace is false or the
// kernel refuses the flag, else attaching prog before detaching them.
func swap(dir string, cg, prog int, replace bool) error {
	for try := 0; ; try++ {
		old, err := own(cg)
		if err != nil {
			return &PathError{Op: "query", Path: dir, Err: err}
		}
		if len(old) == 0 {
			if err := attach(cg, prog, -1); err != nil {
				return &PathError{Op: "attach", Path: dir, Err: err}
			}
			return nil
		}
		err = unix.EINVAL // replace false: as if the kernel had no BPF_F_REPLACE
		if replace {
			err = attach(cg, prog, old[0])
		}
		switch {
		case err == nil:
			err = detachAll(cg, old[1:])
		case err == unix.ENOENT && try < 3:
			// The old program went meanwhile (a concurrent update or
			// Remove): look again.
			closeAll(old)
			continue
		case err == unix.EINVAL: // no BPF_F_REPLACE
			if err = attach(cg, prog, -1); err == nil {
				err = detachAll(cg, old)
			}
		}
		closeAll(old)
		if err != nil {
			return &PathError{Op: "replace", Path: dir, Err: err}
		}
		return nil
	}
}

// Remove detaches FRE's programs from the cgroup v2 directory cgroupDir.
// A missing directory, or a kernel without device programs, has none.
func Remove(cgroupDir string) error {
	cg, err := openCgroup(cgroupDir)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(cg)
	old, err := own(cg)
	if err == unix.ENOSYS || err == unix.EINVAL {
		return nil // a kernel without bpf(2) or device programs
	}
	if err != nil {
		return &PathError{Op: "query", Path: cgroupDir, Err: err}
	}
	defer closeAll(old)
	if err := detachAll(cg, old); err != nil {
		return &PathError{Op: "detach", Path: cgroupDir, Err: err}
	}
	return nil
}

func openCgroup(dir string) (int, error) {
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &PathError{Op: "open", Path: dir, Err: err}
	}
	return fd, nil
}

// own opens FRE's device programs attached to cg. Programs it may not
// open (an LSM's) or that go meanwhile are not FRE's.
func own(cg int) ([]int, error) {
	ids, err := query(cg)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, id := range ids {
		fd, name, err := progByID(id)
		switch {
		case err == unix.ENOENT || err == unix.EPERM || err == unix.EACCES:
			continue
		case err != nil:
			closeAll(fds)
			return nil, err
		case name != ProgName:
			unix.Close(fd)
			continue
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

func detachAll(cg int, progs []int) error {
	for _, p := range progs {
		if err := detach(cg, p); err != nil && err != unix.ENOENT {
			return err
		}
	}
	return nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
