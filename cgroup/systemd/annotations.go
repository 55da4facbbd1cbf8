package systemd

import (
	"fmt"
	"slices"
	"strings"

	sd "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// AnnotationPrefix starts the OCI annotations that set a unit property
// directly ("org.systemd.property.TimeoutStopUSec": "uint64 123456789"),
// which runc's systemd driver honours.
const AnnotationPrefix = "org.systemd.property."

// AnnotationProperties are the unit properties the annotations ask for,
// as runc reads them: the name after AnnotationPrefix, letters only and
// at least three; the value in GVariant text form ("uint64 10", "'s'",
// "true"); a name ending in a lower-case letter then "Sec" is the "USec"
// property with the number turned into microseconds. They go after
// Properties' (runc appends them last, so they win). Annotations are in
// sorted order, for a stable result.
func AnnotationProperties(annotations map[string]string) ([]sd.Property, error) {
	var keys []string
	for k := range annotations {
		if strings.HasPrefix(k, AnnotationPrefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	props := make([]sd.Property, 0, len(keys))
	for _, k := range keys {
		name := k[len(AnnotationPrefix):]
		bad := func(msg string) error {
			return fmt.Errorf("%w: annotations[%q] = %q: %s", ErrInvalidResources, k, annotations[k], msg)
		}
		if len(name) < 3 {
			return nil, bad("property name shorter than 3 letters")
		}
		for i := 0; i < len(name); i++ {
			if c := name[i] | 0x20; c < 'a' || c > 'z' {
				return nil, bad("property name not letters only")
			}
		}
		v, err := godbus.ParseVariant(annotations[k], godbus.Signature{})
		if err != nil {
			return nil, bad(err.Error())
		}
		if base, ok := strings.CutSuffix(name, "Sec"); ok && base != "" && base[len(base)-1] >= 'a' && base[len(base)-1] <= 'z' {
			usec, err := toUSec(v)
			if err != nil {
				return nil, bad(err.Error())
			}
			name, v = base+"USec", godbus.MakeVariant(usec)
		}
		props = append(props, sd.Property{Name: name, Value: v})
	}
	return props, nil
}

// toUSec turns a number of seconds of any D-Bus numeric type into
// microseconds.
func toUSec(v godbus.Variant) (uint64, error) {
	const M = 1000000
	switch n := v.Value().(type) {
	case byte:
		return uint64(n) * M, nil
	case int16:
		return uint64(n) * M, nil
	case uint16:
		return uint64(n) * M, nil
	case int32:
		return uint64(n) * M, nil
	case uint32:
		return uint64(n) * M, nil
	case int64:
		return uint64(n) * M, nil
	case uint64:
		return n * M, nil
	case float64:
		return uint64(n * M), nil
	}
	return 0, fmt.Errorf("a ...Sec property wants a number, not %s", v.Signature())
}
