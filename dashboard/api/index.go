package api

import (
	"math"
	"slices"
	"strings"

	"livedash/dashboard/store"
)

// index is the in-memory column store behind /latest, /series and /query.
//
// Per topic it keeps a ring of the last capFrames frames (time and seq), and
// per series a value column aligned with its topic's ring: slot a%L holds the
// series' value in the topic's a-th frame, NaN when the frame did not carry
// it. Aligning columns to the topic timeline stores 8 bytes per point instead
// of 24 and lets a query compute each frame's bucket once for all the
// topic's series. Memory: (16·topics + 8·series)·capFrames bytes at most,
// e.g. 300 series × 7200 frames ≈ 17 MiB; rings start small and double.
//
// index is not safe for concurrent use; API guards it with mu.
type index struct {
	capFrames int // frames kept per topic
	maxSeries int // distinct series kept; the excess is dropped and counted

	topics     map[string]*topicIndex
	topicNames []string // sorted
	nseries    int
	dropped    uint64 // samples refused because maxSeries distinct series are held

	head store.ID // newest frame applied
	// loadedFromMs: memory holds every retained frame with ts ≥ this (per
	// topic, until the topic's ring evicts). MinInt64 = everything the store
	// held at Load.
	loadedFromMs int64

	kb    []byte              // key scratch
	keys  []string            // label-name scratch
	ident []labelPair         // a frame's source, scratch
	names map[string]struct{} // a frame's metric names, scratch
}

type labelPair struct{ name, value string }

type topicIndex struct {
	name       string
	ts         []int64  // ring, len L ≤ capFrames
	seq        []uint64 // ring, same slots
	base, end  uint64   // absolute frame numbers [base, end) are held
	evicted    bool     // the ring has overwritten frames
	series     []*seriesIndex
	byKey      map[string]*seriesIndex
	lastTS     int64
	intervalMs int64 // observed ts difference of the last two frames
	latestSeq  uint64
	latestTS   int64
	// gen counts the changes of the topic's newest values: /latest encodes
	// the topic again only when it moved (latestCache).
	gen    uint64
	cached *topicLatest // the topic's /latest part as of some gen; API.buildMu guards it
}

type seriesIndex struct {
	key       string // name{k="v",…}
	name      string
	labels    map[string]string
	unit      string
	topic     string
	desc      []byte // {"name":…,"labels":…,"topic":…,"unit":…}
	keyJSON   []byte // key as a JSON string
	vals      []float64
	first     uint64 // absolute frame number of the first value
	last      uint64 // absolute frame number of the newest value
	firstSeen int64  // Unix ms
	lastSeen  int64
	// The newest value (its time is lastSeen), and whether it is current:
	// see apply.
	value   float64
	current bool
}

func newIndex(capFrames, maxSeries int) *index {
	return &index{capFrames: capFrames, maxSeries: maxSeries, topics: map[string]*topicIndex{}, loadedFromMs: math.MinInt64,
		names: map[string]struct{}{}}
}

// apply adds one frame. Frames must come in seq order.
//
// It also keeps every series' newest value and whether it is current, for
// /latest. Several sources may share a topic — the targets of one
// collector, the nodes sharing a store, pushers — each in frames of its
// own, so a frame replaces only its own source's values. A frame's source
// is given by the source labels (sourceLabels) that all its samples carry
// with one value: target="a" for a scrape or probe target's frame,
// command="c" for an exec command's, node="n1" for a node's. Such a frame
// replaces every series of its source — one that carries those pairs: a
// probe that went down reports http_up 0 and no status code, so its old
// status code is no longer current, while other targets' values stay. A
// frame without a source (a host collector's, most pushes) replaces the
// series of the metric names it carries that have no source label either:
// an interface that is gone drops out of network_*, and a push of
// queue_depth leaves jobs_running, pushed before, current (as a Prometheus
// Pushgateway's POST does). A frame without samples replaces nothing.
func (x *index) apply(id store.ID, ts int64, topic string, samples []store.Sample) {
	if id.Seq <= x.head.Seq && x.head.Epoch == id.Epoch {
		return // already applied (Load's seam with live commits)
	}
	x.head = id
	t := x.topics[topic]
	if t == nil {
		t = &topicIndex{name: topic, byKey: map[string]*seriesIndex{}}
		x.topics[topic] = t
		x.topicNames = insertSorted(x.topicNames, topic)
	}
	if id.Seq > t.latestSeq {
		t.latestSeq, t.latestTS = id.Seq, ts
	}
	t.gen++
	if t.lastTS != 0 {
		t.intervalMs = ts - t.lastTS
	}
	t.lastTS = ts

	L := uint64(len(t.ts))
	if t.end-t.base == L {
		if int(L) < x.capFrames {
			t.grow(min(max(2*int(L), 64), x.capFrames))
			L = uint64(len(t.ts))
		} else {
			t.base++
			t.evicted = true
		}
	}
	f := t.end
	slot := f % L
	t.ts[slot], t.seq[slot] = ts, id.Seq
	t.end++

	x.ident = x.ident[:0]
	identKnown := false // x.ident holds the common pairs of the samples so far
	for i := range samples {
		sm := &samples[i]
		if math.IsNaN(sm.Value) || math.IsInf(sm.Value, 0) {
			continue // not on the wire either (ring's encoder drops them)
		}
		if !identKnown {
			for _, k := range sourceLabels {
				if v, ok := sm.Labels[k]; ok {
					x.ident = append(x.ident, labelPair{k, v})
				}
			}
			identKnown = true
			clear(x.names)
		} else if len(x.ident) > 0 {
			x.ident = slices.DeleteFunc(x.ident, func(p labelPair) bool {
				v, ok := sm.Labels[p.name]
				return !ok || v != p.value
			})
		}
		x.names[sm.Name] = struct{}{}
		x.kb, x.keys = appendSeriesKey(x.kb[:0], sm.Name, sm.Labels, x.keys)
		s := t.byKey[string(x.kb)]
		if s == nil {
			if x.nseries >= x.maxSeries {
				x.dropped++
				continue
			}
			s = newSeries(string(x.kb), sm.Name, sm.Labels, topic, len(t.ts), f, ts)
			t.byKey[s.key] = s
			j, _ := slices.BinarySearchFunc(t.series, s.key, func(a *seriesIndex, k string) int { return strings.Compare(a.key, k) })
			t.series = slices.Insert(t.series, j, s)
			x.nseries++
		}
		s.vals[slot] = sm.Value
		s.last, s.lastSeen = f, ts
		s.value, s.current = sm.Value, true
	}
	for _, s := range t.series {
		if s.last != f {
			s.vals[slot] = math.NaN()
			if s.current && identKnown && x.replaces(s) {
				s.current = false // its source reported again, without it
			}
		}
	}
}

// sourceLabels are the labels that say which source a sample comes from:
// livedash's own (target, command, node) and Prometheus' (instance, job).
var sourceLabels = []string{"target", "command", "node", "instance", "job"}

// replaces reports whether the frame just applied, whose source is x.ident
// (and, without one, whose metric names are x.names), replaces s.
func (x *index) replaces(s *seriesIndex) bool {
	if len(x.ident) > 0 {
		return hasPairs(s.labels, x.ident)
	}
	if _, ok := x.names[s.name]; !ok {
		return false
	}
	for _, k := range sourceLabels {
		if _, ok := s.labels[k]; ok {
			return false
		}
	}
	return true
}

// hasPairs reports whether labels hold every pair of ps.
func hasPairs(labels map[string]string, ps []labelPair) bool {
	for _, p := range ps {
		if v, ok := labels[p.name]; !ok || v != p.value {
			return false
		}
	}
	return true
}

// grow re-lays the ring into n slots.
func (t *topicIndex) grow(n int) {
	oldL := uint64(len(t.ts))
	nts, nseq := make([]int64, n), make([]uint64, n)
	newL := uint64(n)
	for a := t.base; a < t.end; a++ {
		nts[a%newL], nseq[a%newL] = t.ts[a%oldL], t.seq[a%oldL]
	}
	t.ts, t.seq = nts, nseq
	for _, s := range t.series {
		nv := make([]float64, n)
		for a := max(t.base, s.first); a < t.end; a++ {
			nv[a%newL] = s.vals[a%oldL]
		}
		s.vals = nv
	}
}

func newSeries(key, name string, labels map[string]string, topic string, n int, first uint64, ts int64) *seriesIndex {
	s := &seriesIndex{key: key, name: name, labels: maps(labels), unit: unitOf(name), topic: topic,
		vals: make([]float64, n), first: first, last: first, firstSeen: ts, lastSeen: ts}
	s.desc, s.keyJSON = seriesDesc(s.name, s.labels, s.topic, s.unit), appendString(nil, key)
	return s
}

func seriesDesc(name string, labels map[string]string, topic, unit string) []byte {
	b := append([]byte(nil), `{"name":`...)
	b = appendString(b, name)
	b = append(b, `,"labels":`...)
	b = appendLabels(b, labels)
	b = append(b, `,"topic":`...)
	b = appendString(b, topic)
	b = append(b, `,"unit":`...)
	b = appendString(b, unit)
	return append(b, '}')
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// coveredFromMs is the time from which memory holds all of t's frames.
func (x *index) coveredFromMs(t *topicIndex) int64 {
	if t.evicted && t.end > t.base {
		return t.ts[t.base%uint64(len(t.ts))]
	}
	return x.loadedFromMs
}

// search returns the first absolute frame number in [lo, hi) whose ts ≥ ms
// (hi if none). ts follows seq except around wall-clock jumps, where the
// answer is off by at most the jump; queries re-check every ts they visit.
func (t *topicIndex) search(lo, hi uint64, ms int64) uint64 {
	L := uint64(len(t.ts))
	for lo < hi {
		mid := lo + (hi-lo)/2
		if t.ts[mid%L] < ms {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// unitOf derives a display unit from a Prometheus-style name suffix:
// _seconds, _bytes, _ratio, _total (count), and
// <x>_per_second → "<unit of x>/s", e.g. net_received_bytes_per_second →
// "bytes/s", context_switches_per_second → "switches/s".
func unitOf(name string) string {
	if base, ok := strings.CutSuffix(name, "_per_second"); ok {
		u := unitOf(base)
		if u == "" || u == "count" {
			u = base[strings.LastIndexByte(base, '_')+1:]
			if u == "total" || u == "" {
				u = "1"
			}
			if t, ok := strings.CutSuffix(base, "_total"); ok && u == "1" {
				u = t[strings.LastIndexByte(t, '_')+1:]
			}
		}
		return u + "/s"
	}
	switch {
	case strings.HasSuffix(name, "_seconds"):
		return "seconds"
	case strings.HasSuffix(name, "_bytes"):
		return "bytes"
	case strings.HasSuffix(name, "_ratio"):
		return "ratio"
	case strings.HasSuffix(name, "_total"):
		return "count"
	}
	return ""
}

func insertSorted(s []string, v string) []string {
	i, found := slices.BinarySearch(s, v)
	if found {
		return s
	}
	return slices.Insert(s, i, v)
}
