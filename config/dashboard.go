package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Threshold is a warning and a critical level for the series it selects.
// /api/v1/latest reports the series over a level, and the page draws the
// levels on the panels that show the series and marks a panel whose newest
// value crosses one.
//
// Which series: those named Series whose labels match Labels and do not
// match Exclude. What is compared with the levels: each series' newest
// value; with SumOver, the sum of the selected series that differ only in
// those labels (the top of a stacked chart: CPU busy is cpu_usage_ratio of
// every mode but idle, summed over mode); with Of, the value divided by the
// newest value of the series named Of with the same labels (a fraction of a
// total). PerCPU multiplies the levels by the number of CPUs of the host
// livedash runs on. Over a level means at or above it, or with Below at or
// below it (http_up below 1, a certificate's remaining seconds).
type Threshold struct {
	Series string `yaml:"series"`
	// Labels and Exclude map a label name to a regular expression (Go RE2)
	// anchored at both ends, as a Prometheus =~ matcher: a plain value
	// matches only itself, "" matches a missing label.
	Labels   map[string]string `yaml:"labels,omitempty"`
	Exclude  map[string]string `yaml:"exclude,omitempty"`
	SumOver  []string          `yaml:"sum_over,omitempty"`
	Of       string            `yaml:"of,omitempty"`
	PerCPU   bool              `yaml:"per_cpu,omitempty"`
	Below    bool              `yaml:"below,omitempty"`
	Warning  *float64          `yaml:"warning,omitempty"`
	Critical *float64          `yaml:"critical,omitempty"`
}

// Dashboard chooses the page's panels. With no panels, the page shows the
// built-in ones (BuiltinPanels) and a panel for every other topic it sees
// (HTTP probes, scraped targets, exec commands, pushed topics).
type Dashboard struct {
	// Panels, in the order shown. When set, the page shows exactly these
	// (plus the other topics when OtherTopics is true).
	Panels []Panel `yaml:"panels,omitempty"`
	// OtherTopics: also show a panel for every topic no panel names.
	// Default: true without panels, false with them.
	OtherTopics *bool `yaml:"other_topics,omitempty"`
}

// Panel is one chart of the page.
type Panel struct {
	// ID names the panel (unique, 1–64 of a-z 0-9 _ -); default: the topic.
	ID    string `yaml:"id"`
	Title string `yaml:"title,omitempty"` // default: the built-in panel's title, else the ID
	Topic string `yaml:"topic"`           // required
	// Series are the metric names shown, in this order; empty: every
	// series of the topic.
	Series []string `yaml:"series,omitempty"`
	// Include and Exclude map a label name to an anchored regular
	// expression, as Threshold's Labels and Exclude: a series is shown when
	// every Include matches and no Exclude does.
	Include map[string]string `yaml:"include,omitempty"`
	Exclude map[string]string `yaml:"exclude,omitempty"`
	// Unit of the values (PanelUnits); default: derived from the first
	// series' name, else "auto" (each series' own, from /api/v1/series).
	Unit  string `yaml:"unit,omitempty"`
	Stack bool   `yaml:"stack,omitempty"` // stack the series (their sum is the top)
	// Axes: "auto" (default: series whose scales differ by more than 10×
	// get axes or small charts of their own), "shared" (one axis) or
	// "separate" (a small chart per series).
	Axes string `yaml:"axes,omitempty"`
}

// PanelUnits are the units a panel's values can have: ratio (0–1, shown
// as %), bytes, bytes_per_second, seconds, per_second, count, celsius,
// status (up/down and HTTP status codes: small integers, never scaled),
// and auto (each series' own unit).
var PanelUnits = []string{"ratio", "bytes", "bytes_per_second", "seconds", "per_second", "count", "celsius", "status", "auto"}

// PanelAxes are the values of a panel's axes key.
var PanelAxes = []string{"auto", "shared", "separate"}

func ptr(v float64) *float64 { return &v }

// defaultThresholds are the levels livedash watches without configuration.
// CPU counts every mode but idle as busy (iowait and steal included, as
// the usual "100 − idle" alert does), summed over the modes of cpu="total".
// Memory is memory_used_bytes (total − available) as a fraction of
// memory_total_bytes. Load is load5 per CPU: steadier than load1, so a
// panel is not marked by a one-minute burst.
func defaultThresholds() []Threshold {
	return []Threshold{
		{Series: "cpu_usage_ratio", Labels: map[string]string{"cpu": "total"}, Exclude: map[string]string{"mode": "idle"},
			SumOver: []string{"mode"}, Warning: ptr(0.8), Critical: ptr(0.95)},
		{Series: "memory_used_bytes", Of: "memory_total_bytes", Warning: ptr(0.9), Critical: ptr(0.95)},
		{Series: "filesystem_used_ratio", Warning: ptr(0.85), Critical: ptr(0.95)},
		{Series: "load5", PerCPU: true, Warning: ptr(1), Critical: ptr(2)},
	}
}

// BuiltinPanels are the page's panels when the configuration names none:
// one per host collector, in this order. The page draws the memory panel's
// swap (memory_swap_*_bytes) beside it, up to the swap's total, or says
// "no swap".
func BuiltinPanels() []Panel {
	return []Panel{
		{ID: "cpu", Title: "CPU", Topic: "cpu", Series: []string{"cpu_usage_ratio"},
			Include: map[string]string{"cpu": "total"}, Exclude: map[string]string{"mode": "idle"}, Unit: "ratio", Stack: true, Axes: "shared"},
		{ID: "memory", Title: "Memory", Topic: "memory",
			Series: []string{"memory_used_bytes", "memory_buffers_bytes", "memory_cached_bytes", "memory_free_bytes"},
			Unit:   "bytes", Stack: true, Axes: "shared"},
		{ID: "load", Title: "Load average", Topic: "load", Series: []string{"load1", "load5", "load15"}, Unit: "count", Axes: "shared"},
		{ID: "disk", Title: "Disk I/O", Topic: "disk", Series: []string{"disk_read_bytes_per_second", "disk_written_bytes_per_second"},
			Unit: "bytes_per_second", Axes: "shared"},
		{ID: "filesystem", Title: "Filesystems", Topic: "filesystem", Series: []string{"filesystem_used_ratio"}, Unit: "ratio", Axes: "shared"},
		{ID: "network", Title: "Network", Topic: "network",
			Series: []string{"network_receive_bytes_per_second", "network_transmit_bytes_per_second"}, Unit: "bytes_per_second", Axes: "shared"},
		{ID: "system", Title: "System", Topic: "system",
			Series: []string{"system_context_switches_per_second", "system_interrupts_per_second", "system_forks_per_second"},
			Unit:   "per_second", Axes: "auto"},
		{ID: "self", Title: "livedash itself", Topic: "self",
			Series: []string{"self_cpu_usage_ratio", "self_memory_bytes", "self_heap_bytes"}, Unit: "auto", Axes: "separate"},
	}
}

// EffectivePanels returns the panels the page shows, defaults filled in,
// and whether it also shows the other topics.
func (d Dashboard) EffectivePanels() ([]Panel, bool) {
	if len(d.Panels) == 0 {
		return BuiltinPanels(), d.OtherTopics == nil || *d.OtherTopics
	}
	builtin := map[string]Panel{}
	for _, p := range BuiltinPanels() {
		builtin[p.ID] = p
	}
	out := make([]Panel, len(d.Panels))
	for i, p := range d.Panels {
		if p.ID == "" {
			p.ID = p.Topic
		}
		if p.Title == "" {
			if b, ok := builtin[p.ID]; ok && b.Topic == p.Topic {
				p.Title = b.Title
			} else {
				p.Title = p.ID
			}
		}
		if p.Unit == "" {
			p.Unit = "auto"
			if len(p.Series) > 0 {
				p.Unit = UnitOf(p.Series[0])
			}
		}
		if p.Axes == "" {
			p.Axes = "auto"
		}
		out[i] = p
	}
	return out, d.OtherTopics != nil && *d.OtherTopics
}

// UnitOf derives a panel unit from a metric name's suffix, as Prometheus
// names state them (_ratio, _bytes, _bytes_per_second, _seconds,
// _per_second, _celsius, _total); "auto" when the name says none.
func UnitOf(name string) string {
	switch {
	case strings.HasSuffix(name, "_bytes_per_second"):
		return "bytes_per_second"
	case strings.HasSuffix(name, "_per_second"):
		return "per_second"
	case strings.HasSuffix(name, "_ratio"):
		return "ratio"
	case strings.HasSuffix(name, "_bytes"):
		return "bytes"
	case strings.HasSuffix(name, "_seconds"):
		return "seconds"
	case strings.HasSuffix(name, "_celsius"):
		return "celsius"
	case strings.HasSuffix(name, "_total"):
		return "count"
	}
	return "auto"
}

var (
	metricNameRe = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRe  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	panelIDRe    = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)
)

// maxTopicBytes is the longest topic a store accepts.
const maxTopicBytes = 255

// AnchoredRegexp compiles a label matcher's expression anchored at both
// ends, as Prometheus does for =~.
func AnchoredRegexp(expr string) (*regexp.Regexp, error) {
	return regexp.Compile("^(?:" + expr + ")$")
}

func checkMatchers(add func(string, any, string), path string, m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !labelNameRe.MatchString(k) {
			add(path+"."+k, nil, "is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)")
			continue
		}
		if _, err := AnchoredRegexp(m[k]); err != nil {
			add(path+"."+k, m[k], "not a valid regular expression (Go RE2 syntax)")
		}
	}
}

// validateThresholds reports every problem of ts through add.
func validateThresholds(ts []Threshold, add func(string, any, string)) {
	for i, t := range ts {
		p := fmt.Sprintf("thresholds[%d]", i)
		if !metricNameRe.MatchString(t.Series) {
			add(p+".series", t.Series, "must be a metric name such as cpu_usage_ratio")
		}
		checkMatchers(add, p+".labels", t.Labels)
		checkMatchers(add, p+".exclude", t.Exclude)
		for j, l := range t.SumOver {
			if !labelNameRe.MatchString(l) {
				add(fmt.Sprintf("%s.sum_over[%d]", p, j), l, "is not a label name")
			}
		}
		if t.Of != "" {
			if !metricNameRe.MatchString(t.Of) {
				add(p+".of", t.Of, "must be a metric name such as memory_total_bytes")
			}
			if len(t.SumOver) > 0 {
				add(p+".of", t.Of, "cannot be combined with sum_over")
			}
		}
		switch {
		case t.Warning == nil && t.Critical == nil:
			add(p, nil, "needs a warning or a critical level, or both")
		case t.Warning != nil && t.Critical != nil && !t.Below && *t.Warning > *t.Critical:
			add(p+".warning", *t.Warning, fmt.Sprintf("must not be above critical (%v); with below: true, levels go the other way", *t.Critical))
		case t.Warning != nil && t.Critical != nil && t.Below && *t.Warning < *t.Critical:
			add(p+".warning", *t.Warning, fmt.Sprintf("must not be below critical (%v) when below is true", *t.Critical))
		}
	}
}

// validate reports every problem of d through add.
func (d Dashboard) validate(add func(string, any, string)) {
	ids := map[string]int{}
	for i, pn := range d.Panels {
		p := fmt.Sprintf("dashboard.panels[%d]", i)
		switch {
		case pn.Topic == "":
			add(p+".topic", nil, "is required: the topic whose series the panel shows")
		case len(pn.Topic) > maxTopicBytes:
			add(p+".topic", pn.Topic[:40]+"…", fmt.Sprintf("is longer than %d bytes", maxTopicBytes))
		}
		id := pn.ID
		if id == "" {
			id = pn.Topic
		}
		if pn.ID != "" && !panelIDRe.MatchString(pn.ID) {
			add(p+".id", pn.ID, "must be 1 to 64 of a-z 0-9 _ -")
		} else if j, dup := ids[id]; dup && id != "" {
			add(p+".id", id, fmt.Sprintf("is the id of dashboard.panels[%d] too (the id defaults to the topic); give each panel its own", j))
		}
		ids[id] = i
		for j, s := range pn.Series {
			if !metricNameRe.MatchString(s) {
				add(fmt.Sprintf("%s.series[%d]", p, j), s, "must be a metric name such as cpu_usage_ratio")
			}
		}
		checkMatchers(add, p+".include", pn.Include)
		checkMatchers(add, p+".exclude", pn.Exclude)
		if pn.Unit != "" && !slices.Contains(PanelUnits, pn.Unit) {
			add(p+".unit", pn.Unit, "must be one of "+strings.Join(PanelUnits, ", "))
		}
		if pn.Axes != "" && !slices.Contains(PanelAxes, pn.Axes) {
			add(p+".axes", pn.Axes, "must be one of "+strings.Join(PanelAxes, ", "))
		}
	}
}
