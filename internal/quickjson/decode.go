// Package quickjson decodes and encodes JSON as encoding/json does, for
// the plain data types of the OCI spec and FRE's state file, without
// encoding/json's cost on first use.
//
// encoding/json builds, the first time a process meets a type, a cache of
// its fields and an encoder for every field type reachable from it, even
// to decode. For the OCI spec that is some 0.5 ms, paid by every fre-runc
// process (each is a new process) before it reads one byte of
// config.json. quickjson needs only the JSON field names of the structs
// the input holds, found in microseconds.
//
// It is not a second JSON implementation with its own semantics. It takes
// a narrow, common subset — valid JSON; structs (embedded ones by value)
// without ",string" options; pointers, slices, string-keyed maps, strings,
// bools, numbers and any; types with UnmarshalJSON on a pointer receiver
// (time.Time, json.RawMessage); nothing with UnmarshalText — and leaves
// anything else (a syntax or type error, an escape it does not handle, a
// duplicate key, an unsupported type) to encoding/json, which then decodes
// the whole input from the start. So the result, and every error message,
// is encoding/json's; FuzzDecode checks that the two agree, FuzzMarshal
// that Marshal writes json.Marshal's bytes.
package quickjson

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf16"
	"unicode/utf8"
)

// Unmarshal is json.Unmarshal.
func Unmarshal(data []byte, v any) error {
	if decodeFast(data, v, false) == nil {
		return nil
	}
	return json.Unmarshal(data, v)
}

// DecodeFirst is json.NewDecoder(bytes.NewReader(data)).Decode(v): it
// decodes the first JSON value in data and ignores what follows it (runc
// reads config.json so).
func DecodeFirst(data []byte, v any) error {
	if decodeFast(data, v, true) == nil {
		return nil
	}
	return json.NewDecoder(bytes.NewReader(data)).Decode(v)
}

// errFallback: the fast path declines; encoding/json decides.
var errFallback = errors.New("quickjson: left to encoding/json")

// decodeFast decodes data into v, or returns errFallback having possibly
// written part of v (encoding/json then decodes into a zeroed v).
func decodeFast(data []byte, v any, first bool) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errFallback
	}
	ti := infoOf(rv.Type().Elem())
	if !ti.ok || !rv.Elem().IsZero() {
		// Into a value already set, encoding/json merges: its rules.
		return errFallback
	}
	d := decoder{data: data}
	d.ws()
	err := d.value(rv.Elem(), ti, 0)
	if err == nil && !first {
		d.ws()
		if d.i != len(d.data) {
			err = errFallback
		}
	}
	if err != nil {
		// encoding/json decodes into the value as it finds it: give it the
		// zero value the caller passed, not a half-filled one.
		rv.Elem().SetZero()
		return errFallback
	}
	return nil
}

// typeInfo is what decoding a type needs, built once per type, when the
// input first holds one: building the whole graph of the spec's types up
// front (Windows, Solaris, VM and z/OS sections included) cost more than
// the decoding.
type typeInfo struct {
	// ok: the fast path handles this type itself; an element or field type
	// it does not handle declines when the input holds one.
	ok          bool
	unmarshaler bool // *T has UnmarshalJSON
	kind        reflect.Kind
	typ         reflect.Type
	elem        lazyInfo    // pointer, slice and map elements
	fields      []fieldInfo // structs
}

type fieldInfo struct {
	name  string
	index []int // through embedded structs
	pos   int   // in typeInfo.fields
	info  lazyInfo
}

// lazyInfo is a type's info, found on first use.
type lazyInfo struct {
	typ reflect.Type
	p   atomic.Pointer[typeInfo]
}

func (l *lazyInfo) get() *typeInfo {
	if ti := l.p.Load(); ti != nil {
		return ti
	}
	ti := infoOf(l.typ)
	l.p.Store(ti)
	return ti
}

var (
	infoMu sync.Mutex
	infos  = map[reflect.Type]*typeInfo{}
)

func infoOf(t reflect.Type) *typeInfo {
	infoMu.Lock()
	defer infoMu.Unlock()
	return build(t)
}

var (
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// build fills infos[t], without the types t holds.
func build(t reflect.Type) *typeInfo {
	if ti, ok := infos[t]; ok {
		return ti
	}
	ti := &typeInfo{kind: t.Kind(), typ: t}
	infos[t] = ti
	if t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface {
		// indirect's rules for methods on pointers: encoding/json's.
		if t.Implements(unmarshalerType) || t.Implements(textUnmarshalerType) {
			return ti
		}
	} else if reflect.PointerTo(t).Implements(unmarshalerType) {
		// Given the value's bytes, null included, as encoding/json gives
		// them (time.Time, json.RawMessage).
		ti.unmarshaler, ti.ok = true, true
		return ti
	} else if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return ti
	}
	switch t.Kind() {
	case reflect.Bool, reflect.String,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		ti.ok = true
	case reflect.Interface:
		ti.ok = t.NumMethod() == 0 // any: maps, slices, float64s... as encoding/json makes them
	case reflect.Pointer:
		ti.elem.typ = t.Elem()
		ti.ok = true
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return ti // []byte is base64 in encoding/json
		}
		ti.elem.typ = t.Elem()
		ti.ok = true
	case reflect.Map:
		if t.Key().Kind() != reflect.String || t.Key().Implements(textUnmarshalerType) ||
			reflect.PointerTo(t.Key()).Implements(textUnmarshalerType) {
			return ti
		}
		ti.elem.typ = t.Elem()
		ti.ok = true
	case reflect.Struct:
		if !addFields(ti, t, nil) || len(ti.fields) > 64 {
			return ti // > 64: the seen-field bitmap
		}
		ti.ok = true
	}
	return ti
}

// addFields adds the JSON fields of struct t, found at index path under
// the struct being built: an embedded struct without a tag gives its own
// fields, as in encoding/json. false: something only encoding/json's rules
// settle (a field in an embedded pointer, two fields one key could match,
// a ",string" option, a type the fast path does not handle).
func addFields(ti *typeInfo, t reflect.Type, path []int) bool {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		index := append(append([]int(nil), path...), i)
		if f.Anonymous {
			if tag != "" || f.Type.Kind() != reflect.Struct {
				return false
			}
			if !addFields(ti, f.Type, index) {
				return false
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",string,") {
			return false
		}
		if !validTagName(name) {
			name = f.Name
		}
		for j := range ti.fields {
			if strings.EqualFold(ti.fields[j].name, name) {
				return false
			}
		}
		ti.fields = append(ti.fields, fieldInfo{name: name, index: index, pos: len(ti.fields), info: lazyInfo{typ: f.Type}})
	}
	return true
}

// validTagName is encoding/json's isValidTag.
func validTagName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c > 127):
			return false
		}
	}
	return true
}

// maxDepth is far below encoding/json's limit (10000): deeper input goes
// to encoding/json.
const maxDepth = 200

type decoder struct {
	data []byte
	i    int
	buf  []byte // unescaped strings
}

func (d *decoder) ws() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) peek() byte {
	if d.i < len(d.data) {
		return d.data[d.i]
	}
	return 0
}

func (d *decoder) literal(s string) bool {
	if bytes.HasPrefix(d.data[d.i:], []byte(s)) {
		d.i += len(s)
		return true
	}
	return false
}

// value decodes the value at d.i into v.
func (d *decoder) value(v reflect.Value, ti *typeInfo, depth int) error {
	if depth > maxDepth || !ti.ok {
		return errFallback
	}
	if ti.unmarshaler {
		start := d.i
		if err := d.skip(depth); err != nil {
			return err
		}
		if v.Addr().Interface().(json.Unmarshaler).UnmarshalJSON(d.data[start:d.i]) != nil {
			return errFallback // encoding/json reports it, in its words
		}
		return nil
	}
	c := d.peek()
	if c == 'n' {
		if !d.literal("null") {
			return errFallback
		}
		switch ti.kind {
		case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
			v.SetZero()
		}
		return nil // null leaves other kinds as they are
	}
	switch ti.kind {
	case reflect.Interface:
		x, err := d.generic(depth)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(x))
		return nil
	case reflect.Pointer:
		p := reflect.New(ti.typ.Elem())
		if err := d.value(p.Elem(), ti.elem.get(), depth+1); err != nil {
			return err
		}
		v.Set(p)
		return nil
	case reflect.Struct:
		return d.object(v, ti, depth)
	case reflect.Map:
		return d.mapValue(v, ti, depth)
	case reflect.Slice:
		return d.array(v, ti, depth)
	case reflect.String:
		s, err := d.str()
		if err != nil {
			return err
		}
		v.SetString(s)
		return nil
	case reflect.Bool:
		switch {
		case d.literal("true"):
			v.SetBool(true)
		case d.literal("false"):
			v.SetBool(false)
		default:
			return errFallback
		}
		return nil
	}
	// Numbers.
	tok, isInt := d.number()
	if tok == "" {
		return errFallback
	}
	switch ti.kind {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if !isInt {
			return errFallback
		}
		n, err := strconv.ParseInt(tok, 10, 64)
		if err != nil || v.OverflowInt(n) {
			return errFallback
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if !isInt || tok[0] == '-' {
			return errFallback
		}
		n, err := strconv.ParseUint(tok, 10, 64)
		if err != nil || v.OverflowUint(n) {
			return errFallback
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(tok, ti.typ.Bits())
		if err != nil || v.OverflowFloat(f) {
			return errFallback
		}
		v.SetFloat(f)
	default:
		return errFallback
	}
	return nil
}

// number scans a JSON number: the token, and whether it is an integer
// (no fraction, no exponent). "" if there is no valid number here.
func (d *decoder) number() (string, bool) {
	s := d.i
	i := s
	n := len(d.data)
	if i < n && d.data[i] == '-' {
		i++
	}
	switch {
	case i < n && d.data[i] == '0':
		i++
	case i < n && d.data[i] >= '1' && d.data[i] <= '9':
		for i < n && d.data[i] >= '0' && d.data[i] <= '9' {
			i++
		}
	default:
		return "", false
	}
	isInt := true
	if i < n && d.data[i] == '.' {
		isInt = false
		i++
		if !(i < n && d.data[i] >= '0' && d.data[i] <= '9') {
			return "", false
		}
		for i < n && d.data[i] >= '0' && d.data[i] <= '9' {
			i++
		}
	}
	if i < n && (d.data[i] == 'e' || d.data[i] == 'E') {
		isInt = false
		i++
		if i < n && (d.data[i] == '+' || d.data[i] == '-') {
			i++
		}
		if !(i < n && d.data[i] >= '0' && d.data[i] <= '9') {
			return "", false
		}
		for i < n && d.data[i] >= '0' && d.data[i] <= '9' {
			i++
		}
	}
	d.i = i
	return string(d.data[s:i]), isInt
}

// str decodes the string at d.i.
func (d *decoder) str() (string, error) {
	b, err := d.strBytes()
	return string(b), err
}

// strBytes decodes the string at d.i; the result is only valid until the
// next call.
func (d *decoder) strBytes() ([]byte, error) {
	if d.peek() != '"' {
		return nil, errFallback
	}
	d.i++
	start := d.i
	ascii := true
	for d.i < len(d.data) {
		c := d.data[d.i]
		switch {
		case c == '"':
			s := d.data[start:d.i]
			d.i++
			if !ascii && !utf8.Valid(s) {
				return nil, errFallback // encoding/json replaces bad bytes
			}
			return s, nil
		case c == '\\':
			return d.strEscaped(start)
		case c < 0x20:
			return nil, errFallback
		case c >= 0x80:
			ascii = false
		}
		d.i++
	}
	return nil, errFallback
}

// strEscaped finishes a string with escapes that began at start.
func (d *decoder) strEscaped(start int) ([]byte, error) {
	b := append(d.buf[:0], d.data[start:d.i]...)
	for d.i < len(d.data) {
		c := d.data[d.i]
		switch {
		case c == '"':
			d.i++
			d.buf = b
			if !utf8.Valid(b) {
				return nil, errFallback
			}
			return b, nil
		case c < 0x20:
			return nil, errFallback
		case c != '\\':
			b = append(b, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.data) {
			return nil, errFallback
		}
		e := d.data[d.i+1]
		d.i += 2
		switch e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			if d.i+4 > len(d.data) {
				return nil, errFallback
			}
			r, err := strconv.ParseUint(string(d.data[d.i:d.i+4]), 16, 32)
			if err != nil || utf16.IsSurrogate(rune(r)) {
				return nil, errFallback // surrogate pairs: encoding/json
			}
			d.i += 4
			b = utf8.AppendRune(b, rune(r))
		default:
			return nil, errFallback
		}
	}
	return nil, errFallback
}

// members walks the object at d.i: for each member, f gets its key
// (valid until the next string is read) with d.i at the member's value,
// which f decodes or skips.
func (d *decoder) members(f func(key []byte) error) error {
	if d.peek() != '{' {
		return errFallback
	}
	d.i++
	d.ws()
	if d.peek() == '}' {
		d.i++
		return nil
	}
	for {
		key, err := d.strBytes()
		if err != nil {
			return err
		}
		d.ws()
		if d.peek() != ':' {
			return errFallback
		}
		d.i++
		d.ws()
		if err := f(key); err != nil {
			return err
		}
		if done, err := d.next('}'); done || err != nil {
			return err
		}
	}
}

// elements walks the array at d.i: f decodes or skips each element.
func (d *decoder) elements(f func() error) error {
	if d.peek() != '[' {
		return errFallback
	}
	d.i++
	d.ws()
	if d.peek() == ']' {
		d.i++
		return nil
	}
	for {
		if err := f(); err != nil {
			return err
		}
		if done, err := d.next(']'); done || err != nil {
			return err
		}
	}
}

// next passes the ',' before another member or element, or the end.
func (d *decoder) next(end byte) (done bool, err error) {
	d.ws()
	switch d.peek() {
	case ',':
		d.i++
		d.ws()
		return false, nil
	case end:
		d.i++
		return true, nil
	}
	return true, errFallback
}

// object decodes a JSON object into the struct v.
func (d *decoder) object(v reflect.Value, ti *typeInfo, depth int) error {
	var seen uint64
	return d.members(func(key []byte) error {
		f, ok := ti.field(key)
		switch {
		case !ok:
			return errFallback
		case f == nil:
			return d.skip(depth + 1)
		}
		bit := uint64(1) << uint(f.pos)
		if seen&bit != 0 {
			return errFallback // a duplicate key: encoding/json's merge rules
		}
		seen |= bit
		return d.value(v.FieldByIndex(f.index), f.info.get(), depth+1)
	})
}

// field finds the field a key names: an exact match, else one equal under
// ASCII case folding (encoding/json's rule). A key with non-ASCII bytes
// that matches nothing exactly may still match under encoding/json's
// Unicode folding ("İD" is "ID" there): ok is false, and encoding/json
// decides.
func (ti *typeInfo) field(key []byte) (f *fieldInfo, ok bool) {
	for i := range ti.fields {
		if string(key) == ti.fields[i].name {
			return &ti.fields[i], true
		}
	}
	for _, c := range key {
		if c >= utf8.RuneSelf {
			return nil, false
		}
	}
	for i := range ti.fields {
		if asciiEqualFold(key, ti.fields[i].name) {
			return &ti.fields[i], true
		}
	}
	return nil, true
}

func asciiEqualFold(a []byte, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func (d *decoder) mapValue(v reflect.Value, ti *typeInfo, depth int) error {
	if d.peek() == '{' && v.IsNil() {
		v.Set(reflect.MakeMap(ti.typ))
	}
	elem := reflect.New(ti.typ.Elem()).Elem()
	return d.members(func(key []byte) error {
		k := reflect.ValueOf(string(key)).Convert(ti.typ.Key())
		elem.SetZero()
		if err := d.value(elem, ti.elem.get(), depth+1); err != nil {
			return err
		}
		v.SetMapIndex(k, elem)
		return nil
	})
}

func (d *decoder) array(v reflect.Value, ti *typeInfo, depth int) error {
	s := reflect.MakeSlice(ti.typ, 0, 0)
	err := d.elements(func() error {
		s = reflect.Append(s, reflect.Zero(ti.typ.Elem()))
		return d.value(s.Index(s.Len()-1), ti.elem.get(), depth+1)
	})
	if err == nil {
		v.Set(s)
	}
	return err
}

// generic decodes a value (not null) as encoding/json does into an any:
// map[string]any, []any, string, float64 or bool.
func (d *decoder) generic(depth int) (any, error) {
	if depth > maxDepth {
		return nil, errFallback
	}
	switch c := d.peek(); c {
	case '"':
		return d.str()
	case 't', 'f':
		if d.literal("true") {
			return true, nil
		}
		if d.literal("false") {
			return false, nil
		}
		return nil, errFallback
	case 'n':
		return nil, errFallback // a null inside: rare; encoding/json's
	case '[':
		a := []any{}
		err := d.elements(func() error {
			x, err := d.generic(depth + 1)
			a = append(a, x)
			return err
		})
		return a, err
	case '{':
		m := map[string]any{}
		err := d.members(func(key []byte) error {
			k := string(key)
			x, err := d.generic(depth + 1)
			m[k] = x
			return err
		})
		return m, err
	}
	tok, _ := d.number()
	if tok == "" {
		return nil, errFallback
	}
	f, err := strconv.ParseFloat(tok, 64)
	if err != nil {
		return nil, errFallback
	}
	return f, nil
}

// skip passes over a value of a key no field takes, checking its syntax.
func (d *decoder) skip(depth int) error {
	if depth > maxDepth {
		return errFallback
	}
	switch c := d.peek(); c {
	case '"':
		_, err := d.strBytes()
		return err
	case '{':
		return d.members(func([]byte) error { return d.skip(depth + 1) })
	case '[':
		return d.elements(func() error { return d.skip(depth + 1) })
	case 't':
		if d.literal("true") {
			return nil
		}
	case 'f':
		if d.literal("false") {
			return nil
		}
	case 'n':
		if d.literal("null") {
			return nil
		}
	default:
		if tok, _ := d.number(); tok != "" {
			return nil
		}
	}
	return errFallback
}
