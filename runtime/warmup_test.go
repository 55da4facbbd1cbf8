package runtime

import (
	"encoding/json"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The warm-up's typical spec must stay a spec: every key one the spec
// type has, or it would warm up less than it says.
func TestTypicalSpecDecodes(t *testing.T) {
	dec := json.NewDecoder(strings.NewReader(typicalSpec))
	dec.DisallowUnknownFields()
	var sp specs.Spec
	if err := dec.Decode(&sp); err != nil {
		t.Fatal(err)
	}
	if sp.Process == nil || sp.Linux == nil || sp.Linux.Resources == nil || sp.Linux.Resources.Memory == nil || len(sp.Mounts) == 0 {
		t.Fatalf("typical spec lacks a section: %+v", sp)
	}
}
