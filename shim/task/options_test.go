package task

import (
	"testing"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/typeurl/v2"
)

// The options containerd sends: runc's type (SystemdCgroup as the runc
// shim reads it), CRI's runtimeoptions with a JSON body, and with the TOML
// body CRI sends when the runtime's options table names no ConfigPath
// (`[...runtimes.fre.options] SystemdCgroup = true`).
func TestParseOptions(t *testing.T) {
	cases := []struct {
		name string
		msg  any
		want Options
	}{
		{"runc options", &runcoptions.Options{Root: "/r", SystemdCgroup: true}, Options{Root: "/r", SystemdCgroup: true}},
		{"json body", &runtimeoptions.Options{ConfigBody: []byte(`{"root":"/r","netns_policy":"pool","SystemdCgroup":true}`)},
			Options{Root: "/r", NetnsPolicy: "pool", SystemdCgroup: true}},
		{"toml body", &runtimeoptions.Options{ConfigBody: []byte("SystemdCgroup = true\nroot = \"/r\"\nnetns_policy = \"new\"\nBinaryName = \"ignored\"\n")},
			Options{Root: "/r", NetnsPolicy: "new", SystemdCgroup: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := typeurl.MarshalAnyToProto(c.msg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseOptions(a)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("parseOptions = %+v, want %+v", got, c.want)
			}
		})
	}
	bad, _ := typeurl.MarshalAnyToProto(&runtimeoptions.Options{ConfigBody: []byte("SystemdCgroup = = true")})
	if _, err := parseOptions(bad); err == nil {
		t.Fatal("a malformed TOML body was accepted")
	}
}
