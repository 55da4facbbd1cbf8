package systemd

import (
	"fmt"
	"strconv"

	sd "github.com/coreos/go-systemd/v22/dbus"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// deviceAllow is one DeviceAllow= entry, D-Bus type (ss).
type deviceAllow struct {
	Path  string
	Perms string
}

// Access bits of a device rule.
const (
	accRead  = 1 << iota
	accWrite = 1 << iota
	accMknod = 1 << iota
	accAll   = accRead | accWrite | accMknod
)

// devRule is a parsed linux.resources.devices entry.
type devRule struct {
	allow        bool
	typ          byte  // 'c', 'b', or 0 for both ("a")
	major, minor int64 // -1: any
	acc          uint8
}

// deviceProperties turns device rules into systemd's device policy, as
// runc's systemd device code does: DevicePolicy=strict (only what is
// listed; not even /dev/null otherwise) and a DeviceAllow= list, emptied
// first so that an update replaces the unit's list (runc 1.2 on empties
// it before setting the policy; 1.1.5 after). A list that allows every
// device is DevicePolicy=auto with no entries. No rules at all give no
// properties: the unit's policy is left as it is, which is also what
// cgroupfs does with no rules.
//
// The rules mean what they mean to FRE's device filter (package
// devfilter): per device type, the last rule that matches decides, and a
// leading "a *:* rwm" sets the default. systemd knows only allow entries,
// so its list is the allow rules less what a later deny takes away; a
// later deny narrower than an allow (systemd cannot punch a hole) takes
// its access bits from the whole allow, and a default of allow with
// denies after it allows nothing of that type (runc's "temporary
// deny-all"). Rules systemd cannot express ("*:n"; "n:*" before systemd
// 240, where runc looks the major up in /proc/devices) are left out. So
// systemd never allows more than the rules; on cgroup v2 FRE's own filter
// is attached too and the kernel needs both to allow.
func deviceProperties(rules []specs.LinuxDeviceCgroup, version int) ([]sd.Property, error) {
	if len(rules) == 0 {
		return nil, nil
	}
	rs := make([]devRule, len(rules))
	for i, d := range rules {
		r, err := parseDevRule(i, d)
		if err != nil {
			return nil, err
		}
		rs[i] = r
	}
	entries := []deviceAllow{}
	var allowAll [2]bool
	for t, typ := range [2]byte{'c', 'b'} {
		def, chain := devChain(rs, typ)
		if def {
			allowAll[t] = len(chain) == 0
			continue
		}
		for i, r := range chain {
			if !r.allow {
				continue
			}
			acc := r.acc
			for _, d := range chain[i+1:] {
				if !d.allow && devOverlap(r, d) {
					acc &^= d.acc
				}
			}
			if path, ok := devicePath(typ, r.major, r.minor, version); ok && acc != 0 {
				entries = append(entries, deviceAllow{Path: path, Perms: permString(acc)})
			}
		}
	}
	if allowAll[0] && allowAll[1] {
		return []sd.Property{
			prop("DeviceAllow", []deviceAllow{}),
			prop("DevicePolicy", "auto"),
		}, nil
	}
	if allowAll[0] {
		entries = append(entries, deviceAllow{Path: "char-*", Perms: "rwm"})
	}
	if allowAll[1] {
		entries = append(entries, deviceAllow{Path: "block-*", Perms: "rwm"})
	}
	return []sd.Property{
		prop("DeviceAllow", []deviceAllow{}),
		prop("DevicePolicy", "strict"),
		prop("DeviceAllow", entries),
	}, nil
}

func parseDevRule(i int, d specs.LinuxDeviceCgroup) (devRule, error) {
	field := func(f string) string { return fmt.Sprintf("linux.resources.devices[%d].%s", i, f) }
	r := devRule{allow: d.Allow, major: -1, minor: -1}
	switch d.Type {
	case "", "a":
	case "b", "c":
		r.typ = d.Type[0]
	default:
		return r, fmt.Errorf("%w: %s: unknown device type %q (want a, b or c)", ErrInvalidResources, field("type"), d.Type)
	}
	if d.Major != nil && *d.Major >= 0 {
		r.major = *d.Major
	}
	if d.Minor != nil && *d.Minor >= 0 {
		r.minor = *d.Minor
	}
	if d.Access == "" {
		r.acc = accAll
	}
	for _, c := range d.Access {
		switch c {
		case 'r':
			r.acc |= accRead
		case 'w':
			r.acc |= accWrite
		case 'm':
			r.acc |= accMknod
		default:
			return r, fmt.Errorf("%w: %s: %q has %q (want letters of \"rwm\")", ErrInvalidResources, field("access"), d.Access, c)
		}
	}
	return r, nil
}

// devChain is the rules of type typ after the last one matching every
// request of the type, and that one's verdict (deny when there is none).
func devChain(rs []devRule, typ byte) (def bool, chain []devRule) {
	for _, r := range rs {
		if r.typ != 0 && r.typ != typ {
			continue
		}
		if r.major < 0 && r.minor < 0 && r.acc == accAll {
			def, chain = r.allow, chain[:0]
			continue
		}
		chain = append(chain, r)
	}
	return def, chain
}

// devOverlap: is some device matched by both rules?
func devOverlap(a, b devRule) bool {
	return (a.major < 0 || b.major < 0 || a.major == b.major) &&
		(a.minor < 0 || b.minor < 0 || a.minor == b.minor)
}

// devicePath is the DeviceAllow= path for a type and numbers, as runc
// builds it: "char-*" for every device of the type, "char-MAJOR" for a
// major (systemd 240 on), "/dev/char/MAJOR:MINOR" for one device (parsed
// from the string since systemd 240; older ones stat it, and skip it
// when missing). "*:MINOR" has no form.
func devicePath(typ byte, major, minor int64, version int) (string, bool) {
	group, dir := "char-", "/dev/char/"
	if typ == 'b' {
		group, dir = "block-", "/dev/block/"
	}
	switch {
	case major < 0 && minor < 0:
		return group + "*", true
	case major < 0:
		return "", false
	case minor < 0:
		if version < versionDeviceNumbers {
			return "", false
		}
		return group + strconv.FormatInt(major, 10), true
	}
	return dir + strconv.FormatInt(major, 10) + ":" + strconv.FormatInt(minor, 10), true
}

func permString(acc uint8) string {
	b := make([]byte, 0, 3)
	if acc&accRead != 0 {
		b = append(b, 'r')
	}
	if acc&accWrite != 0 {
		b = append(b, 'w')
	}
	if acc&accMknod != 0 {
		b = append(b, 'm')
	}
	return string(b)
}
