package quickjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// specCorpus is every config.json of runtime-spec's own schema tests (good
// and bad), which the module ships.
func specCorpus(t testing.TB) map[string][]byte {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/opencontainers/runtime-spec").Output()
	if err != nil {
		t.Fatalf("go list runtime-spec: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "schema", "test", "*", "*", "*.json"))
	if len(files) < 15 {
		t.Fatalf("runtime-spec's schema tests: %d files", len(files))
	}
	c := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c[filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f)] = b
	}
	return c
}

// edgeCases each exercise one rule where encoding/json has its own
// semantics: either the fast path agrees or it must leave them alone.
var edgeCases = []string{
	`{}`, `null`, ` {"ociVersion":"1.0.0"} `, `{"ociVersion":"1.0.0"} trailing`,
	`{"ociVersion":"1.0.0"}{"hostname":"x"}`,
	`{"OCIVERSION":"a","Hostname":"b"}`,    // case-insensitive keys
	`{"hostname":"a","hostname":"b"}`,      // duplicate key
	`{"hostname":"a","HOSTNAME":"b"}`,      // duplicate under folding
	`{"İostname":"a"}`, `{"hoſtname":"a"}`, // Unicode folding
	`{"hostname":"\u00e9\n\t\"\\\/\b\f\r"}`, // escapes
	`{"hostname":"\ud83d\ude00"}`,           // surrogate pair
	`{"hostname":"\ud83d"}`,                 // lone surrogate
	"{\"hostname\":\"\xff\"}",               // invalid UTF-8
	"{\"hostname\":\"a\x01\"}",              // control character
	`{"hostname":1}`, `{"hostname":null}`, `{"process":null}`, `{"mounts":null}`, `{"mounts":[]}`,
	`{"process":{"user":{"uid":4294967295}}}`, `{"process":{"user":{"uid":4294967296}}}`,
	`{"process":{"user":{"uid":-1}}}`, `{"process":{"user":{"uid":1.0}}}`, `{"process":{"user":{"uid":1e2}}}`,
	`{"process":{"user":{"uid":01}}}`, `{"process":{"user":{"uid":-0}}}`,
	`{"process":{"oomScoreAdj":-1000}}`, `{"process":{"terminal":true,"noNewPrivileges":false}}`,
	`{"process":{"terminal":tru}}`, `{"process":{"terminal":"true"}}`,
	`{"linux":{"resources":{"cpu":{"quota":-1,"shares":1024}}}}`,
	`{"linux":{"resources":{"memory":{"limit":9223372036854775807}}}}`,
	`{"linux":{"resources":{"memory":{"limit":9223372036854775808}}}}`,
	`{"annotations":{"a":"b","a":"c"}}`, `{"annotations":{}}`, `{"annotations":{"a":null}}`,
	`{"unknown":{"x":[1,2,{"y":null}],"z":"\u0041"},"hostname":"h"}`,
	`{"unknown":[1,2,}`, `{"unknown":01}`, `{"unknown":-}`, `{"unknown":1.}`, `{"unknown":1e}`,
	`{"hostname":"h",}`, `{"hostname" "h"}`, `{"hostname":"h"`, `{"hostname":"h`, `[1]`, `"x"`, ``, `{`,
	"\ufeff{}", `{"linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/x"}]}}`,
	`{"mounts":[{"destination":"/a","options":["ro","nosuid"]},null]}`,
	`{"windows":{"credentialSpec":{"a":[1,"x",true,{"b":2.5e3}],"c":{}}}}`, `{"windows":{"credentialSpec":null}}`,
	`{"windows":{"credentialSpec":[null]}}`, `{"windows":{"credentialSpec":{"a":null}}}`, `{"windows":{"credentialSpec":1e999}}`,
	`{"windows":{"credentialSpec":"s"}}`, `{"windows":{"credentialSpec":[]}}`,
	`{"linux":{"seccomp":{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","args":[{"index":1,"value":2,"op":"SCMP_CMP_EQ"}]}]}}}`,
}

// check decodes data with the fast path and with encoding/json: when the
// fast path takes the input, both must give the same value; whatever it
// does, Unmarshal and DecodeFirst must answer as encoding/json does.
func check(t *testing.T, name string, data []byte) {
	t.Helper()
	var fast, std specs.Spec
	fastErr := decodeFast(data, &fast, false)
	stdErr := json.Unmarshal(data, &std)
	if fastErr == nil {
		if stdErr != nil {
			t.Fatalf("%s: fast path took input encoding/json rejects (%v)", name, stdErr)
		}
		if !reflect.DeepEqual(fast, std) {
			t.Fatalf("%s: fast path differs:\n fast %+v\n std  %+v", name, fast, std)
		}
	} else if !reflect.DeepEqual(fast, specs.Spec{}) {
		t.Fatalf("%s: a declined decode left a value behind", name)
	}
	var got specs.Spec
	err := Unmarshal(data, &got)
	if errString(err) != errString(stdErr) || !reflect.DeepEqual(got, std) {
		t.Fatalf("%s: Unmarshal = %v, %+v; encoding/json %v, %+v", name, err, got, stdErr, std)
	}
	var first, firstStd specs.Spec
	err = DecodeFirst(data, &first)
	errStd := json.NewDecoder(bytes.NewReader(data)).Decode(&firstStd)
	if errString(err) != errString(errStd) || !reflect.DeepEqual(first, firstStd) {
		t.Fatalf("%s: DecodeFirst = %v, %+v; encoding/json %v, %+v", name, err, first, errStd, firstStd)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestMatchesEncodingJSON(t *testing.T) {
	fastTaken := 0
	for name, b := range specCorpus(t) {
		check(t, name, b)
		var s specs.Spec
		if decodeFast(b, &s, false) == nil {
			fastTaken++
		}
	}
	if fastTaken < 10 {
		t.Errorf("the fast path took only %d of runtime-spec's configs", fastTaken)
	}
	for _, c := range edgeCases {
		check(t, c, []byte(c))
	}
}

// The spec's types, and all they hold, are ones the fast path handles, or
// decodes would silently be encoding/json's.
func TestSpecTypesSupported(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var walk func(ty reflect.Type, path string)
	walk = func(ty reflect.Type, path string) {
		if seen[ty] {
			return
		}
		seen[ty] = true
		ti := infoOf(ty)
		if !ti.ok {
			t.Errorf("%s (%v) is left to encoding/json", path, ty)
			return
		}
		if ti.elem.typ != nil {
			walk(ti.elem.typ, path+"[]")
		}
		for i := range ti.fields {
			walk(ti.fields[i].info.typ, path+"."+ti.fields[i].name)
		}
	}
	for _, v := range []any{specs.Spec{}, specs.State{}} {
		walk(reflect.TypeOf(v), reflect.TypeOf(v).String())
	}
	if len(seen) < 100 {
		t.Errorf("walked only %d types", len(seen))
	}
}

func TestDeclinesWhatItDoesNotModel(t *testing.T) {
	type Embedded struct{ A int }
	type withEmbedded struct {
		*Embedded
		B int
	}
	type withString struct {
		N int `json:"n,string"`
	}
	type withAny struct{ X fmt.Stringer }
	type withBytes struct{ B []byte }
	for _, c := range []struct {
		v  any
		in string
	}{
		{&withEmbedded{}, `{}`}, {&withString{}, `{}`}, {&withAny{}, `{"X":null}`},
		{&withBytes{}, `{"B":"AAA="}`},
	} {
		if err := decodeFast([]byte(c.in), c.v, false); err == nil {
			t.Errorf("%T: the fast path took it", c.v)
		}
		// and encoding/json decodes it.
		fresh := reflect.New(reflect.TypeOf(c.v).Elem()).Interface()
		std := reflect.New(reflect.TypeOf(c.v).Elem()).Interface()
		if err := Unmarshal([]byte(c.in), fresh); err != nil || json.Unmarshal([]byte(c.in), std) != nil || !reflect.DeepEqual(fresh, std) {
			t.Errorf("%T: %v", c.v, err)
		}
	}
	// UnmarshalJSON methods get the value's bytes, null included.
	type withMethods struct {
		T  time.Time
		TP *time.Time
		R  json.RawMessage
		RS []json.RawMessage
		M  map[string]time.Time
	}
	for _, in := range []string{
		`{"T":"2026-12-02T13:37:25.123Z","TP":"2026-01-01T00:00:00Z","R":{"a":[1, 2]},"RS":[null,"x"],"M":{"a":"2026-01-01T00:00:00+01:00"}}`,
		`{"T":null,"TP":null,"R":null}`, `{"T":"not a time"}`, `{"T":5}`, `{"R":{"a":}`,
	} {
		var fast, std withMethods
		err, errStd := Unmarshal([]byte(in), &fast), json.Unmarshal([]byte(in), &std)
		if errString(err) != errString(errStd) || !reflect.DeepEqual(fast, std) {
			t.Errorf("%s: %v %+v; encoding/json %v %+v", in, err, fast, errStd, std)
		}
	}
	// Recursive types are decoded, to a depth.
	type recursive struct{ Next *recursive }
	deep := strings.Repeat(`{"Next":`, 300) + "null" + strings.Repeat("}", 300)
	for _, in := range []string{`{"Next":{"Next":null}}`, deep} {
		var fast, std recursive
		if err := Unmarshal([]byte(in), &fast); err != nil || json.Unmarshal([]byte(in), &std) != nil || !reflect.DeepEqual(fast, std) {
			t.Errorf("recursive: %v", err)
		}
	}
	// A value already set is merged into by encoding/json.
	s := &specs.Spec{Hostname: "kept"}
	if err := Unmarshal([]byte(`{"ociVersion":"1"}`), s); err != nil || s.Hostname != "kept" || s.Version != "1" {
		t.Errorf("merge: %v %+v", err, s)
	}
}

func FuzzDecode(f *testing.F) {
	for _, b := range specCorpus(f) {
		f.Add(b)
	}
	for _, c := range edgeCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, data []byte) { check(t, "fuzz input", data) })
}

func BenchmarkColdSpec(b *testing.B) {
	data := []byte(`{"ociVersion":"1.0.2-dev","process":{"terminal":true,"user":{"uid":0,"gid":0},"args":["sh"],"env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","TERM=xterm"],"cwd":"/","capabilities":{"bounding":["CAP_AUDIT_WRITE","CAP_KILL","CAP_NET_BIND_SERVICE"],"effective":["CAP_AUDIT_WRITE","CAP_KILL","CAP_NET_BIND_SERVICE"],"permitted":["CAP_AUDIT_WRITE","CAP_KILL","CAP_NET_BIND_SERVICE"],"ambient":["CAP_AUDIT_WRITE","CAP_KILL","CAP_NET_BIND_SERVICE"]},"rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}],"noNewPrivileges":true},"root":{"path":"rootfs","readonly":true},"hostname":"runc","mounts":[{"destination":"/proc","type":"proc","source":"proc"},{"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]}],"linux":{"resources":{"devices":[{"allow":false,"access":"rwm"}]},"namespaces":[{"type":"pid"},{"type":"network"},{"type":"ipc"},{"type":"uts"},{"type":"mount"}],"maskedPaths":["/proc/acpi","/proc/kcore"],"readonlyPaths":["/proc/bus","/proc/fs"]}}`)
	for b.Loop() {
		var s specs.Spec
		if err := Unmarshal(data, &s); err != nil {
			b.Fatal(err)
		}
	}
}
