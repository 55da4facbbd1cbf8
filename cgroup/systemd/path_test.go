package systemd

import (
	"errors"
	"strings"
	"testing"
)

func TestParseCgroupsPath(t *testing.T) {
	const id = "abc123"
	tests := []struct {
		in   string
		want Path
	}{
		{"", Path{"system.slice", "fre-abc123.scope", "/system.slice/fre-abc123.scope"}},
		{"system.slice:docker:1234", Path{"system.slice", "docker-1234.scope", "/system.slice/docker-1234.scope"}},
		{":crio:x", Path{"system.slice", "crio-x.scope", "/system.slice/crio-x.scope"}},
		// runc's: an empty prefix still has its "-".
		{"system.slice::x", Path{"system.slice", "-x.scope", "/system.slice/-x.scope"}},
		{"-.slice:fre:x", Path{"-.slice", "fre-x.scope", "/fre-x.scope"}},
		{"machine.slice:libpod:deadbeef", Path{"machine.slice", "libpod-deadbeef.scope", "/machine.slice/libpod-deadbeef.scope"}},
		// kubelet's layout with containerd's systemd driver.
		{"kubepods-besteffort-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice:cri-containerd:" + strings.Repeat("ab", 32), Path{
			"kubepods-besteffort-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice",
			"cri-containerd-" + strings.Repeat("ab", 32) + ".scope",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice/cri-containerd-" + strings.Repeat("ab", 32) + ".scope",
		}},
		{"kubepods-burstable-pod123.slice:cri-containerd:abc", Path{
			"kubepods-burstable-pod123.slice", "cri-containerd-abc.scope",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod123.slice/cri-containerd-abc.scope",
		}},
		// A name ending in ".slice" is a slice unit, a child of the slice.
		{"kubepods.slice::kubepods-besteffort.slice", Path{"kubepods.slice", "kubepods-besteffort.slice", "/kubepods.slice/kubepods-besteffort.slice"}},
		{"-.slice::fre.slice", Path{"-.slice", "fre.slice", "/fre.slice"}},
	}
	for _, tt := range tests {
		got, err := ParseCgroupsPath(tt.in, id)
		if err != nil {
			t.Errorf("ParseCgroupsPath(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseCgroupsPath(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseCgroupsPathBad(t *testing.T) {
	for _, tt := range []struct{ in, id, why string }{
		{"a:b", "x", "not of the form"},
		{"a:b:c:d", "x", "not of the form"},
		{"/system.slice/foo", "x", "not of the form"},
		{"system.slice:fre:", "x", "empty name"},
		{"", "", "empty name"},
		{"system:fre:x", "x", "suffix"},
		{"sys/tem.slice:fre:x", "x", "\"/\""},
		{"a--b.slice:fre:x", "x", "empty component"},
		{"-a.slice:fre:x", "x", "empty component"},
		{"a-.slice:fre:x", "x", "empty component"},
		{".slice:fre:x", "x", "suffix"},
		{"system.slice:fre:a/b", "x", "not allowed"},
		{"system.slice:fre:../x", "x", "not allowed"},
		{"system.slice:fr e:x", "x", "not allowed"},
		{"system.slice:fre:" + strings.Repeat("x", 250), "x", "longer"},
		{"system.slice::other.slice", "x", "not a child"},
		{"kubepods.slice::kubepods-a--b.slice", "x", "empty component"},
	} {
		_, err := ParseCgroupsPath(tt.in, tt.id)
		if err == nil {
			t.Errorf("ParseCgroupsPath(%q, %q): no error", tt.in, tt.id)
			continue
		}
		msg := err.Error()
		if !errors.Is(err, ErrInvalidPath) || !strings.Contains(msg, "linux.cgroupsPath") ||
			!strings.Contains(msg, `"slice:prefix:name"`) || !strings.Contains(msg, tt.why) {
			t.Errorf("ParseCgroupsPath(%q, %q): error %q: want ErrInvalidPath naming linux.cgroupsPath, the format and %q", tt.in, tt.id, msg, tt.why)
		}
	}
}

func TestExpandSlice(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"-.slice", "/"},
		{"system.slice", "/system.slice"},
		{"a-b-c.slice", "/a.slice/a-b.slice/a-b-c.slice"},
		{"test-a-b.slice", "/test.slice/test-a.slice/test-a-b.slice"},
		{"kubepods-besteffort-pod123.slice", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod123.slice"},
		{"a_b.c-d.slice", "/a_b.c.slice/a_b.c-d.slice"},
	} {
		got, err := ExpandSlice(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ExpandSlice(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", ".slice", "slice", "a.scope", "a-b", "a/b.slice", "/a.slice", "a--b.slice", "-a.slice", "a-.slice", "--.slice", "a b.slice", "a-b.slice.slice/"} {
		if got, err := ExpandSlice(in); err == nil || !errors.Is(err, ErrInvalidPath) {
			t.Errorf("ExpandSlice(%q) = %q, %v; want an ErrInvalidPath", in, got, err)
		}
	}
}
