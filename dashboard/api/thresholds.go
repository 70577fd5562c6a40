package api

import (
	"regexp"
	"strconv"

	"livedash/config"
)

// level is how far a value is over a threshold.
type level uint8

const (
	levelNone level = iota
	levelWarning
	levelCritical
)

func (l level) String() string {
	switch l {
	case levelWarning:
		return "warning"
	case levelCritical:
		return "critical"
	}
	return ""
}

// threshold is a config.Threshold compiled for evaluation, its levels
// resolved (per_cpu multiplied out).
type threshold struct {
	cfg                   config.Threshold
	labels, exclude       []matcher
	sumOver               map[string]bool
	warning, critical     float64
	hasWarning, hasCritic bool
}

// matcher is one anchored label matcher; a missing label is "".
type matcher struct {
	name string
	re   *regexp.Regexp
}

// compileThresholds compiles the configured thresholds; levels marked
// per_cpu are multiplied by cpus. A threshold that does not compile (the
// configuration's Validate refuses those) is left out and returned in bad.
func compileThresholds(ts []config.Threshold, cpus int) (out []*threshold, bad []config.Threshold) {
	for _, c := range ts {
		t := &threshold{cfg: c, sumOver: map[string]bool{}}
		ok := true
		compile := func(m map[string]string) []matcher {
			var ms []matcher
			for _, k := range sortedKeys(m) {
				re, err := config.AnchoredRegexp(m[k])
				if err != nil {
					ok = false
					continue
				}
				ms = append(ms, matcher{k, re})
			}
			return ms
		}
		t.labels, t.exclude = compile(c.Labels), compile(c.Exclude)
		for _, l := range c.SumOver {
			t.sumOver[l] = true
		}
		scale := 1.0
		if c.PerCPU {
			scale = float64(max(cpus, 1))
		}
		if c.Warning != nil {
			t.warning, t.hasWarning = *c.Warning*scale, true
		}
		if c.Critical != nil {
			t.critical, t.hasCritic = *c.Critical*scale, true
		}
		if !ok || (!t.hasWarning && !t.hasCritic) {
			bad = append(bad, c)
			continue
		}
		out = append(out, t)
	}
	return out, bad
}

// match reports whether a series is one the threshold watches.
func (t *threshold) match(name string, labels map[string]string) bool {
	if name != t.cfg.Series {
		return false
	}
	for _, m := range t.labels {
		if !m.re.MatchString(labels[m.name]) {
			return false
		}
	}
	for _, m := range t.exclude {
		if m.re.MatchString(labels[m.name]) {
			return false
		}
	}
	return true
}

// level says how far v is over the threshold.
func (t *threshold) level(v float64) level {
	over := func(l float64) bool {
		if t.cfg.Below {
			return v <= l
		}
		return v >= l
	}
	switch {
	case t.hasCritic && over(t.critical):
		return levelCritical
	case t.hasWarning && over(t.warning):
		return levelWarning
	}
	return levelNone
}

// alert is one value over a threshold.
type alert struct {
	t      *threshold
	level  level
	labels map[string]string // the series' labels; for a sum, those it was not summed over
	value  float64           // what was compared: the value, the sum, or the fraction
	ts     int64             // the newest frame time among the values
}

// evaluate checks t's current series against the thresholds: the level of
// each series that takes part in a value over a threshold (the highest one
// when several), and the alerts in threshold order, then series order.
// The caller holds a.mu for reading.
func (a *API) evaluate(t *topicIndex) (map[*seriesIndex]level, []alert) {
	var levels map[*seriesIndex]level
	var alerts []alert
	mark := func(l level, members ...*seriesIndex) {
		if levels == nil {
			levels = map[*seriesIndex]level{}
		}
		for _, s := range members {
			levels[s] = max(levels[s], l)
		}
	}
	var kb []byte
	var keys []string
	for _, th := range a.thresholds {
		type group struct {
			labels  map[string]string
			sum     float64
			ts      int64
			members []*seriesIndex
		}
		var groups map[string]*group
		var order []string
		for _, s := range t.series {
			if !s.current || !th.match(s.name, s.labels) {
				continue
			}
			switch {
			case th.cfg.Of != "":
				kb, keys = appendSeriesKey(kb[:0], th.cfg.Of, s.labels, keys)
				d := t.byKey[string(kb)]
				if d == nil || !d.current || d.value == 0 {
					continue // no total to take a fraction of
				}
				v := s.value / d.value
				if l := th.level(v); l != levelNone {
					mark(l, s)
					alerts = append(alerts, alert{t: th, level: l, labels: s.labels, value: v, ts: max(s.lastSeen, d.lastSeen)})
				}
			case len(th.sumOver) > 0:
				rest := make(map[string]string, len(s.labels))
				for k, v := range s.labels {
					if !th.sumOver[k] {
						rest[k] = v
					}
				}
				kb, keys = appendSeriesKey(kb[:0], s.name, rest, keys)
				if groups == nil {
					groups = map[string]*group{}
				}
				g := groups[string(kb)]
				if g == nil {
					g = &group{labels: rest}
					groups[string(kb)] = g
					order = append(order, string(kb))
				}
				g.sum += s.value
				g.ts = max(g.ts, s.lastSeen)
				g.members = append(g.members, s)
			default:
				if l := th.level(s.value); l != levelNone {
					mark(l, s)
					alerts = append(alerts, alert{t: th, level: l, labels: s.labels, value: s.value, ts: s.lastSeen})
				}
			}
		}
		for _, k := range order {
			g := groups[k]
			if l := th.level(g.sum); l != levelNone {
				mark(l, g.members...)
				alerts = append(alerts, alert{t: th, level: l, labels: g.labels, value: g.sum, ts: g.ts})
			}
		}
	}
	return levels, alerts
}

// appendAlert appends one entry of /latest's alerts:
//
//	{"topic","series","labels","value","level","warning","critical","ts"}
//
// with "sum_over" or "of" when the threshold compares a sum or a fraction;
// a level the threshold does not set is left out.
func appendAlert(b []byte, topic string, al alert) []byte {
	b = append(b, `{"topic":`...)
	b = appendString(b, topic)
	b = append(b, `,"series":`...)
	b = appendString(b, al.t.cfg.Series)
	b = append(b, `,"labels":`...)
	b = appendLabels(b, al.labels)
	if len(al.t.cfg.SumOver) > 0 {
		b = append(b, `,"sum_over":[`...)
		for i, l := range al.t.cfg.SumOver {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, l)
		}
		b = append(b, ']')
	}
	if al.t.cfg.Of != "" {
		b = append(b, `,"of":`...)
		b = appendString(b, al.t.cfg.Of)
	}
	b = append(b, `,"value":`...)
	b = appendFloat(b, al.value)
	b = append(b, `,"level":"`...)
	b = append(b, al.level.String()...)
	b = append(b, '"')
	if al.t.hasWarning {
		b = append(b, `,"warning":`...)
		b = appendFloat(b, al.t.warning)
	}
	if al.t.hasCritic {
		b = append(b, `,"critical":`...)
		b = appendFloat(b, al.t.critical)
	}
	if al.t.cfg.Below {
		b = append(b, `,"below":true`...)
	}
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, al.ts, 10)
	return append(b, '}')
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sortStrings(keys)
	return keys
}
