package main

// End-to-end tests of the shared-layer store under fre-runc (issue 5): two
// bundles with separate copies of the same files share one page cache and
// one inode, and stay isolated from each other's writes and from the
// bundle; refused bundles fall back to their plain rootfs; plain and
// read-only roots.

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/fre-runtime/fre/internal/testutil"
)

// storeEnv is a runtime root whose fre-runc runs plain-directory bundles
// on the shared store (opt-in: {"rootfs": "shared"}), a store in a temp
// dir.
func storeEnv(t *testing.T) (*env, string) {
	conf := filepath.Join(t.TempDir(), "shared.json")
	if err := os.WriteFile(conf, []byte(`{"rootfs": "shared"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "--config", conf)
	store := filepath.Join(t.TempDir(), "store")
	t.Setenv("FRE_STORE_ROOT", store)
	t.Cleanup(func() {
		// Runs after the tests' own deletes (cleanups are last-in
		// first-out): every hold on a tree must be gone.
		refs, _ := filepath.Glob(filepath.Join(store, "refs", "*", "*"))
		if len(refs) > 0 {
			t.Errorf("store refs left: %v", refs)
		}
	})
	return e, store
}

// rootfsJSON reads what prepareRootfs left in the container's saved state
// (state.json's rootfs_store), nil when nothing.
func rootfsJSON(t *testing.T, e *env, id string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.root, id, "state.json"))
	if err != nil {
		t.Fatalf("state.json of %s: %v", id, err)
	}
	var st struct {
		RootfsStore map[string]string `json:"rootfs_store"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st.RootfsStore
}

// waitFile polls for path until the deadline and returns its content.
func waitFile(t *testing.T, path string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil && bytes.HasSuffix(b, []byte("\n")) {
			return strings.TrimSpace(string(b))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear", path)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// resident counts a file's pages in the page cache (mincore).
func resident(t *testing.T, path string) (pages, total int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	if fi.Size() == 0 {
		return 0, 0
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	ps := os.Getpagesize()
	vec := make([]byte, (len(m)+ps-1)/ps)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	for _, v := range vec {
		if v&1 != 0 {
			pages++
		}
	}
	return pages, len(vec)
}

// dropCache evicts a file's clean pages.
func dropCache(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
}

// memcgCache is the page cache charged to a process's memory cgroup (v1
// "cache", or v2 "file").
func memcgCache(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 {
			continue
		}
		var stat, key string
		switch {
		case strings.Contains(","+f[1]+",", ",memory,"):
			stat, key = filepath.Join("/sys/fs/cgroup/memory", f[2], "memory.stat"), "cache"
		case f[0] == "0" && f[1] == "":
			stat, key = filepath.Join("/sys/fs/cgroup", f[2], "memory.stat"), "file"
			if _, err := os.Stat(stat); err != nil {
				continue
			}
		default:
			continue
		}
		s, err := os.ReadFile(stat)
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range strings.Split(string(s), "\n") {
			if k, v, ok := strings.Cut(kv, " "); ok && k == key {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
	}
	t.Skip("no memory cgroup for the container")
	return 0
}

func meminfoCached(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "Cached:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n << 10
		}
	}
	return 0
}

// The "shows done" test: two bundles whose rootfs are separate
// copies of the same files, running at once.
func TestStoreSharedPageCache(t *testing.T) {
	e, store := storeEnv(t)
	const size = 64 << 20
	big := make([]byte, size)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	// Each container reports the inode, then waits for the test's go at
	// each step: read the big file, write it (A only), report its head.
	script := `
step() { while [ ! -e /out/$1 ]; do usleep 2000; done; }
stat -c %i /big > /out/ino.tmp && mv /out/ino.tmp /out/ino
step read; cat /big > /dev/null; echo done > /out/read-done
step write; if [ "$WHO" = a ]; then echo changed-by-a > /big; fi; echo done > /out/write-done
step head; head -c 12 /big > /out/head.tmp; echo >> /out/head.tmp; mv /out/head.tmp /out/head
exec sleep 1000`
	type ctr struct {
		id, bundle, out string
		pid             int
	}
	var cs [2]*ctr
	for i, who := range []string{"a", "b"} {
		c := &ctr{id: newID(), bundle: bundle(t, "sh", "-c", script), out: t.TempDir()}
		if err := os.WriteFile(filepath.Join(c.bundle, "rootfs", "big"), big, 0o644); err != nil {
			t.Fatal(err)
		}
		testutil.MutateSpec(t, c.bundle, func(s *specs.Spec) {
			s.Root.Readonly = false
			s.Process.Env = append(s.Process.Env, "WHO="+who)
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/out", Type: "bind", Source: c.out, Options: []string{"rbind", "rw"}})
		})
		cs[i] = c
	}
	for _, c := range cs {
		e.must("run", "--detach", "--bundle", c.bundle, c.id)
		t.Cleanup(func() { e.run(nil, "delete", "--force", c.id) })
		c.pid = e.state(c.id).Pid
	}
	a, b := cs[0], cs[1]

	// One tree, one object: both containers see the store object's inode.
	ra, rb := rootfsJSON(t, e, a.id), rootfsJSON(t, e, b.id)
	if ra["mode"] != "overlay" || rb["mode"] != "overlay" {
		t.Fatalf("rootfs modes %q (%s), %q (%s), want overlay", ra["mode"], ra["reason"], rb["mode"], rb["reason"])
	}
	// The trees may differ (the copies' directory mtimes do), the object
	// is one.
	object := filepath.Join(store, "trees", ra["tree"], "rootfs", "big")
	var ost, ost2 unix.Stat_t
	if err := unix.Stat(object, &ost); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(filepath.Join(store, "trees", rb["tree"], "rootfs", "big"), &ost2); err != nil {
		t.Fatal(err)
	}
	if ost.Ino != ost2.Ino || ost.Dev != ost2.Dev {
		t.Fatalf("the two trees link different objects: inodes %d and %d", ost.Ino, ost2.Ino)
	}
	inoA, inoB := waitFile(t, filepath.Join(a.out, "ino")), waitFile(t, filepath.Join(b.out, "ino"))
	t.Logf("inode: container a %s, container b %s, store object %d (nlink %d)", inoA, inoB, ost.Ino, ost.Nlink)
	if inoA != inoB || inoA != strconv.FormatUint(ost.Ino, 10) {
		t.Fatalf("inodes differ: a %s, b %s, store object %d", inoA, inoB, ost.Ino)
	}

	// Page cache: a's read loads the object, b's read adds nothing.
	paths := []string{object, filepath.Join(a.bundle, "rootfs", "big"), filepath.Join(b.bundle, "rootfs", "big")}
	for _, p := range paths {
		dropCache(t, p)
	}
	if n, _ := resident(t, object); n > 16 {
		t.Logf("object still has %d pages cached after DONTNEED", n)
	}
	cgA0 := memcgCache(t, a.pid)
	os.WriteFile(filepath.Join(a.out, "read"), nil, 0o644)
	waitFile(t, filepath.Join(a.out, "read-done"))
	cgA1 := memcgCache(t, a.pid)
	objPages, objTotal := resident(t, object)

	cgB0, cached0 := memcgCache(t, b.pid), meminfoCached(t)
	os.WriteFile(filepath.Join(b.out, "read"), nil, 0o644)
	waitFile(t, filepath.Join(b.out, "read-done"))
	cgB1, cached1 := memcgCache(t, b.pid), meminfoCached(t)
	bundleA, _ := resident(t, paths[1])
	bundleB, _ := resident(t, paths[2])
	t.Logf("a's read: +%d KiB in a's cgroup; object %d/%d pages resident", (cgA1-cgA0)>>10, objPages, objTotal)
	t.Logf("b's read: +%d KiB in b's cgroup, Cached %+d KiB; bundle copies resident: %d and %d pages", (cgB1-cgB0)>>10, (cached1-cached0)>>10, bundleA, bundleB)
	if objPages < objTotal*9/10 {
		t.Errorf("after a's read only %d of %d object pages are cached", objPages, objTotal)
	}
	if cgA1-cgA0 < size*9/10 {
		t.Errorf("a's read charged only %d bytes of page cache to a", cgA1-cgA0)
	}
	if cgB1-cgB0 > 1<<20 {
		t.Errorf("b's read of the shared file added %d bytes of page cache", cgB1-cgB0)
	}
	if cached1-cached0 > size/2 {
		t.Errorf("b's read grew the host's page cache by %d bytes", cached1-cached0)
	}
	if bundleA+bundleB > 0 {
		t.Errorf("the bundles' own copies were read: %d and %d pages cached", bundleA, bundleB)
	}

	// A write copies up into a's upper: b, the object and the bundles keep
	// the original.
	for _, c := range cs {
		os.WriteFile(filepath.Join(c.out, "write"), nil, 0o644)
		waitFile(t, filepath.Join(c.out, "write-done"))
	}
	for _, c := range cs {
		os.WriteFile(filepath.Join(c.out, "head"), nil, 0o644)
	}
	if h := waitFile(t, filepath.Join(a.out, "head")); h != "changed-by-a" {
		t.Fatalf("a does not see its own write: %q", h)
	}
	waitFile(t, filepath.Join(b.out, "head"))
	if h, _ := os.ReadFile(filepath.Join(b.out, "head")); !bytes.Equal(h, append(big[:12:12], '\n')) {
		t.Fatalf("b sees %q at the start of the shared file, want the original", h)
	}
	for _, p := range paths {
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, big) {
			t.Fatalf("%s changed by a container's write", p)
		}
	}
	upper, err := os.ReadFile(filepath.Join(e.root, a.id, "upper", "big"))
	if err != nil || string(upper) != "changed-by-a\n" {
		t.Fatalf("a's upper: %q, %v", upper, err)
	}

	for _, c := range cs {
		e.must("delete", "--force", c.id)
	}
	for _, l := range mountLines(e.root) {
		t.Errorf("mount left: %s", l)
	}
}

func mountLines(under string) []string {
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, l := range strings.Split(string(mi), "\n") {
		if strings.Contains(l, under) {
			out = append(out, l)
		}
	}
	return out
}

// A bundle the store refuses runs on its plain rootfs; "plain" skips the
// store; root.readonly uses a read-only overlay when every mount target is in
// the image and an overlay when not.
func TestStoreModes(t *testing.T) {
	e, store := storeEnv(t)
	cases := []struct {
		name  string
		setup func(t *testing.T, b string)
		want  string // rootfs.json mode, "" for none
	}{
		{"device node falls back", func(t *testing.T, b string) {
			if err := unix.Mknod(filepath.Join(b, "rootfs", "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
				t.Fatal(err)
			}
		}, "plain"},
		{"annotation plain", func(t *testing.T, b string) {
			testutil.MutateSpec(t, b, func(s *specs.Spec) { s.Annotations = map[string]string{"run.fre.rootfs": "plain"} })
		}, ""},
		{"readonly with targets", func(t *testing.T, b string) {
			for _, d := range []string{"proc", "dev", "sys", "out"} {
				os.MkdirAll(filepath.Join(b, "rootfs", d), 0o755)
			}
		}, "readonly"},
		{"readonly missing targets", func(t *testing.T, b string) {
			os.RemoveAll(filepath.Join(b, "rootfs", "sys"))
		}, "overlay"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			b := bundle(t, "sh", "-c", "ls / > /out/ls; cat /proc/self/mountinfo > /out/mountinfo; echo ok > /out/done; exec sleep 1000")
			testutil.MutateSpec(t, b, func(s *specs.Spec) {
				s.Mounts = append(s.Mounts, specs.Mount{Destination: "/out", Type: "bind", Source: out, Options: []string{"rbind", "rw"}})
			})
			tc.setup(t, b)
			id := newID()
			e.must("run", "--detach", "--bundle", b, id)
			t.Cleanup(func() { e.run(nil, "delete", "--force", id) })
			waitFile(t, filepath.Join(out, "done"))
			m := rootfsJSON(t, e, id)
			mode := m["mode"]
			t.Logf("rootfs_store: %v", m)
			if _, err := os.Stat(filepath.Join(e.root, id, "rootfs.json")); err == nil {
				t.Errorf("rootfs.json written: the hold belongs in state.json")
			}
			if mode != tc.want {
				t.Fatalf("mode %q, want %q", mode, tc.want)
			}
			// The init mounts the store's overlay in its own mount
			// namespace: the container's root is an overlay, the host's
			// mount table holds nothing of the container's.
			if mode == "overlay" || mode == "readonly" {
				mi, _ := os.ReadFile(filepath.Join(out, "mountinfo"))
				root := ""
				for _, l := range strings.Split(string(mi), "\n") {
					if f := strings.Fields(l); len(f) > 4 && f[4] == "/" {
						root = l
					}
				}
				if !strings.Contains(root, " - overlay ") {
					t.Errorf("the container's / is not the store's overlay: %q", root)
				}
				for _, l := range mountLines(e.root) {
					t.Errorf("a mount of the running container's in the host's mount table: %s", l)
				}
			}
			e.must("delete", "--force", id)
			for _, l := range mountLines(e.root) {
				t.Errorf("mount left: %s", l)
			}
		})
	}
	if refs, _ := filepath.Glob(filepath.Join(store, "refs", "*", "*")); len(refs) > 0 {
		t.Fatalf("refs left: %v", refs)
	}
}

// A container allowed to remount (CAP_SYS_ADMIN) on a read-only shared
// root: remounting / read-write, as a bind or as the file system, must not
// make the store's tree or its objects writable.
func TestStoreReadonlyRootStaysReadonly(t *testing.T) {
	e, store := storeEnv(t)
	b := bundle(t, "sh", "-c", `
mount -o remount,rw,bind / ; mount -o remount,rw / ;
echo x > /pwned && echo WROTE-ROOT
echo x >> /bin/busybox && echo WROTE-OBJECT
touch /etc/passwd && echo WROTE-META
echo done`)
	for _, d := range []string{"proc", "dev", "sys"} {
		os.MkdirAll(filepath.Join(b, "rootfs", d), 0o755)
	}
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		c := s.Process.Capabilities
		c.Bounding = append(c.Bounding, "CAP_SYS_ADMIN")
		c.Effective = append(c.Effective, "CAP_SYS_ADMIN")
		c.Permitted = append(c.Permitted, "CAP_SYS_ADMIN")
	})
	var before unix.Stat_t
	if err := unix.Stat(filepath.Join(b, "rootfs", "bin", "busybox"), &before); err != nil {
		t.Fatal(err)
	}
	id := newID()
	out, errOut, code := e.run(nil, "run", "--bundle", b, id)
	if code != 0 || !strings.Contains(out, "done") {
		t.Fatalf("exit %d, out %q, err %q", code, out, errOut)
	}
	if strings.Contains(out, "WROTE") {
		t.Fatalf("the container wrote its read-only shared root: %q", out)
	}
	left, _ := filepath.Glob(filepath.Join(store, "trees", "*", "rootfs", "pwned"))
	if len(left) > 0 {
		t.Fatalf("a file appeared in the store's tree: %v", left)
	}
	objs, _ := filepath.Glob(filepath.Join(store, "trees", "*", "rootfs", "bin", "busybox"))
	for _, o := range objs {
		var st unix.Stat_t
		if err := unix.Stat(o, &st); err != nil || st.Size != before.Size {
			t.Fatalf("store object %s: size %d, want %d (%v)", o, st.Size, before.Size, err)
		}
	}
}

// A container that joins a mount namespace by path cannot see an overlay
// the runtime mounts in its own namespace now: it runs on its bundle's
// rootfs, as with the store off.
func TestStoreJoinedMountNamespace(t *testing.T) {
	e, _ := storeEnv(t)
	holder := exec.Command("unshare", "--mount", "--propagation", "private", "sleep", "1000")
	if err := holder.Start(); err != nil {
		t.Skipf("unshare: %v", err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	nsPath := fmt.Sprintf("/proc/%d/ns/mnt", holder.Process.Pid)
	self, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if ns, err := os.Readlink(nsPath); err == nil && ns != self {
			break // unshare has made its namespace
		}
		if time.Now().After(deadline) {
			t.Fatal("the holder's mount namespace did not appear")
		}
		time.Sleep(5 * time.Millisecond)
	}
	b := bundle(t, "echo", "joined")
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		for i, n := range s.Linux.Namespaces {
			if n.Type == specs.MountNamespace {
				s.Linux.Namespaces[i].Path = nsPath
			}
		}
	})
	id := newID()
	out, errOut, code := e.run(nil, "run", "--bundle", b, id)
	if code != 0 || strings.TrimSpace(out) != "joined" {
		t.Fatalf("exit %d, out %q, err %q", code, out, errOut)
	}
}

// A run bets on the tree of the rootfs's last import and walks the rootfs
// while the init sets up (rootfs.Speculate): a rootfs changed in between
// must still be what the container sees, the lost bet leaving nothing.
func TestStoreSeesRootfsChanges(t *testing.T) {
	e, _ := storeEnv(t)
	// Each run appends what it saw to a host file: a program started on a
	// stale tree, even if killed, would leave a line too many.
	logDir := t.TempDir()
	b := bundle(t, "sh", "-c", "cat /etc/msg | tee -a /log/seen")
	testutil.MutateSpec(t, b, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/log", Type: "bind", Source: logDir, Options: []string{"rbind", "rw"}})
	})
	msg := filepath.Join(b, "rootfs", "etc", "msg")
	// Enough entries that the walk outlasts the init's set-up: an init
	// that did not wait for it would run the program before the verdict.
	many := filepath.Join(b, "rootfs", "many")
	if err := os.Mkdir(many, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4000; i++ {
		if err := os.WriteFile(filepath.Join(many, strconv.Itoa(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var want []string
	for i, m := range []string{"one", "one", "two", "two", "three"} {
		if cur, _ := os.ReadFile(msg); string(cur) != m+"\n" {
			if err := os.WriteFile(msg, []byte(m+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		out, errOut, code := e.run(nil, "run", "--bundle", b, newID())
		if code != 0 || strings.TrimSpace(out) != m {
			t.Fatalf("run %d: exit %d, output %q (%s), want %q", i, code, out, errOut, m)
		}
		want = append(want, m)
	}
	// A file of the same size rewritten in place.
	if err := os.WriteFile(msg, []byte("thref\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := e.run(nil, "run", "--bundle", b, newID()); code != 0 || strings.TrimSpace(out) != "thref" {
		t.Fatalf("after an in-place rewrite: exit %d, output %q (%s)", code, out, errOut)
	}
	want = append(want, "thref")
	if seen, _ := os.ReadFile(filepath.Join(logDir, "seen")); strings.Join(strings.Fields(string(seen)), " ") != strings.Join(want, " ") {
		t.Fatalf("the containers saw %q, want %q", seen, want)
	}
}
