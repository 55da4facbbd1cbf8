package fret

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParse: any input is a template or an error wrapping ErrInvalid (or
// a file system error about its code), never a panic; a template that
// parses parses again to the same value.
func FuzzParse(f *testing.F) {
	examples, _ := filepath.Glob("testdata/*.yaml")
	for _, e := range examples {
		if b, err := os.ReadFile(e); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("apiVersion: fre.dev/v1alpha1\nid: x\nversion: \"1\"\nbase: {name: static}\ncode: code\nentrypoint: [/code/x]\n"))
	f.Add([]byte("apiVersion: fre.dev/v1alpha1\nid: x\nresources: {memory: 12Qi, cpu: -1, pids: 1e99}\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte{0xff, 0xfe, 0})
	path := filepath.Join("testdata", "fuzz.yaml") // relative paths resolve in testdata
	f.Fuzz(func(t *testing.T, data []byte) {
		tpl, err := Parse(bytes.NewReader(data), path)
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T) is not a *fret.Error", err, err)
			}
			return
		}
		again, err := Parse(bytes.NewReader(data), path)
		if err != nil || !reflect.DeepEqual(tpl, again) {
			t.Fatalf("second parse differs: %v", err)
		}
	})
}
