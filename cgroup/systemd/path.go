package systemd

import (
	"fmt"
	"strings"
)

// Path is where a container's cgroup is under systemd.
type Path struct {
	Slice string // the unit's slice, e.g. "system.slice", "kubepods-besteffort-pod123.slice"
	Unit  string // "prefix-name.scope" (or a slice unit when name ends in ".slice")
	Dir   string // the cgroup's path from the hierarchy root, e.g. "/system.slice/prefix-name.scope"
}

// The defaults of an empty cgroupsPath (runc's prefix there is "runc").
const (
	DefaultSlice  = "system.slice"
	DefaultPrefix = "fre"
)

// unitNameMax is systemd's longest unit name (UNIT_NAME_MAX less the NUL).
const unitNameMax = 255

// ParseCgroupsPath parses an OCI cgroupsPath "slice:prefix:name" as runc
// parses it for the systemd driver. An empty cgroupsPath is slice
// "system.slice", prefix "fre" and name id; an empty slice is
// "system.slice". The unit is "prefix-name.scope" (runc's, so an empty
// prefix gives "-name.scope"), or name itself when it ends in ".slice":
// then a slice unit, which must be a child of slice (systemd places a
// slice by its name alone). Parts that cannot make a unit name (a "/",
// characters systemd refuses) are refused here, not by systemd after a
// clone, and the error names linux.cgroupsPath and the expected format.
func ParseCgroupsPath(cgroupsPath, id string) (Path, error) {
	slice, prefix, name := DefaultSlice, DefaultPrefix, id
	if cgroupsPath != "" {
		parts := strings.Split(cgroupsPath, ":")
		if len(parts) != 3 {
			return Path{}, pathErr(cgroupsPath, "not of the form \"slice:prefix:name\"")
		}
		slice, prefix, name = parts[0], parts[1], parts[2]
		if slice == "" {
			slice = DefaultSlice
		}
	}
	if name == "" {
		return Path{}, pathErr(cgroupsPath, "empty name (want \"slice:prefix:name\")")
	}
	sliceDir, err := ExpandSlice(slice)
	if err != nil {
		return Path{}, pathErr(cgroupsPath, err.Error())
	}
	p := Path{Slice: slice}
	if strings.HasSuffix(name, ".slice") {
		p.Unit = name
		p.Dir, err = ExpandSlice(name)
		if err != nil {
			return Path{}, pathErr(cgroupsPath, err.Error())
		}
		if parentDir(p.Dir) != sliceDir {
			return Path{}, pathErr(cgroupsPath, fmt.Sprintf("slice unit %q is not a child of %q", name, slice))
		}
		return p, nil
	}
	p.Unit = prefix + "-" + name + ".scope"
	if err := checkUnitName(p.Unit); err != nil {
		return Path{}, pathErr(cgroupsPath, err.Error())
	}
	if sliceDir == "/" {
		p.Dir = "/" + p.Unit
	} else {
		p.Dir = sliceDir + "/" + p.Unit
	}
	return p, nil
}

// ExpandSlice turns "a-b-c.slice" into "/a.slice/a-b.slice/a-b-c.slice",
// the cgroup path systemd gives that slice ("-.slice" is the root "/").
// It refuses what runc refuses: a name without the ".slice" suffix (or
// only that), a "/" in it, an empty component ("--", a leading or
// trailing "-"). Names systemd would refuse for their characters are
// refused too.
func ExpandSlice(slice string) (string, error) {
	const suffix = ".slice"
	base, ok := strings.CutSuffix(slice, suffix)
	if !ok || base == "" {
		return "", fmt.Errorf("%w: slice %q: no %q suffix", ErrInvalidPath, slice, suffix)
	}
	if strings.Contains(slice, "/") {
		return "", fmt.Errorf("%w: slice %q: has a \"/\"", ErrInvalidPath, slice)
	}
	if base == "-" {
		return "/", nil
	}
	if err := checkUnitName(slice); err != nil {
		return "", err
	}
	var b strings.Builder
	b.Grow(len(slice) * 2)
	for i := 0; i <= len(base); i++ {
		if i < len(base) && base[i] != '-' {
			continue
		}
		// base[:i] is the next ancestor; an empty component is a "-" at
		// either end or two in a row.
		if i == 0 || i == len(base)-1 || base[i-1] == '-' {
			return "", fmt.Errorf("%w: slice %q: empty component (a leading, trailing or double \"-\")", ErrInvalidPath, slice)
		}
		b.WriteByte('/')
		b.WriteString(base[:i])
		b.WriteString(suffix)
	}
	return b.String(), nil
}

// checkUnitName refuses what systemd's unit_name_is_valid would (for the
// names built here): too long, or a character outside [A-Za-z0-9:_.\-].
func checkUnitName(u string) error {
	if len(u) > unitNameMax {
		return fmt.Errorf("%w: unit name %q longer than %d bytes", ErrInvalidPath, u, unitNameMax)
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == ':', c == '-', c == '_', c == '.', c == '\\':
		default:
			return fmt.Errorf("%w: unit name %q: character %q not allowed", ErrInvalidPath, u, c)
		}
	}
	return nil
}

func parentDir(dir string) string {
	i := strings.LastIndexByte(dir, '/')
	if i <= 0 {
		return "/"
	}
	return dir[:i]
}

func pathErr(cgroupsPath, msg string) error {
	return fmt.Errorf("%w: linux.cgroupsPath %q: %s (the systemd cgroup driver wants \"slice:prefix:name\", e.g. \"system.slice:fre:ID\")",
		ErrInvalidPath, cgroupsPath, strings.TrimPrefix(msg, ErrInvalidPath.Error()+": "))
}
