package cgroup

import (
	"errors"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// writeFile writes data to dir/name in one write(2), as cgroupfs wants.
// It uses raw syscalls: os.File's poller registration and finalizer are
// pure overhead for a file written once on the start path.
func writeFile(dir, name, data string) error {
	p := dir + "/" + name
	fd, err := openRetry(p, writeFlags)
	if err != nil {
		return &Error{Op: "write", Path: p, Value: data, Err: err}
	}
	defer unix.Close(fd)
	b := []byte(data)
	for {
		_, err = unix.Write(fd, b)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return &Error{Op: "write", Path: p, Value: data, Err: err}
	}
	return nil
}

// fileWriter writes several values to files of one directory, opening
// each file once (a list of device rules is a write per rule).
type fileWriter struct {
	dir string
	fds map[string]int
}

func (w *fileWriter) write(name, data string) error {
	p := w.dir + "/" + name
	fd, ok := w.fds[name]
	if !ok {
		var err error
		if fd, err = openRetry(p, writeFlags); err != nil {
			return &Error{Op: "write", Path: p, Value: data, Err: err}
		}
		if w.fds == nil {
			w.fds = map[string]int{}
		}
		w.fds[name] = fd
	}
	b := []byte(data)
	for {
		// Offset 0: cgroupfs takes each write whole, wherever; a fake
		// one on tmpfs (tests) keeps just the last value.
		_, err := unix.Pwrite(fd, b, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &Error{Op: "write", Path: p, Value: data, Err: err}
		}
		return nil
	}
}

func (w *fileWriter) close() {
	for _, fd := range w.fds {
		unix.Close(fd)
	}
}

// writeFlags has no O_TRUNC: truncating a kernfs file takes a global
// lock for nothing. Tests over a fake cgroupfs on tmpfs add it.
var writeFlags = unix.O_WRONLY | unix.O_CLOEXEC

func openRetry(p string, flags int) (int, error) {
	for {
		fd, err := unix.Open(p, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// readFile reads dir/name, trimmed of surrounding white space.
func readFile(dir, name string) (string, error) {
	p := dir + "/" + name
	fd, err := openRetry(p, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return "", &Error{Op: "read", Path: p, Err: err}
	}
	defer unix.Close(fd)
	var buf []byte
	chunk := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, chunk)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", &Error{Op: "read", Path: p, Err: err}
		}
		if n == 0 {
			break
		}
		buf = append(buf, chunk[:n]...)
	}
	return strings.TrimSpace(string(buf)), nil
}

// exists reports whether dir/name exists (a control file of a controller
// the kernel may not have).
func exists(dir, name string) bool {
	return unix.Access(dir+"/"+name, unix.F_OK) == nil
}

// readUint reads a single number; "max" and "-1" read as MaxUint64.
func readUint(dir, name string) (uint64, error) {
	s, err := readFile(dir, name)
	if err != nil {
		return 0, err
	}
	return parseUint(s, dir+"/"+name)
}

func parseUint(s, where string) (uint64, error) {
	if s == "max" || s == "-1" {
		return ^uint64(0), nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		// Negative values (v1 soft limits can read as very large or -1).
		if i, ierr := strconv.ParseInt(s, 10, 64); ierr == nil && i < 0 {
			return 0, nil
		}
		return 0, &Error{Op: "parse", Path: where, Value: s, Err: err}
	}
	return v, nil
}

// readKV reads a "key value" per line file (memory.stat, cpu.stat...).
func readKV(dir, name string) (map[string]uint64, error) {
	s, err := readFile(dir, name)
	if err != nil {
		return nil, err
	}
	m := make(map[string]uint64)
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			m[k] = n
		}
	}
	return m, nil
}

// readPids reads cgroup.procs of one directory.
func readPids(dir string) ([]int, error) {
	s, err := readFile(dir, "cgroup.procs")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(s) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, &Error{Op: "parse", Path: dir + "/cgroup.procs", Value: f, Err: err}
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// subdirs lists the child cgroups of dir.
func subdirs(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, &Error{Op: "readdir", Path: dir, Err: unwrapPathErr(err)}
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, dir+"/"+e.Name())
		}
	}
	return out, nil
}

// treePids lists the pids of dir and every descendant.
func treePids(dir string) ([]int, error) {
	pids, err := readPids(dir)
	if err != nil {
		return nil, err
	}
	kids, err := subdirs(dir)
	if err != nil {
		return nil, err
	}
	for _, k := range kids {
		p, err := treePids(k)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // removed meanwhile
			}
			return nil, err
		}
		pids = append(pids, p...)
	}
	return pids, nil
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
