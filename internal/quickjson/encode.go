package quickjson

import (
	"encoding"
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Marshal is json.Marshal, byte for byte, for the types the decoder takes
// (floats, []byte, text marshalers, ",string" and "omitzero" options,
// non-empty interfaces, and anything else are left to encoding/json),
// without encoding/json's first-use cost: fre-runc writes the state file
// of every container it creates.
func Marshal(v any) ([]byte, error) {
	e := encoder{buf: make([]byte, 0, 1024)}
	if e.value(reflect.ValueOf(v), 0) == nil {
		return e.buf, nil
	}
	return json.Marshal(v)
}

type encoder struct{ buf []byte }

var (
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

func (e *encoder) value(v reflect.Value, depth int) error {
	if depth > maxDepth || !v.IsValid() {
		return errFallback
	}
	t := v.Type()
	if t.Implements(marshalerType) {
		if t.Kind() == reflect.Pointer && v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		b, err := v.Interface().(json.Marshaler).MarshalJSON()
		if err != nil || !json.Valid(b) || strings.ContainsAny(string(b), " \t\r\n<>&\u2028\u2029") {
			return errFallback // encoding/json compacts and escapes it
		}
		e.buf = append(e.buf, b...)
		return nil
	}
	if t.Implements(textMarshalerType) || (t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(marshalerType)) {
		return errFallback // addressability rules: encoding/json's
	}
	switch t.Kind() {
	case reflect.Bool:
		e.buf = strconv.AppendBool(e.buf, v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.buf = strconv.AppendInt(e.buf, v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		e.buf = strconv.AppendUint(e.buf, v.Uint(), 10)
	case reflect.String:
		return e.str(v.String())
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		if t.Kind() == reflect.Interface && t.NumMethod() > 0 {
			return errFallback
		}
		return e.value(v.Elem(), depth+1)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return errFallback // base64
		}
		if v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		e.buf = append(e.buf, '[')
		for i := 0; i < v.Len(); i++ {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			if err := e.value(v.Index(i), depth+1); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, ']')
	case reflect.Map:
		if t.Key().Kind() != reflect.String || t.Key().Implements(textMarshalerType) {
			return errFallback
		}
		if v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		e.buf = append(e.buf, '{')
		for i, k := range keys {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			if err := e.str(k.String()); err != nil {
				return err
			}
			e.buf = append(e.buf, ':')
			if err := e.value(v.MapIndex(k), depth+1); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, '}')
	case reflect.Struct:
		e.buf = append(e.buf, '{')
		first := true
		var names []string
		if err := e.fields(v, &first, &names, depth); err != nil {
			return err
		}
		e.buf = append(e.buf, '}')
	default:
		return errFallback // floats (encoding/json's formatting), arrays, chans...
	}
	return nil
}

// fields writes the struct's fields, those of embedded structs in place;
// two of one name (encoding/json's dominance rules) are left to it.
func (e *encoder) fields(v reflect.Value, first *bool, names *[]string, depth int) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous {
			if tag != "" || f.Type.Kind() != reflect.Struct || f.Type.Implements(marshalerType) || f.Type.Implements(textMarshalerType) {
				return errFallback
			}
			if err := e.fields(v.Field(i), first, names, depth+1); err != nil {
				return err
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		o := "," + opts + ","
		if strings.Contains(o, ",string,") || strings.Contains(o, ",omitzero,") {
			return errFallback
		}
		if !validTagName(name) {
			name = f.Name
		}
		if slices.Contains(*names, name) {
			return errFallback
		}
		*names = append(*names, name)
		fv := v.Field(i)
		if strings.Contains(o, ",omitempty,") && isEmpty(fv) {
			continue
		}
		if !*first {
			e.buf = append(e.buf, ',')
		}
		*first = false
		if err := e.str(name); err != nil {
			return err
		}
		e.buf = append(e.buf, ':')
		if err := e.value(fv, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// isEmpty is encoding/json's omitempty test.
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

const hex = "0123456789abcdef"

// str writes s quoted as encoding/json does (HTML-safe escapes included);
// invalid UTF-8, which it would replace, is left to it.
func (e *encoder) str(s string) error {
	if !utf8.ValidString(s) {
		return errFallback
	}
	e.buf = append(e.buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			e.buf = append(e.buf, s[start:i]...)
			switch c {
			case '"', '\\':
				e.buf = append(e.buf, '\\', c)
			case '\b':
				e.buf = append(e.buf, '\\', 'b')
			case '\f':
				e.buf = append(e.buf, '\\', 'f')
			case '\n':
				e.buf = append(e.buf, '\\', 'n')
			case '\r':
				e.buf = append(e.buf, '\\', 'r')
			case '\t':
				e.buf = append(e.buf, '\\', 't')
			default:
				e.buf = append(e.buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == '\u2028' || r == '\u2029' {
			e.buf = append(e.buf, s[start:i]...)
			e.buf = append(e.buf, '\\', 'u', '2', '0', '2', hex[r&0xf])
			start = i + size
		}
		i += size
	}
	e.buf = append(e.buf, s[start:]...)
	e.buf = append(e.buf, '"')
	return nil
}
