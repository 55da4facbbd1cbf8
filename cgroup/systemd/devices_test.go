package systemd

import (
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func dev(allow bool, typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
	d := specs.LinuxDeviceCgroup{Allow: allow, Type: typ, Access: access}
	if major != -2 {
		d.Major = &major
	}
	if minor != -2 {
		d.Minor = &minor
	}
	return d
}

// nn is "no number" (nil) in dev.
const nn = -2

func TestDeviceProperties(t *testing.T) {
	denyAll := dev(false, "a", nn, nn, "rwm")
	strict := []string{"DeviceAllow=[]", "DevicePolicy=strict"}
	tests := []struct {
		name    string
		rules   []specs.LinuxDeviceCgroup
		version int
		want    []string
	}{
		{name: "no rules: no properties", version: 252},
		{
			name:    "runc's defaults after deny-all",
			version: 252,
			rules: []specs.LinuxDeviceCgroup{denyAll,
				dev(true, "c", nn, nn, "m"), dev(true, "b", nn, nn, "m"),
				dev(true, "c", 1, 3, "rwm"), dev(true, "c", 1, 5, "rwm"), dev(true, "c", 136, nn, "rwm"),
				dev(true, "c", 10, 200, "rwm")},
			want: append(strict, "DeviceAllow=[{char-* m} {/dev/char/1:3 rwm} {/dev/char/1:5 rwm} {char-136 rwm} {/dev/char/10:200 rwm} {block-* m}]"),
		},
		{
			name: "no leading deny: default deny", version: 252,
			rules: []specs.LinuxDeviceCgroup{dev(true, "b", 8, 0, "r")},
			want:  append(strict, "DeviceAllow=[{/dev/block/8:0 r}]"),
		},
		{
			name: "deny-all alone", version: 252,
			rules: []specs.LinuxDeviceCgroup{denyAll},
			want:  append(strict, "DeviceAllow=[]"),
		},
		{
			name: "allow-all: policy auto", version: 252,
			rules: []specs.LinuxDeviceCgroup{denyAll, dev(true, "", nn, nn, "")},
			want:  []string{"DeviceAllow=[]", "DevicePolicy=auto"},
		},
		{
			name: "allow-all of chars only", version: 252,
			rules: []specs.LinuxDeviceCgroup{dev(true, "c", nn, nn, "rwm"), dev(true, "b", 8, nn, "rw")},
			want:  append(strict, "DeviceAllow=[{block-8 rw} {char-* rwm}]"),
		},
		{
			// systemd has no deny entries: runc's "temporary deny-all".
			name: "blacklist allows nothing", version: 252,
			rules: []specs.LinuxDeviceCgroup{dev(true, "a", nn, nn, "rwm"), dev(false, "c", 1, 3, "w")},
			want:  append(strict, "DeviceAllow=[{block-* rwm}]"),
		},
		{
			name: "a later deny takes its bits", version: 252,
			rules: []specs.LinuxDeviceCgroup{denyAll, dev(true, "c", 1, 3, "rwm"), dev(false, "c", 1, 3, "w"),
				dev(true, "c", 1, 5, "rw"), dev(false, "c", 1, nn, "rw")},
			want: append(strict, "DeviceAllow=[{/dev/char/1:3 m}]"),
		},
		{
			name: "a narrower deny takes its bits from the wider allow", version: 252,
			rules: []specs.LinuxDeviceCgroup{denyAll, dev(true, "c", 4, nn, "rwm"), dev(false, "c", 4, 1, "r")},
			want:  append(strict, "DeviceAllow=[{char-4 wm}]"),
		},
		{
			name: "a deny before the allow changes nothing", version: 252,
			rules: []specs.LinuxDeviceCgroup{denyAll, dev(false, "c", 1, 3, "rwm"), dev(true, "c", 1, 3, "rw")},
			want:  append(strict, "DeviceAllow=[{/dev/char/1:3 rw}]"),
		},
		{
			name: "a later deny-all resets", version: 252,
			rules: []specs.LinuxDeviceCgroup{dev(true, "c", 1, 3, "rwm"), denyAll, dev(true, "c", 1, 5, "rwm")},
			want:  append(strict, "DeviceAllow=[{/dev/char/1:5 rwm}]"),
		},
		{
			name: "an 'a' rule with numbers is both types", version: 252,
			rules: []specs.LinuxDeviceCgroup{denyAll, dev(true, "a", 7, 1, "r")},
			want:  append(strict, "DeviceAllow=[{/dev/char/7:1 r} {/dev/block/7:1 r}]"),
		},
		{
			name: "*:n has no form; negative is any", version: 252,
			rules: []specs.LinuxDeviceCgroup{denyAll, dev(true, "c", nn, 3, "r"), dev(true, "c", -1, -1, "r")},
			want:  append(strict, "DeviceAllow=[{char-* r}]"),
		},
		{
			name: "n:* before systemd 240 is left out", version: 239,
			rules: []specs.LinuxDeviceCgroup{denyAll, dev(true, "c", 136, nn, "rwm"), dev(true, "c", 1, 3, "rwm")},
			want:  append(strict, "DeviceAllow=[{/dev/char/1:3 rwm}]"),
		},
	}
	for _, tt := range tests {
		got, err := deviceProperties(tt.rules, tt.version)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if g := show(got); !slices.Equal(g, tt.want) {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, g, tt.want)
		}
	}
}

// TestPropertiesDevices: the device properties come after the fixed ones.
func TestPropertiesDevices(t *testing.T) {
	got, err := Properties(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{dev(false, "a", nn, nn, "rwm")}}, true, 252)
	if err != nil {
		t.Fatal(err)
	}
	want := append(fixed(true), "DeviceAllow=[]", "DevicePolicy=strict", "DeviceAllow=[]")
	if g := show(got); !slices.Equal(g, want) {
		t.Errorf("got %q, want %q", g, want)
	}
}
