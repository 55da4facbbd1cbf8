package cgpool

import (
	"net/url"
	"testing"
)

// escapeParent and unescapeParent are url.PathEscape and url.PathUnescape:
// the pool's state dir names parents the way earlier versions did.
func TestEscapeIsURLPathEscape(t *testing.T) {
	inputs := []string{"", "/", "/fre-bench-1", "/kubepods/burstable/pod1234", "a b", "a/b;c,d?e", "100%", "%2F", "%zz", "%", "%4", "é", "~$&+:=@"}
	for c := 0; c < 256; c++ {
		inputs = append(inputs, "/x"+string([]byte{byte(c)}), "%"+string([]byte{byte(c)})+"0", "%0"+string([]byte{byte(c)}))
	}
	for _, s := range inputs {
		if got, want := escapeParent(s), url.PathEscape(s); got != want {
			t.Errorf("escapeParent(%q) = %q, url.PathEscape %q", s, got, want)
		}
		got, err := unescapeParent(s)
		want, werr := url.PathUnescape(s)
		if (err == nil) != (werr == nil) || (err == nil && got != want) {
			t.Errorf("unescapeParent(%q) = %q, %v; url.PathUnescape %q, %v", s, got, err, want, werr)
		}
		if back, err := unescapeParent(escapeParent(s)); err != nil || back != s {
			t.Errorf("round trip of %q: %q, %v", s, back, err)
		}
	}
}
