package collectors

import "time"

// seriesKey identifies a counter within one collector. Comparable without
// allocating: a, b and c are label values (or other distinguishing parts) in
// a fixed order that the collector chooses.
type seriesKey struct{ name, a, b, c string }

type counterPoint struct {
	v    float64
	t    time.Time
	pass uint64
}

// rates turns cumulative counters into per-second rates. It is used by one
// collector goroutine at a time and is not safe for concurrent use.
//
// Rules: the first observation of a series produces no rate; a decrease
// (counter reset, or a 32-bit counter wrapping) produces no rate and restarts
// from the new value — a missing point is better than a spike. Elapsed time
// is taken from the monotonic clock reading in t, so a wall-clock jump does
// not distort rates.
type rates struct {
	prev map[seriesKey]counterPoint
	pass uint64
}

func newRates() *rates { return &rates{prev: map[seriesKey]counterPoint{}} }

// begin starts a pass; series not observed between begin and end are
// forgotten at end (a device that went away, a series a target stopped
// exposing).
func (r *rates) begin() { r.pass++ }

func (r *rates) end() {
	for k, p := range r.prev {
		if p.pass != r.pass {
			delete(r.prev, k)
		}
	}
}

// rate records v at t and returns the per-second rate since the previous
// observation of k, if there is one.
func (r *rates) rate(k seriesKey, v float64, t time.Time) (float64, bool) {
	p, ok := r.prev[k]
	r.prev[k] = counterPoint{v: v, t: t, pass: r.pass}
	if !ok || v < p.v {
		return 0, false
	}
	dt := t.Sub(p.t).Seconds()
	if dt <= 0 {
		return 0, false
	}
	return (v - p.v) / dt, true
}

// delta records v and returns the increase since the previous observation of
// k, with the same reset rules as rate.
func (r *rates) delta(k seriesKey, v float64, t time.Time) (float64, bool) {
	p, ok := r.prev[k]
	r.prev[k] = counterPoint{v: v, t: t, pass: r.pass}
	if !ok || v < p.v {
		return 0, false
	}
	return v - p.v, true
}

// labelSet caches label maps so that a series gets the same (read-only) map
// every tick instead of a new allocation. It is bounded: when it grows past
// maxLabelSets (devices churning, e.g. container veth interfaces) it starts
// over.
type labelSet struct {
	m map[[3]string]map[string]string
}

const maxLabelSets = 4096

// get returns the shared map {k1: v1[, k2: v2[, k3: v3]]}; empty keys are
// left out.
func (l *labelSet) get(k1, v1, k2, v2, k3, v3 string) map[string]string {
	key := [3]string{v1, v2, v3}
	if m, ok := l.m[key]; ok {
		return m
	}
	if l.m == nil || len(l.m) >= maxLabelSets {
		l.m = map[[3]string]map[string]string{}
	}
	m := make(map[string]string, 3)
	if k1 != "" {
		m[k1] = v1
	}
	if k2 != "" {
		m[k2] = v2
	}
	if k3 != "" {
		m[k3] = v3
	}
	l.m[key] = m
	return m
}
