package devfilter

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func i64(v int64) *int64 { return &v }

const (
	blk = unix.BPF_DEVCG_DEV_BLOCK
	chr = unix.BPF_DEVCG_DEV_CHAR
	mk  = unix.BPF_DEVCG_ACC_MKNOD
	rd  = unix.BPF_DEVCG_ACC_READ
	wr  = unix.BPF_DEVCG_ACC_WRITE
)

func dev(allow bool, typ string, major, minor *int64, access string) specs.LinuxDeviceCgroup {
	return specs.LinuxDeviceCgroup{Allow: allow, Type: typ, Major: major, Minor: minor, Access: access}
}

var denyAll = dev(false, "a", nil, nil, "rwm")

// runcDefault is runc's default spec (runc spec): deny everything, then
// the devices every container has, with "rwm".
var runcDefault = []specs.LinuxDeviceCgroup{
	denyAll,
	dev(true, "c", i64(1), i64(3), "rwm"), // null
	dev(true, "c", i64(1), i64(5), "rwm"), // zero
	dev(true, "c", i64(1), i64(7), "rwm"), // full
	dev(true, "c", i64(5), i64(0), "rwm"), // tty
	dev(true, "c", i64(1), i64(8), "rwm"), // random
	dev(true, "c", i64(1), i64(9), "rwm"), // urandom
	dev(true, "c", i64(5), i64(1), "rwm"), // console
	dev(true, "c", i64(136), nil, "rwm"),  // pts
	dev(true, "c", i64(5), i64(2), "rwm"), // ptmx
}

// The requests every program is checked on: both types, numbers that
// rules name and their neighbours, the 32-bit extremes, every access.
var (
	reqMajors = []uint32{0, 1, 2, 5, 8, 10, 136, 4095, 1 << 31, math.MaxUint32}
	reqMinors = []uint32{0, 1, 2, 3, 5, 7, 8, 9, 200, 1<<20 - 1, 1 << 31, math.MaxUint32}
)

func eachRequest(f func(request)) {
	for _, typ := range []uint32{blk, chr} {
		for _, maj := range reqMajors {
			for _, min := range reqMinors {
				for acc := uint32(0); acc <= 7; acc++ {
					f(request{typ: typ, acc: acc, major: maj, minor: min})
				}
			}
		}
	}
}

func checkAll(t *testing.T, rules []specs.LinuxDeviceCgroup) []Insn {
	t.Helper()
	prog := mustCompile(t, rules)
	eachRequest(func(q request) { check(t, rules, prog, q) })
	return prog
}

func TestCompileSemantics(t *testing.T) {
	type want struct {
		q     request
		allow bool
	}
	c13 := func(acc uint32) request { return request{chr, acc, 1, 3} }
	cases := []struct {
		name  string
		rules []specs.LinuxDeviceCgroup
		want  []want
		insns int // program length, 0: not checked
	}{
		{"no rules deny all", nil, []want{{c13(rd), false}, {request{blk, mk, 8, 0}, false}}, 2},
		{"leading deny all", []specs.LinuxDeviceCgroup{denyAll}, []want{{c13(rd | wr), false}}, 2},
		{"allow all", []specs.LinuxDeviceCgroup{dev(true, "", nil, nil, "")}, []want{{c13(7), true}, {request{blk, rd, 8, 0}, true}}, 2},
		{"allow one", []specs.LinuxDeviceCgroup{denyAll, dev(true, "c", i64(1), i64(3), "rwm")},
			[]want{{c13(rd | wr), true}, {c13(mk), true}, {request{chr, rd, 1, 5}, false}, {request{blk, rd, 1, 3}, false}}, 0},
		{"wildcard minor", []specs.LinuxDeviceCgroup{dev(true, "c", i64(136), nil, "rw")},
			[]want{{request{chr, rd | wr, 136, 7}, true}, {request{chr, mk, 136, 7}, false}, {request{chr, rd, 137, 7}, false}}, 0},
		{"last match wins", []specs.LinuxDeviceCgroup{dev(true, "c", i64(1), i64(3), "rwm"), dev(false, "c", i64(1), i64(3), "rwm"), dev(true, "c", i64(1), i64(3), "r")},
			[]want{{c13(rd), true}, {c13(wr), false}, {c13(rd | wr), false}}, 0},
		{"deny a hole in a wildcard", []specs.LinuxDeviceCgroup{denyAll, dev(true, "c", i64(1), nil, "rwm"), dev(false, "c", i64(1), i64(5), "rwm")},
			[]want{{c13(rd | wr), true}, {request{chr, rd, 1, 5}, false}, {request{chr, rd, 1, 9}, true}}, 0},
		// A deny of w refuses read-write opens too (cgroup v1, and runc's
		// allow-list emulation); r alone stays.
		{"deny some access", []specs.LinuxDeviceCgroup{dev(true, "c", i64(1), i64(3), "rwm"), dev(false, "c", i64(1), i64(3), "w")},
			[]want{{c13(rd), true}, {c13(rd | wr), false}, {c13(wr), false}, {c13(mk), true}, {c13(0), false}}, 0},
		// Opening read-write needs one rule granting both.
		{"access split over rules", []specs.LinuxDeviceCgroup{dev(true, "c", i64(1), i64(3), "r"), dev(true, "c", i64(1), nil, "w")},
			[]want{{c13(rd), true}, {c13(wr), true}, {c13(rd | wr), false}, {c13(0), true}}, 0},
		{"access split over rules for one device", []specs.LinuxDeviceCgroup{dev(true, "c", i64(1), i64(3), "r"), dev(true, "c", i64(1), i64(3), "w")},
			[]want{{c13(rd), true}, {c13(wr), true}, {c13(rd | wr), false}}, 0},
		{"wider deny after a narrower allow", []specs.LinuxDeviceCgroup{dev(true, "c", i64(1), i64(3), "rwm"), dev(false, "c", i64(1), nil, "rwm")},
			[]want{{c13(rd), false}, {request{chr, rd, 2, 3}, false}}, 0},
		{"allow all, deny some access", []specs.LinuxDeviceCgroup{dev(true, "a", nil, nil, "rwm"), dev(false, "c", i64(1), i64(3), "w")},
			[]want{{c13(rd), true}, {c13(rd | wr), false}, {c13(0), false}, {request{chr, rd | wr, 1, 4}, true}}, 0},
		// runc's TestDeviceFilter_PrivilegedExceptSingleDevice and _Weird.
		{"allow all but one", []specs.LinuxDeviceCgroup{dev(true, "a", nil, nil, "rwm"), dev(false, "b", i64(8), i64(0), "rwm")},
			[]want{{request{blk, rd, 8, 0}, false}, {request{blk, rd, 8, 1}, true}, {request{chr, rd, 8, 0}, true}}, 0},
		{"allow all resets", []specs.LinuxDeviceCgroup{dev(false, "b", i64(8), i64(1), "rwm"), dev(true, "a", nil, nil, "rwm"), dev(false, "b", i64(8), i64(2), "rwm")},
			[]want{{request{blk, rd, 8, 1}, true}, {request{blk, rd, 8, 2}, false}}, 0},
		{"a with numbers", []specs.LinuxDeviceCgroup{dev(true, "a", i64(1), i64(3), "r")},
			[]want{{c13(rd), true}, {request{blk, rd, 1, 3}, true}, {c13(wr), false}, {request{chr, rd, 1, 4}, false}}, 0},
		{"allow some access to all", []specs.LinuxDeviceCgroup{dev(true, "", nil, nil, "m")},
			[]want{{c13(mk), true}, {c13(rd), false}}, 0},
		{"negative is a wildcard", []specs.LinuxDeviceCgroup{dev(true, "c", i64(-1), i64(-1), "r")},
			[]want{{c13(rd), true}, {request{chr, rd, 4095, 9}, true}, {request{blk, rd, 1, 3}, false}}, 0},
		{"32-bit numbers", []specs.LinuxDeviceCgroup{dev(true, "c", i64(math.MaxUint32), i64(1<<31), "rwm")},
			[]want{{request{chr, rd, math.MaxUint32, 1 << 31}, true}, {request{chr, rd, math.MaxUint32, 0}, false}, {request{chr, rd, 0, 1 << 31}, false}}, 0},
		{"runc default", runcDefault,
			[]want{{c13(rd | wr), true}, {request{chr, rd | wr, 136, 4}, true}, {request{chr, rd, 1, 4}, false}, {request{blk, rd, 1, 3}, false}, {request{chr, rd, 10, 200}, false}}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prog := checkAll(t, c.rules)
			for _, w := range c.want {
				if got := run(t, prog, w.q) == 1; got != w.allow {
					t.Errorf("%v: allowed %v, want %v", w.q, got, w.allow)
				}
			}
			if c.insns != 0 && len(prog) != c.insns {
				t.Errorf("%d instructions, want %d\n%s", len(prog), c.insns, dump(prog))
			}
		})
	}
}

// TestCompileShape: a leading deny-all is the default and costs nothing,
// runc's default list is a few instructions a device.
func TestCompileShape(t *testing.T) {
	with := mustCompile(t, runcDefault)
	without := mustCompile(t, runcDefault[1:])
	if !reflect.DeepEqual(with, without) {
		t.Errorf("a leading deny-all changed the program")
	}
	t.Logf("runc's default list (%d rules): %d instructions", len(runcDefault), len(with))
	if len(with) > 4*len(runcDefault)+8 {
		t.Errorf("runc's default list: %d instructions\n%s", len(with), dump(with))
	}
	// Rules that say what the default says, before any other, are dropped.
	a := mustCompile(t, []specs.LinuxDeviceCgroup{dev(false, "c", i64(1), i64(3), "rwm"), dev(true, "c", i64(1), i64(5), "rwm")})
	b := mustCompile(t, []specs.LinuxDeviceCgroup{dev(true, "c", i64(1), i64(5), "rwm")})
	if !reflect.DeepEqual(a, b) {
		t.Errorf("a leading deny under a deny default changed the program")
	}
}

// FRE's own start-path list: the spec's rules, then runtime's defaults
// (runtime/create.go withDefaultDevices).
func TestCompileFREDefault(t *testing.T) {
	rules := append([]specs.LinuxDeviceCgroup{denyAll, dev(true, "c", i64(10), i64(229), "rwm")},
		dev(true, "c", nil, nil, "m"), dev(true, "b", nil, nil, "m"))
	rules = append(rules, runcDefault[1:]...)
	rules = append(rules, dev(true, "c", i64(10), i64(200), "rwm"))
	checkAll(t, rules)
}

func TestCompileRandom(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	types := []string{"", "a", "b", "c", "c", "c"}
	nums := []*int64{nil, nil, i64(-1), i64(0), i64(1), i64(3), i64(5), i64(136), i64(1 << 31), i64(math.MaxUint32)}
	access := []string{"", "r", "w", "m", "rw", "wr", "rm", "wm", "rwm", "mwr", "rr"}
	n := 400
	if testing.Short() {
		n = 50
	}
	for i := 0; i < n; i++ {
		rules := make([]specs.LinuxDeviceCgroup, rng.Intn(9))
		for j := range rules {
			rules[j] = dev(rng.Intn(2) == 0, types[rng.Intn(len(types))], nums[rng.Intn(len(nums))], nums[rng.Intn(len(nums))], access[rng.Intn(len(access))])
		}
		if rng.Intn(3) == 0 {
			rules = append([]specs.LinuxDeviceCgroup{dev(rng.Intn(2) == 0, "a", nil, nil, "rwm")}, rules...)
		}
		prog := mustCompile(t, rules)
		eachRequest(func(q request) { check(t, rules, prog, q) })
	}
}

func TestCompileErrors(t *testing.T) {
	for _, c := range []struct {
		rule  specs.LinuxDeviceCgroup
		field string
	}{
		{dev(true, "x", nil, nil, "rwm"), "linux.resources.devices[1].type"},
		{dev(true, "p", nil, nil, "rwm"), "linux.resources.devices[1].type"}, // a fifo: not a cgroup type
		{dev(true, "c", nil, nil, "rwz"), "linux.resources.devices[1].access"},
		{dev(true, "c", nil, nil, "RWM"), "linux.resources.devices[1].access"},
		{dev(true, "c", i64(1<<32), nil, "rwm"), "linux.resources.devices[1].major"},
		{dev(true, "c", i64(1), i64(math.MaxInt64), "rwm"), "linux.resources.devices[1].minor"},
	} {
		_, err := Compile([]specs.LinuxDeviceCgroup{denyAll, c.rule})
		var fe *FieldError
		if !errors.Is(err, ErrInvalidRule) || !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%s: Compile = %v, want a FieldError of %s", ruleList([]specs.LinuxDeviceCgroup{c.rule}), err, c.field)
		}
	}
}

func TestCompileTooLarge(t *testing.T) {
	rules := make([]specs.LinuxDeviceCgroup, 12000)
	for i := range rules {
		rules[i] = dev(true, "c", i64(1), i64(int64(i)), "rwm")
	}
	if _, err := Compile(rules); !errors.Is(err, ErrTooLarge) {
		t.Errorf("12000 rules: %v, want ErrTooLarge", err)
	}
	prog := mustCompile(t, rules[:5000])
	for _, q := range []request{{chr, rd, 1, 0}, {chr, rd, 1, 4999}, {chr, rd, 1, 5000}} {
		check(t, rules[:5000], prog, q)
	}
}

func TestEncode(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the expected bytes are little-endian")
	}
	got := encode([]Insn{{Code: opLoadW, Dst: r2, Src: r1, Off: 4, Imm: -2}})
	want := []byte{0x61, 0x12, 4, 0, 0xfe, 0xff, 0xff, 0xff} // little-endian
	if !reflect.DeepEqual(got, want) {
		t.Errorf("encode = % x, want % x", got, want)
	}
}

func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(runcDefault); err != nil {
			b.Fatal(err)
		}
	}
}
