package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The memory scenario (issue 5, the research's figures 9–11): five
// language runtimes, each a separate image, five containers of each, run
// three ways:
//
//	host      the same programs started directly on the host
//	runc      runc, each container on its own plain copy of its image
//	fre-runc  fre-runc with the shared store on the same copies
//
// Total memory = the anonymous and shmem part of the processes' PSS, plus
// the page cache of every file they have mapped, each file counted once
// (the shared libraries and interpreters are mapped, so their resident
// pages are what the containers pin). Under runc each copy is its own
// inode and its own cache; under fre-runc the store makes every copy one
// inode. Before each configuration the files it will map are evicted from
// the page cache, so each starts cold.

// memRow is one configuration and language (lang "all": every language,
// each file counted once across them).
type memRow struct {
	config, lang      string
	containers, procs int
	pss, anon, file   int64 // bytes: PSS; anon+shmem PSS; page cache of mapped files
}

func (r memRow) total() int64 { return r.anon + r.file }

func memory(e *env) error {
	// On disk, not in the bench's temp dir (often tmpfs): tmpfs files are
	// always resident and cannot be evicted, which would hide the page
	// cache the images cost.
	dir, done, err := memWorkDir(e, "frebench-memory-")
	if err != nil {
		return err
	}
	defer done()
	per := e.opts.memPer
	langs := languages()
	// fre-runc and its store CLI find the store through the environment.
	prev, had := os.LookupEnv("FRE_STORE_ROOT")
	store := e.opts.store
	if store == "" {
		store = filepath.Join(dir, "store") // removed with the bench's temp dir
	}
	os.Setenv("FRE_STORE_ROOT", store)
	defer func() {
		if had {
			os.Setenv("FRE_STORE_ROOT", prev)
		} else {
			os.Unsetenv("FRE_STORE_ROOT")
		}
	}()
	fmt.Printf("\nmemory: %d images x %d containers; host vs runc vs fre-runc\n", len(langs), per)

	// Images: a template per language, then a plain copy per container.
	sizes := map[string]int64{}
	bases := userlands{}
	for n, l := range langs {
		known := bases[l.base] != nil
		u, err := bases.get(l.base)
		if err != nil {
			return fmt.Errorf("memory: %w", err)
		}
		if !known && len(u.missing) > 0 {
			fmt.Printf("  base %s: this machine lacks %s (left out)\n", l.base, strings.Join(u.missing, " "))
		}
		tmpl := filepath.Join(dir, "images", l.name)
		if err := buildImage(l, tmpl, u.paths, u.status, n); err != nil {
			return fmt.Errorf("memory: image %s: %w", l.name, err)
		}
		n, err := dirSize(tmpl)
		if err != nil {
			return err
		}
		sizes[l.name] = n
		for i := 0; i < per; i++ {
			b := filepath.Join(dir, "bundles", fmt.Sprintf("%s-%d", l.name, i))
			if err := os.MkdirAll(b, 0o755); err != nil {
				return err
			}
			if out, err := exec.Command("cp", "-a", tmpl, filepath.Join(b, "rootfs")).CombinedOutput(); err != nil {
				return fmt.Errorf("memory: copy image %s: %v: %s", l.name, err, out)
			}
		}
		fmt.Printf("  image %-8s %7.1f MiB unpacked (FROM %s)\n", l.name, mib(n), l.base)
	}
	unix.Sync()

	port := freePortBase(len(langs) * per)
	var rows []memRow
	configs := []string{"host"}
	for _, name := range []string{"runc", "fre-runc"} {
		if e.bench(name) != nil {
			configs = append(configs, name)
		}
	}
	var figs storeFigures
	for _, cfg := range configs {
		var r []memRow
		var err error
		switch cfg {
		case "host":
			r, err = memHost(langs, dir, per, port)
		default:
			l := e.bench(cfg).r.(*local)
			if cfg == "fre-runc" {
				if l, err = memStoreLocal(l, dir, store); err != nil {
					return err
				}
				if figs, err = memImport(e, l, langs, dir, per, sizes); err != nil {
					return err
				}
			}
			r, err = memContainers(e, cfg, l, langs, dir, per, port, func(b string, lg *lang, p int) error {
				return writeMemSpec(e, b, lg, p)
			})
		}
		if err != nil {
			return fmt.Errorf("memory: %s: %w", cfg, err)
		}
		rows = append(rows, r...)
	}
	return writeMemory(e.opts.results, rows, figs, configs)
}

// memWorkDir makes a memory scenario's directory under -mem-dir; done
// removes it (unless -keep, or mounts are left under it).
func memWorkDir(e *env, prefix string) (dir string, done func(), err error) {
	dir, err = os.MkdirTemp(e.opts.memDir, prefix)
	if err != nil {
		return "", nil, err
	}
	return dir, func() {
		if e.opts.keep {
			fmt.Printf("  kept %s\n", dir)
			return
		}
		if m := mountsUnder(dir); len(m) > 0 {
			fmt.Fprintf(os.Stderr, "frebench: not removing %s: mounts left under it: %v\n", dir, m)
			return
		}
		os.RemoveAll(dir)
	}, nil
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// memStoreLocal is fre-runc on the shared store (opt-in for these
// plain-directory bundles), the memory scenario's store (on disk,
// where the images are) in place of the bench's config, whose store is on
// the work dir's tmpfs: a tree on tmpfs would be shmem, always resident,
// and no measure of the page cache.
func memStoreLocal(l *local, dir, store string) (*local, error) {
	cfgFile := filepath.Join(dir, "fre-runc-memory.json")
	data, _ := json.Marshal(map[string]any{"rootfs": "shared", "storeRoot": store})
	if err := os.WriteFile(cfgFile, data, 0o644); err != nil {
		return nil, err
	}
	m := *l
	m.global = nil
	for i := 0; i < len(l.global); i++ {
		if l.global[i] == "--config" && i+1 < len(l.global) {
			i++
			continue
		}
		m.global = append(m.global, l.global[i])
	}
	m.global = append(m.global, "--config", cfgFile)
	return &m, nil
}

// freePortBase finds n consecutive free ports on 127.0.0.1.
func freePortBase(n int) int {
	for base := 21000; base < 60000; base += n + 7 {
		ok := true
		for p := base; p < base+n && ok; p++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				ok = false
				continue
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	return 21000
}

// waitHTTP polls the app until it answers (it has loaded its runtime and
// its HTTP code) or the deadline passes.
func waitHTTP(port int, deadline time.Time) error {
	c := &http.Client{Timeout: 2 * time.Second}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// memHost runs the programs directly.
func memHost(langs []*lang, dir string, per, port int) ([]memRow, error) {
	evictHostFiles(langs, dir)
	var cmds []*exec.Cmd
	defer func() {
		for _, c := range cmds {
			syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			c.Wait()
		}
	}()
	pids := map[string][]int{}
	p := port
	for _, l := range langs {
		// The app files live in the template; everything else is the host's.
		root := filepath.Join(dir, "images", l.name)
		for i := 0; i < per; i++ {
			args := l.args(root, p)
			c := exec.Command(args[0], args[1:]...)
			c.Env = append([]string{"PATH=/usr/bin:/bin"}, l.env...)
			c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := c.Start(); err != nil {
				return nil, err
			}
			cmds = append(cmds, c)
			pids[l.name] = append(pids[l.name], c.Process.Pid)
			p++
		}
	}
	if err := waitAll(port, p); err != nil {
		return nil, err
	}
	return measure("host", langs, pids, per)
}

func waitAll(from, to int) error {
	deadline := time.Now().Add(3 * time.Minute)
	for p := from; p < to; p++ {
		if err := waitHTTP(p, deadline); err != nil {
			return err
		}
	}
	return nil
}

// memContainers runs every bundle with one runtime.
func memContainers(e *env, cfg string, l *local, langs []*lang, dir string, per, port int,
	writeSpec func(bundle string, lg *lang, port int) error) ([]memRow, error) {
	switch cfg {
	case "runc":
		evictTree(filepath.Join(dir, "bundles"))
	case "fre-runc":
		evictTree(filepath.Join(os.Getenv("FRE_STORE_ROOT"), "trees"))
	}
	var ids []string
	defer func() {
		for _, id := range ids {
			l.remove(id)
		}
	}()
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	pids := map[string][]int{}
	p := port
	for _, lg := range langs {
		for i := 0; i < per; i++ {
			b := filepath.Join(dir, "bundles", fmt.Sprintf("%s-%d", lg.name, i))
			if err := writeSpec(b, lg, p); err != nil {
				return nil, err
			}
			id := e.id(cfg + "-" + lg.name)
			// A file, not a pipe: the detached container keeps its stdio.
			log, err := os.Create(filepath.Join(dir, id+".log"))
			if err != nil {
				return nil, err
			}
			cmd := l.command("run", "--detach", "--bundle", b, id)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, log, log
			err = cmd.Run()
			log.Close()
			if err != nil {
				out, _ := os.ReadFile(log.Name())
				return nil, fmt.Errorf("run %s: %v: %s", id, err, out)
			}
			ids = append(ids, id)
			pid, err := containerPid(l, id)
			if err != nil {
				return nil, err
			}
			pids[lg.name] = append(pids[lg.name], pid)
			p++
		}
	}
	if err := waitAll(port, p); err != nil {
		return nil, err
	}
	return measure(cfg, langs, pids, per)
}

func containerPid(l *local, id string) (int, error) {
	out, err := l.command("state", id).Output()
	if err != nil {
		return 0, fmt.Errorf("state %s: %v", id, err)
	}
	var s specs.State
	if err := json.Unmarshal(out, &s); err != nil {
		return 0, err
	}
	return s.Pid, nil
}

// writeMemSpec writes the runtime's default spec for lg's app on port,
// in the host network namespace (each app has its own port).
func writeMemSpec(e *env, bundle string, lg *lang, port int) error {
	spec, err := readSpec(e.bundle)
	if err != nil {
		return err
	}
	spec = cloneSpec(spec)
	spec.Root.Path = "rootfs"
	spec.Root.Readonly = false
	spec.Process.Args = lg.args("", port)
	spec.Process.Env = append([]string{"PATH=/usr/bin:/bin"}, lg.env...)
	var ns []specs.LinuxNamespace
	for _, n := range spec.Linux.Namespaces {
		if n.Type != specs.NetworkNamespace {
			ns = append(ns, n)
		}
	}
	spec.Linux.Namespaces = ns
	return writeSpecCopy(bundle, spec)
}

// memImport imports every bundle into the store the way fre-runc would at
// create, timing each: the first copy of an image writes its objects, the
// others only hash. fre-runc's creates then hit the import cache.
func memImport(e *env, l *local, langs []*lang, dir string, per int, sizes map[string]int64) (storeFigures, error) {
	sf := storeFigures{imageSize: sizes, copies: per}
	sf.importFirst = map[string]time.Duration{}
	sf.importCopy = map[string]time.Duration{}
	storeDir := os.Getenv("FRE_STORE_ROOT")
	for _, lg := range langs {
		for i := 0; i < per; i++ {
			rfs := filepath.Join(dir, "bundles", fmt.Sprintf("%s-%d", lg.name, i), "rootfs")
			t0 := time.Now()
			out, err := exec.Command(l.path, "store", "import", "--store", storeDir, "--quiet", rfs).CombinedOutput()
			d := time.Since(t0)
			if err != nil {
				return sf, fmt.Errorf("store import %s: %v: %s", rfs, err, out)
			}
			n, _ := dirSize(rfs)
			sf.unpacked += n
			if i == 0 {
				sf.importFirst[lg.name] = d
			} else {
				sf.importCopy[lg.name] += d / time.Duration(per-1)
			}
		}
	}
	out, err := exec.Command(l.path, "store", "df", "--store", storeDir, "--format", "json").Output()
	if err != nil {
		return sf, fmt.Errorf("store df: %v", err)
	}
	if err := json.Unmarshal(out, &sf.df); err != nil {
		return sf, err
	}
	for _, lg := range langs {
		fmt.Printf("  import %-8s first copy %8.1f ms, each further copy %8.1f ms\n", lg.name,
			msOf(sf.importFirst[lg.name]), msOf(sf.importCopy[lg.name]))
	}
	return sf, nil
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

type storeFigures struct {
	imageSize   map[string]int64
	copies      int
	unpacked    int64 // every imported bundle's files
	importFirst map[string]time.Duration
	importCopy  map[string]time.Duration
	df          struct {
		Trees       int   `json:"trees"`
		Objects     int64 `json:"objects"`
		LogicalSize int64 `json:"logicalSize"`
		StoredSize  int64 `json:"storedSize"`
		DiskUsage   int64 `json:"diskUsage"`
	}
}

// measure sums each language's processes (the given pids and their
// descendants).
func measure(cfg string, langs []*lang, pids map[string][]int, per int) ([]memRow, error) {
	children := childMap()
	all := memRow{config: cfg, lang: "all"}
	allFiles := map[[3]uint64]int64{}
	var rows []memRow
	for _, lg := range langs {
		r := memRow{config: cfg, lang: lg.name, containers: per}
		files := map[[3]uint64]int64{}
		for _, root := range pids[lg.name] {
			for _, pid := range descendants(root, children) {
				pss, anon, err := smapsRollup(pid)
				if err != nil {
					return nil, fmt.Errorf("%s %s pid %d: %w", cfg, lg.name, pid, err)
				}
				r.procs++
				r.pss += pss
				r.anon += anon
				mappedFiles(pid, files)
			}
		}
		for k, v := range files {
			r.file += v
			allFiles[k] = v
		}
		rows = append(rows, r)
		all.containers += r.containers
		all.procs += r.procs
		all.pss += r.pss
		all.anon += r.anon
		fmt.Printf("  %-8s %-8s %2d procs  PSS %7.1f MiB  anon %7.1f MiB  mapped files' cache %7.1f MiB  total %7.1f MiB\n",
			cfg, lg.name, r.procs, mib(r.pss), mib(r.anon), mib(r.file), mib(r.total()))
	}
	for _, v := range allFiles {
		all.file += v
	}
	fmt.Printf("  %-8s %-8s %2d procs  PSS %7.1f MiB  anon %7.1f MiB  mapped files' cache %7.1f MiB  total %7.1f MiB\n",
		cfg, "all", all.procs, mib(all.pss), mib(all.anon), mib(all.file), mib(all.total()))
	return append(rows, all), nil
}

// childMap maps each pid to its children.
func childMap() map[int][]int {
	m := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 2 {
			ppid, _ := strconv.Atoi(f[1])
			m[ppid] = append(m[ppid], pid)
		}
	}
	return m
}

func descendants(root int, children map[int][]int) []int {
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// smapsRollup returns a process's PSS and the anon+shmem part of it.
func smapsRollup(pid int) (pss, anon int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(fs[1], 10, 64)
		switch fs[0] {
		case "Pss:":
			pss = v << 10
		case "Pss_Anon:", "Pss_Shmem:":
			anon += v << 10
		}
	}
	return pss, anon, sc.Err()
}

// mappedFiles adds the page-cache residency of every regular file pid has
// mapped, keyed by (dev, ino) so a file is counted once.
func mappedFiles(pid int, files map[[3]uint64]int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return
	}
	seen := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 || f[4] == "0" || !strings.HasPrefix(f[5], "/") {
			continue
		}
		key := f[3] + " " + f[4]
		if seen[key] {
			continue
		}
		seen[key] = true
		// map_files opens the mapped file itself, whatever mount
		// namespace or overlay it was reached through.
		// Its names are the range without leading zeros.
		lo, hi, _ := strings.Cut(f[0], "-")
		a, _ := strconv.ParseUint(lo, 16, 64)
		z, _ := strconv.ParseUint(hi, 16, 64)
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/map_files/%x-%x", pid, a, z), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		// Keyed by the file's identity on its real filesystem. Through an
		// overlay, maps and fstat show the overlay's device (one per
		// container) with the lower file's inode number: such files are
		// keyed by inode and size, so the containers sharing a store
		// object count it once.
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
			k := [3]uint64{st.Dev, st.Ino, 0}
			if unix.Major(st.Dev) == 0 {
				k = [3]uint64{0, st.Ino, uint64(st.Size)}
			}
			if _, ok := files[k]; !ok {
				files[k] = residentBytes(fd, st.Size)
			}
		}
		unix.Close(fd)
	}
}

// residentBytes counts a file's pages in the page cache (mincore).
func residentBytes(fd int, size int64) int64 {
	if size == 0 {
		return 0
	}
	m, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return 0
	}
	defer unix.Munmap(m)
	ps := os.Getpagesize()
	vec := make([]byte, (len(m)+ps-1)/ps)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		return 0
	}
	var n int64
	for _, v := range vec {
		if v&1 != 0 {
			n++
		}
	}
	return n * int64(ps)
}

// evictTree drops the clean page cache of every regular file below dir.
func evictTree(dir string) {
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			evict(p)
		}
		return nil
	})
}

func evict(p string) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return
	}
	unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED)
	unix.Close(fd)
}

// evictHostFiles drops the host originals of the images' files.
func evictHostFiles(langs []*lang, dir string) {
	for _, l := range langs {
		tmpl := filepath.Join(dir, "images", l.name)
		filepath.Walk(tmpl, func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				evict(strings.TrimPrefix(p, tmpl))
				evict(p)
			}
			return nil
		})
	}
}

// writeMemRows writes rows as results/name (CSV).
func writeMemRows(results, name string, rows []memRow) error {
	if err := os.MkdirAll(results, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(results, name))
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"config", "lang", "containers", "processes", "pss_kib", "anon_shmem_pss_kib", "mapped_file_cache_kib", "total_kib"})
	for _, r := range rows {
		w.Write([]string{r.config, r.lang, strconv.Itoa(r.containers), strconv.Itoa(r.procs),
			kib(r.pss), kib(r.anon), kib(r.file), kib(r.total())})
	}
	w.Flush()
	return errors.Join(w.Error(), f.Close())
}

// writeMemory writes results/memory.csv, results/memory-store.csv and the
// charts, and prints the ratios against the targets.
func writeMemory(results string, rows []memRow, sf storeFigures, configs []string) error {
	if err := writeMemRows(results, "memory.csv", rows); err != nil {
		return err
	}
	totals := map[string]int64{}
	for _, r := range rows {
		if r.lang == "all" {
			totals[r.config] = r.total()
		}
	}
	fmt.Println("  memory totals (anon+shmem PSS + mapped files' page cache, each file once):")
	for _, c := range configs {
		fmt.Printf("    %-8s %8.1f MiB\n", c, mib(totals[c]))
	}
	if fre, ok := totals["fre-runc"]; ok && totals["host"] > 0 {
		fmt.Printf("  fre-runc / host = %.3fx (target <= 1.02x)\n", float64(fre)/float64(totals["host"]))
		if totals["runc"] > 0 {
			fmt.Printf("  fre-runc / runc = %.3fx (target <= 0.80x)\n", float64(fre)/float64(totals["runc"]))
		}
	}
	if sf.df.StoredSize > 0 {
		var distinct int64
		var names []string
		for n, s := range sf.imageSize {
			distinct += s
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Printf("  store: %.1f MiB stored for the %d images' %.1f MiB unpacked = %.3fx (target <= 0.4x); %d trees\n",
			mib(sf.df.StoredSize), len(names), mib(distinct), float64(sf.df.StoredSize)/float64(distinct), sf.df.Trees)
		fmt.Printf("  store, per copy: %.3fx of the %.1f MiB of unpacked bundles (%d images x %d copies)\n",
			float64(sf.df.StoredSize)/float64(sf.unpacked), mib(sf.unpacked), len(names), sf.copies)
		g, err := os.Create(filepath.Join(results, "memory-store.csv"))
		if err != nil {
			return err
		}
		w := csv.NewWriter(g)
		w.Write([]string{"image", "unpacked_kib", "import_first_ms", "import_copy_ms"})
		for _, n := range names {
			w.Write([]string{n, kib(sf.imageSize[n]), fmt.Sprintf("%.1f", msOf(sf.importFirst[n])), fmt.Sprintf("%.1f", msOf(sf.importCopy[n]))})
		}
		w.Write([]string{"all-bundles", kib(sf.unpacked), "", ""})
		w.Write([]string{"distinct-images", kib(distinct), "", ""})
		w.Write([]string{"store-stored", kib(sf.df.StoredSize), "", ""})
		w.Write([]string{"store-disk", kib(sf.df.DiskUsage), "", ""})
		w.Flush()
		if err := errors.Join(w.Error(), g.Close()); err != nil {
			return err
		}
	}
	return plotMemory(results, rows, sf, configs)
}

func kib(n int64) string { return strconv.FormatInt(n>>10, 10) }
