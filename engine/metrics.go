package engine

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"
	"time"
)

// samples keeps the last window durations, for quantiles, and the sum
// and count of all.
type samples struct {
	ring  []time.Duration
	next  int
	full  bool
	sum   time.Duration
	count int64
}

const window = 4096

func (s *samples) add(d time.Duration) {
	if s.ring == nil {
		s.ring = make([]time.Duration, window)
	}
	s.ring[s.next] = d
	s.next = (s.next + 1) % window
	s.full = s.full || s.next == 0
	s.sum += d
	s.count++
}

func (s *samples) quantiles(qs ...float64) []time.Duration {
	n := s.next
	if s.full {
		n = window
	}
	out := make([]time.Duration, len(qs))
	if n == 0 {
		return out
	}
	v := append([]time.Duration(nil), s.ring[:n]...)
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	for i, q := range qs {
		k := int(q*float64(n)+0.5) - 1
		out[i] = v[max(0, min(n-1, k))]
	}
	return out
}

// fnMetrics are one function's counters.
type fnMetrics struct {
	mu       sync.Mutex
	cold     int64
	warm     int64
	prepared int64 // starts of a prepared instance
	codes    map[int]int64
	latency  samples // request to response, through the engine
	coldTime samples // start to listening
}

func newFnMetrics() *fnMetrics { return &fnMetrics{codes: map[int]int64{}} }

func (m *fnMetrics) coldStart(d time.Duration) {
	m.mu.Lock()
	m.coldTime.add(d)
	m.mu.Unlock()
}

func (m *fnMetrics) preparedStart() {
	m.mu.Lock()
	m.prepared++
	m.mu.Unlock()
}

func (m *fnMetrics) request(code int, cold, served bool, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.codes[code]++
	if served {
		if cold {
			m.cold++
		} else {
			m.warm++
		}
	}
	m.latency.add(d)
}

var quantiles = []float64{0.5, 0.9, 0.99}

// writeMetrics writes every function's metrics in Prometheus' text format.
func (e *Engine) writeMetrics(w io.Writer) {
	e.mu.Lock()
	names := make([]string, 0, len(e.fns))
	fns := map[string]*function{}
	for n, fn := range e.fns {
		if fn != nil {
			names = append(names, n)
			fns[n] = fn
		}
	}
	e.mu.Unlock()
	sort.Strings(names)
	type row struct {
		name string
		st   FunctionStatus
		m    *fnMetrics
	}
	rows := make([]row, len(names))
	for i, n := range names {
		rows[i] = row{n, fns[n].status(), fns[n].m}
	}
	section := func(name, typ, help string, each func(r row)) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for _, r := range rows {
			r.m.mu.Lock()
			each(r)
			r.m.mu.Unlock()
		}
	}
	rt := e.backend.Runtime()
	label := func(r row) string { return fmt.Sprintf("function=%q,runtime=%q", r.name, rt) }
	section("fre_invocations_total", "counter", "Requests answered, by HTTP status.", func(r row) {
		codes := make([]int, 0, len(r.m.codes))
		for c := range r.m.codes {
			codes = append(codes, c)
		}
		sort.Ints(codes)
		for _, c := range codes {
			fmt.Fprintf(w, "fre_invocations_total{%s,code=\"%d\"} %d\n", label(r), c, r.m.codes[c])
		}
	})
	section("fre_cold_starts_total", "counter", "Requests served by an instance started for them.", func(r row) {
		fmt.Fprintf(w, "fre_cold_starts_total{%s} %d\n", label(r), r.m.cold)
	})
	section("fre_prepared_starts_total", "counter", "Instance starts that found their container made ahead.", func(r row) {
		fmt.Fprintf(w, "fre_prepared_starts_total{%s} %d\n", label(r), r.m.prepared)
	})
	section("fre_warm_hits_total", "counter", "Requests served by an instance already running.", func(r row) {
		fmt.Fprintf(w, "fre_warm_hits_total{%s} %d\n", label(r), r.m.warm)
	})
	summary := func(name, help string, pick func(*fnMetrics) *samples) {
		section(name, "summary", help, func(r row) {
			s := pick(r.m)
			for i, q := range s.quantiles(quantiles...) {
				fmt.Fprintf(w, "%s{%s,quantile=\"%s\"} %s\n", name, label(r), strconv.FormatFloat(quantiles[i], 'f', -1, 64), secs(q))
			}
			fmt.Fprintf(w, "%s_sum{%s} %s\n%s_count{%s} %d\n", name, label(r), secs(s.sum), name, label(r), s.count)
		})
	}
	summary("fre_request_duration_seconds", "Request to response through the engine (last 4096 for quantiles).",
		func(m *fnMetrics) *samples { return &m.latency })
	summary("fre_instance_start_seconds", "An instance's start until it listens on its channel.",
		func(m *fnMetrics) *samples { return &m.coldTime })
	section("fre_instances", "gauge", "Instances by state.", func(r row) {
		for _, s := range []struct {
			state string
			n     int
		}{{"idle", r.st.Idle}, {"busy", r.st.Busy}, {"starting", r.st.Starting}} {
			fmt.Fprintf(w, "fre_instances{%s,state=%q} %d\n", label(r), s.state, s.n)
		}
	})
	section("fre_queued_requests", "gauge", "Requests waiting for an instance.", func(r row) {
		fmt.Fprintf(w, "fre_queued_requests{%s} %d\n", label(r), r.st.Waiting)
	})
}

func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'g', 6, 64) }
