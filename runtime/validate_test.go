package runtime

import (
	"regexp"
	"testing"
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
