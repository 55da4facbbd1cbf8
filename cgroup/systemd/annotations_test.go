package systemd

import (
	"errors"
	"slices"
	"testing"
)

func TestAnnotationProperties(t *testing.T) {
	got, err := AnnotationProperties(map[string]string{
		"org.systemd.property.TimeoutStopSec":   "uint64 10",
		"org.systemd.property.CollectMode":      "'inactive-or-failed'",
		"org.systemd.property.RuntimeMaxUSec":   "uint64 5",
		"org.systemd.property.CPUSec":           "uint32 1", // upper-case before Sec: as it is
		"org.systemd.property.DefaultDepsSec":   "1.5",
		"io.kubernetes.cri.container-type":      "container",
		"org.systemd.property.MemoryAccounting": "true",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"CPUSec=1", "CollectMode=inactive-or-failed", "DefaultDepsUSec=1500000", "MemoryAccounting=true",
		"RuntimeMaxUSec=5", "TimeoutStopUSec=10000000"}
	if g := show(got); !slices.Equal(g, want) {
		t.Errorf("got %q, want %q", g, want)
	}
	for _, bad := range []map[string]string{
		{"org.systemd.property.Ab": "true"},
		{"org.systemd.property.Mem0ry": "true"},
		{"org.systemd.property.TimeoutStopSec": "'ten'"},
		{"org.systemd.property.Foo": "not a variant ("},
	} {
		if _, err := AnnotationProperties(bad); !errors.Is(err, ErrInvalidResources) {
			t.Errorf("AnnotationProperties(%v): %v, want ErrInvalidResources", bad, err)
		}
	}
}
