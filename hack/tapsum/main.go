// Command tapsum summarises the runtime-tools validation runs that
// hack/conformance.sh leaves in a directory: per runtime, per program TAP
// counts, the tests where runtimes differ, the parity FRE's issue asks for,
// and which linux_ns_* results change under the host netns policy.
//
// Layout read: DIR/<runtime>/<program>.tap (stdout), .rc (exit code), .time.
package main

import (
	"bufio"
	"encoding/csv"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// parityPrograms are the validation programs in which fre-runc must pass at
// least what runc passes (issue 2, "Shows done"); linux_ns_* is a prefix.
var parityPrograms = []string{
	"create", "start", "state", "kill", "delete", "hostname", "mounts", "process",
	"process_user", "process_rlimits", "pidfile", "root_readonly_true",
	"linux_ns_*", "linux_sysctl",
}

// result is one TAP test line.
type result struct {
	num  int
	ok   bool
	skip bool
	desc string
}

// program is one validation program's run.
type program struct {
	name    string
	rc      int
	seconds string
	results []result
}

func (p *program) counts() (ok, notOK, skip int) {
	for _, r := range p.results {
		switch {
		case r.skip:
			skip++
		case r.ok:
			ok++
		default:
			notOK++
		}
	}
	return
}

// status is the program's verdict: PASS when it exited 0 and every test
// passed (or was skipped), else why not.
func (p *program) status() string {
	if p == nil {
		return "-"
	}
	ok, notOK, _ := p.counts()
	switch {
	case p.rc == 124 || p.rc == 137:
		return "TIMEOUT"
	case len(p.results) == 0 && p.rc != 0:
		return fmt.Sprintf("EXIT %d", p.rc)
	case len(p.results) == 0:
		return "NO TESTS"
	case notOK > 0:
		return "FAIL"
	case p.rc != 0:
		return fmt.Sprintf("EXIT %d", p.rc)
	case ok == 0:
		return "SKIP"
	}
	return "PASS"
}

func (p *program) cell() string {
	if p == nil {
		return "-"
	}
	ok, notOK, skip := p.counts()
	s := fmt.Sprintf("%d/%d", ok, ok+notOK)
	if skip > 0 {
		s += fmt.Sprintf(" +%ds", skip)
	}
	if st := p.status(); st != "PASS" {
		s += " " + st
	}
	return s
}

var tapLine = regexp.MustCompile(`^(not ok|ok)\b\s*(\d+)?\s*(?:-\s*)?(.*)$`)

// parseTAP reads top-level TAP lines; YAML diagnostics are indented and the
// nested runtimetest output inside them is quoted, so neither matches.
func parseTAP(path string) ([]result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rs []result
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		m := tapLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		r := result{ok: m[1] == "ok", desc: strings.TrimSpace(m[3])}
		r.num, _ = strconv.Atoi(m[2])
		if r.num == 0 {
			r.num = len(rs) + 1
		}
		if i := strings.Index(r.desc, "# SKIP"); i >= 0 || strings.HasPrefix(r.desc, "# skip") {
			r.skip = true
			if i >= 0 {
				r.desc = strings.TrimSpace(r.desc[i+len("# SKIP"):]) + " (skip)"
			}
		}
		rs = append(rs, r)
	}
	return rs, sc.Err()
}

func loadRuntime(dir string) (map[string]*program, error) {
	taps, err := filepath.Glob(filepath.Join(dir, "*.tap"))
	if err != nil {
		return nil, err
	}
	if len(taps) == 0 {
		return nil, fmt.Errorf("tapsum: no .tap files in %s", dir)
	}
	progs := map[string]*program{}
	for _, tap := range taps {
		name := strings.TrimSuffix(filepath.Base(tap), ".tap")
		p := &program{name: name}
		if p.results, err = parseTAP(tap); err != nil {
			return nil, err
		}
		base := strings.TrimSuffix(tap, ".tap")
		if b, err := os.ReadFile(base + ".rc"); err == nil {
			p.rc, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		if b, err := os.ReadFile(base + ".time"); err == nil {
			p.seconds = strings.TrimSpace(string(b))
		}
		progs[name] = p
	}
	return progs, nil
}

func main() {
	dir := flag.String("dir", "_output/conformance", "directory with one subdirectory per runtime")
	host := flag.String("host", "", "runtime run under the host netns policy, compared with the 'new' run (fre-new)")
	csvPath := flag.String("csv", "", "also write per-program counts as CSV here")
	skipped := flag.String("skipped", "", "a runtime that was skipped, and why (printed)")
	maxDiff := flag.Int("max-diff", 8, "test lines listed per differing program")
	flag.Parse()
	runtimes := flag.Args()
	if len(runtimes) == 0 {
		fmt.Fprintln(os.Stderr, "usage: tapsum -dir DIR RUNTIME...")
		os.Exit(2)
	}

	runs := map[string]map[string]*program{}
	names := map[string]bool{}
	for _, rt := range runtimes {
		progs, err := loadRuntime(filepath.Join(*dir, rt))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		runs[rt] = progs
		for n := range progs {
			names[n] = true
		}
	}
	var sorted []string
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)

	fmt.Println("== OCI runtime-tools v0.9.0 validation: passed/run per program (+skipped)")
	if *skipped != "" {
		fmt.Printf("SKIPPED %s\n", *skipped)
	}
	fmt.Printf("%-34s", "program")
	for _, rt := range runtimes {
		fmt.Printf(" %-22s", rt)
	}
	fmt.Println()
	for _, n := range sorted {
		fmt.Printf("%-34s", n)
		for _, rt := range runtimes {
			fmt.Printf(" %-22s", runs[rt][n].cell())
		}
		fmt.Println()
	}
	fmt.Println()
	for _, rt := range runtimes {
		var ok, notOK, skip, passProgs int
		for _, p := range runs[rt] {
			o, no, s := p.counts()
			ok, notOK, skip = ok+o, notOK+no, skip+s
			if p.status() == "PASS" {
				passProgs++
			}
		}
		fmt.Printf("TOTAL %-10s programs passed %d/%d; TAP tests ok %d, not ok %d, skipped %d\n",
			rt, passProgs, len(runs[rt]), ok, notOK, skip)
	}

	if len(runtimes) >= 2 {
		base := runtimes[0]
		for _, other := range runtimes[1:] {
			fmt.Printf("\n== differences %s vs %s\n", base, other)
			printDiffs(sorted, runs[base], runs[other], base, other, *maxDiff)
			if strings.HasPrefix(other, "fre") {
				printParity(runs[base], runs[other], base, other)
			}
		}
	}

	if *host != "" {
		hostRuns, err := loadRuntime(filepath.Join(*dir, *host))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		newName := "fre-new"
		if runs[newName] == nil {
			newName = runtimes[len(runtimes)-1]
		}
		var ns []string
		for n := range hostRuns {
			ns = append(ns, n)
		}
		sort.Strings(ns)
		fmt.Printf("\n== netns policy: %s vs %s (linux_ns_*)\n", newName, *host)
		for _, n := range ns {
			fmt.Printf("%-34s %-22s %-22s\n", n, runs[newName][n].cell(), hostRuns[n].cell())
		}
		printDiffs(ns, runs[newName], hostRuns, newName, *host, *maxDiff)
	}

	if *csvPath != "" {
		if err := writeCSV(*csvPath, runtimes, sorted, runs); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

// printDiffs lists the programs whose verdict or test lines differ, with the
// differing lines (by test number).
func printDiffs(names []string, a, b map[string]*program, an, bn string, max int) {
	differ := 0
	for _, n := range names {
		pa, pb := a[n], b[n]
		lines := diffLines(pa, pb)
		if len(lines) == 0 && pa.status() == pb.status() {
			continue
		}
		differ++
		fmt.Printf("%-34s %s: %-22s %s: %s\n", n, an, pa.cell(), bn, pb.cell())
		for i, l := range lines {
			if i == max {
				fmt.Printf("    ... and %d more\n", len(lines)-max)
				break
			}
			fmt.Println("    " + l)
		}
	}
	if differ == 0 {
		fmt.Println("(none)")
	}
}

func diffLines(a, b *program) []string {
	index := func(p *program) map[int]result {
		m := map[int]result{}
		if p != nil {
			for _, r := range p.results {
				m[r.num] = r
			}
		}
		return m
	}
	ia, ib := index(a), index(b)
	nums := map[int]bool{}
	for n := range ia {
		nums[n] = true
	}
	for n := range ib {
		nums[n] = true
	}
	var sorted []int
	for n := range nums {
		sorted = append(sorted, n)
	}
	sort.Ints(sorted)
	word := func(r result, ok bool) string {
		switch {
		case !ok:
			return "missing"
		case r.skip:
			return "skip"
		case r.ok:
			return "ok"
		}
		return "not ok"
	}
	var out []string
	for _, n := range sorted {
		ra, oka := ia[n]
		rb, okb := ib[n]
		wa, wb := word(ra, oka), word(rb, okb)
		if wa == wb {
			continue
		}
		desc := ra.desc
		if desc == "" {
			desc = rb.desc
		}
		out = append(out, fmt.Sprintf("#%-4d %-7s -> %-7s %s", n, wa, wb, desc))
	}
	return out
}

// printParity checks issue 2's requirement: in the listed programs, every
// test the base runtime passes, fre passes too.
func printParity(base, fre map[string]*program, bn, fn string) {
	fmt.Printf("\n== parity (%s passes at least what %s passes)\n", fn, bn)
	all := true
	for _, pat := range parityPrograms {
		var matched []string
		for n := range base {
			if ok, _ := filepath.Match(pat, n); ok {
				matched = append(matched, n)
			}
		}
		sort.Strings(matched)
		for _, n := range matched {
			missing := 0
			fr := map[int]result{}
			if fre[n] != nil {
				for _, r := range fre[n].results {
					fr[r.num] = r
				}
			}
			for _, r := range base[n].results {
				if r.ok && !r.skip {
					if f, ok := fr[r.num]; !ok || !f.ok {
						missing++
					}
				}
			}
			verdict := "PASS"
			if missing > 0 {
				verdict = fmt.Sprintf("MISS (%d test(s) %s passes fail)", missing, bn)
				all = false
			}
			fmt.Printf("%-34s %s\n", n, verdict)
		}
	}
	if all {
		fmt.Println("parity: PASS")
	} else {
		fmt.Println("parity: MISS")
	}
}

func writeCSV(path string, runtimes, names []string, runs map[string]map[string]*program) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"runtime", "program", "status", "ok", "not_ok", "skip", "exit", "seconds"})
	for _, rt := range runtimes {
		for _, n := range names {
			p := runs[rt][n]
			if p == nil {
				continue
			}
			ok, notOK, skip := p.counts()
			w.Write([]string{rt, n, p.status(), strconv.Itoa(ok), strconv.Itoa(notOK),
				strconv.Itoa(skip), strconv.Itoa(p.rc), p.seconds})
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
