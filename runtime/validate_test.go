package runtime

import (
	"regexp"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The hand-written checks say what runc's regexps say.
func TestIDAndVersionChecksMatchRuncRegexps(t *testing.T) {
	idRE := regexp.MustCompile(`^[\w+\-.]+$`)
	versionRE := regexp.MustCompile(`^1\.[0-9]+\.[0-9]+`)
	inputs := []string{"", "a", "A-z_0+9.", "a/b", "a b", "é", "a\x00", "..", ".", "abc\n", "x:y", "1.0.0", "1.2.3-rc1", "1.0", "1..0",
		"1.0.", "10.0.0", "0.1.0", "1.a.0", "v1.0.0", "1.2.3.4", " 1.0.0", "1.0.0 ", "1.00.000", "1.-1.0"}
	for c := 0; c < 256; c++ {
		inputs = append(inputs, string([]byte{byte(c)}), "1.0."+string([]byte{byte(c)}), "a"+string([]byte{byte(c)})+"b")
	}
	for _, s := range inputs {
		if got, want := idChars(s) && s != "", idRE.MatchString(s); got != want {
			t.Errorf("idChars(%q) = %v, regexp says %v", s, got, want)
		}
		if got, want := ociVersion1(s), versionRE.MatchString(s); got != want {
			t.Errorf("ociVersion1(%q) = %v, regexp says %v", s, got, want)
		}
	}
}

// Deny rules after a deny of everything deny nothing and are dropped, as
// runc's emulator drops them: an odd access string there is no error
// (runc's update.bats "minimal transition rules"), one that matters is.
func TestPruneNoopDenies(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	devs := []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: false, Type: "c", Major: i64(1), Minor: i64(11), Access: "rwa"},
		{Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rwm"},
		{Allow: false, Type: "c", Major: i64(1), Minor: i64(3), Access: "w"},
	}
	got, n := pruneNoopDenies(devs)
	if n != 1 || len(got) != 3 || got[1].Allow != true || got[2].Access != "w" {
		t.Fatalf("pruned %d: %+v", n, got)
	}
	l := &specs.Linux{Resources: &specs.LinuxResources{Devices: devs}}
	if err := validateCgroup(l); err != nil {
		t.Fatalf("a redundant rule's access: %v", err)
	}
	bad := append([]specs.LinuxDeviceCgroup(nil), devs[2], specs.LinuxDeviceCgroup{Allow: false, Type: "c", Major: i64(1), Minor: i64(3), Access: "rwa"})
	if err := validateCgroup(&specs.Linux{Resources: &specs.LinuxResources{Devices: bad}}); err == nil {
		t.Fatal("a rule that matters with access rwa: no error")
	}
}
