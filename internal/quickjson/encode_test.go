package quickjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// checkMarshal: Marshal's output is json.Marshal's, byte for byte.
func checkMarshal(t *testing.T, name string, v any) {
	t.Helper()
	got, err := Marshal(v)
	want, errStd := json.Marshal(v)
	if errString(err) != errString(errStd) || !bytes.Equal(got, want) {
		t.Fatalf("%s:\n got  %s (%v)\n want %s (%v)", name, got, err, want, errStd)
	}
}

func TestMarshalMatchesEncodingJSON(t *testing.T) {
	fast := 0
	for name, b := range specCorpus(t) {
		var s specs.Spec
		if json.Unmarshal(b, &s) != nil {
			continue
		}
		checkMarshal(t, name, &s)
		e := encoder{}
		if e.value(reflect.ValueOf(&s), 0) == nil {
			fast++
		}
	}
	if fast < 5 {
		t.Errorf("the fast path wrote only %d of runtime-spec's configs", fast)
	}
	type state struct {
		ID      string            `json:"id"`
		Pid     int               `json:"pid"`
		Start   uint64            `json:"start"`
		Created time.Time         `json:"created"`
		Ann     map[string]string `json:"ann,omitempty"`
		Raw     json.RawMessage   `json:"raw,omitempty"`
		P       *specs.Process    `json:"process,omitempty"`
		Skip    string            `json:"-"`
		Dash    string            `json:"-,"`
		Bad     string            `json:"a b\u00e9"`
		Flag    bool              `json:",omitempty"`
		F       float64           `json:"f,omitempty"`
		hidden  int
	}
	for i, v := range []any{
		state{ID: "a<b>&c\"\\\n\t\x01\u2028é😀", Created: time.Date(2026, 12, 2, 13, 37, 0, 123, time.UTC), Ann: map[string]string{"z": "1", "a": "2", "": ""}, Raw: json.RawMessage(`{"x":[1,2]}`), P: &specs.Process{Args: []string{"sh"}, Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1, Soft: 1}}}, Dash: "d", hidden: 1},
		&state{}, state{F: 1.5}, state{Raw: json.RawMessage(`{ "x": 1 }`)}, state{ID: "\xff"},
		nil, (*state)(nil), []state{{}}, map[string]any{"a": nil, "b": "x", "c": []any{}},
		&specs.LinuxWeightDevice{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 1}},
	} {
		checkMarshal(t, fmt.Sprintf("value %d", i), v)
	}
}

func FuzzMarshal(f *testing.F) {
	for _, b := range specCorpus(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s specs.Spec
		if json.Unmarshal(data, &s) != nil {
			return
		}
		checkMarshal(t, "fuzz input", &s)
	})
}
