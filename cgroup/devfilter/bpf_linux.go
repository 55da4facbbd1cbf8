package devfilter

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ProgName is the name FRE's device programs are loaded with, by which
// Apply and Remove tell them from others' on a cgroup.
const ProgName = "fre_devices"

// license: any string does for this program type (it calls no GPL-only
// helper); runc's.
var license = []byte("Apache\x00")

// attrSize is what every bpf(2) attribute below is padded to, and the size
// passed: at least union bpf_attr of today's kernels, as some commands
// write fields past the ones they read (BPF_PROG_QUERY's revision). The
// kernel takes a larger size if the bytes it does not know are zero.
const attrSize = 256

// ptr is an __aligned_u64 holding a pointer. It is made of unsafe.Pointers
// so that the garbage collector sees what it points to (kept alive, and
// moved with the stack); on 32-bit hosts one of its two words is the
// pointer, the other nil.
type ptr [8 / unsafe.Sizeof(uintptr(0))]unsafe.Pointer

func ptrOf(p unsafe.Pointer) ptr {
	var v ptr
	i := 0
	if len(v) == 2 && binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		i = 1 // big-endian: the low word is the second
	}
	v[i] = p
	return v
}

func ptrTo[T any](b []T) ptr {
	if len(b) == 0 {
		return ptr{}
	}
	return ptrOf(unsafe.Pointer(&b[0]))
}

type progLoadAttr struct {
	progType    uint32
	insnCnt     uint32
	insns       ptr
	license     ptr
	logLevel    uint32
	logSize     uint32
	logBuf      ptr
	kernVersion uint32
	progFlags   uint32
	progName    [unix.BPF_OBJ_NAME_LEN]byte
	_           [attrSize - 64]byte
}

type attachAttr struct {
	targetFD     uint32
	attachBPFFD  uint32
	attachType   uint32
	attachFlags  uint32
	replaceBPFFD uint32
	_            [attrSize - 20]byte
}

type queryAttr struct {
	targetFD    uint32
	attachType  uint32
	queryFlags  uint32
	attachFlags uint32
	progIDs     ptr
	progCnt     uint32
	_           [attrSize - 28]byte
}

type getIDAttr struct {
	id        uint32
	nextID    uint32
	openFlags uint32
	_         [attrSize - 12]byte
}

type infoAttr struct {
	bpfFD   uint32
	infoLen uint32
	info    ptr
	_       [attrSize - 16]byte
}

// progInfo is struct bpf_prog_info up to name; the kernel fills what fits.
type progInfo struct {
	typ          uint32
	id           uint32
	tag          [unix.BPF_TAG_SIZE]byte
	jitedLen     uint32
	xlatedLen    uint32
	jitedInsns   uint64
	xlatedInsns  uint64
	loadTime     uint64
	createdByUID uint32
	nrMapIDs     uint32
	mapIDs       uint64
	name         [unix.BPF_OBJ_NAME_LEN]byte
}

func bpf[T any](cmd int, attr *T) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(unsafe.Pointer(attr)), unsafe.Sizeof(*attr))
	runtime.KeepAlive(attr)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// Load loads insns (from Compile) as a BPF_PROG_TYPE_CGROUP_DEVICE
// program named ProgName and returns its fd (close-on-exec), which the
// caller closes once the program is attached. The kernel's verifier log is
// asked for only when a load fails (it is then loaded again): errors are
// *LoadError.
func Load(insns []Insn) (progFD int, err error) { return loadNamed(insns, ProgName) }

func loadNamed(insns []Insn, name string) (int, error) {
	code := encode(insns)
	fd, err := load(code, len(insns), name, nil, 0)
	if err == nil {
		return fd, nil
	}
	log := make([]byte, 1<<16)
	if fd, err2 := load(code, len(insns), name, log, 1); err2 == nil {
		return fd, nil
	}
	if i := bytes.IndexByte(log, 0); i >= 0 {
		log = log[:i]
	}
	return -1, &LoadError{Err: err, Log: string(log)}
}

func load(code []byte, n int, name string, log []byte, level uint32) (int, error) {
	attr := progLoadAttr{
		progType: unix.BPF_PROG_TYPE_CGROUP_DEVICE,
		insnCnt:  uint32(n),
		insns:    ptrTo(code),
		license:  ptrTo(license),
	}
	copy(attr.progName[:len(attr.progName)-1], name)
	if len(log) > 0 {
		attr.logLevel = level
		attr.logSize = uint32(len(log))
		attr.logBuf = ptrTo(log)
	}
	for try := 0; ; try++ {
		fd, err := bpf(unix.BPF_PROG_LOAD, &attr)
		// A signal interrupts the verifier with EAGAIN.
		if err == unix.EAGAIN && try < 5 {
			continue
		}
		return fd, err
	}
}

// attach attaches prog to the cgroup cg, in place of the program old when
// old >= 0.
func attach(cg, prog, old int) error {
	attr := attachAttr{
		targetFD:    uint32(cg),
		attachBPFFD: uint32(prog),
		attachType:  unix.BPF_CGROUP_DEVICE,
		attachFlags: unix.BPF_F_ALLOW_MULTI,
	}
	if old >= 0 {
		attr.attachFlags |= unix.BPF_F_REPLACE
		attr.replaceBPFFD = uint32(old)
	}
	_, err := bpf(unix.BPF_PROG_ATTACH, &attr)
	return err
}

func detach(cg, prog int) error {
	attr := attachAttr{targetFD: uint32(cg), attachBPFFD: uint32(prog), attachType: unix.BPF_CGROUP_DEVICE}
	_, err := bpf(unix.BPF_PROG_DETACH, &attr)
	return err
}

// query lists the ids of the device programs attached to cg itself.
func query(cg int) ([]uint32, error) {
	ids := make([]uint32, 64) // BPF_CGROUP_MAX_PROGS
	for {
		attr := queryAttr{targetFD: uint32(cg), attachType: unix.BPF_CGROUP_DEVICE, progIDs: ptrTo(ids), progCnt: uint32(len(ids))}
		_, err := bpf(unix.BPF_PROG_QUERY, &attr)
		if err == unix.ENOSPC && int(attr.progCnt) > len(ids) {
			ids = make([]uint32, attr.progCnt)
			continue
		}
		if err != nil {
			return nil, err
		}
		return ids[:attr.progCnt], nil
	}
}

// progByID opens the program id and reads its name.
func progByID(id uint32) (fd int, name string, err error) {
	ga := getIDAttr{id: id}
	fd, err = bpf(unix.BPF_PROG_GET_FD_BY_ID, &ga)
	if err != nil {
		return -1, "", err
	}
	var info progInfo
	ia := infoAttr{bpfFD: uint32(fd), infoLen: uint32(unsafe.Sizeof(info)), info: ptrOf(unsafe.Pointer(&info))}
	if _, err := bpf(unix.BPF_OBJ_GET_INFO_BY_FD, &ia); err != nil {
		unix.Close(fd)
		return -1, "", err
	}
	n := info.name[:]
	if i := bytes.IndexByte(n, 0); i >= 0 {
		n = n[:i]
	}
	return fd, string(n), nil
}
