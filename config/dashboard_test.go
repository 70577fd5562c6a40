package config

import (
	"strings"
	"testing"
)

// Thresholds and panels load from the file, and every mistake in them is
// reported with its key path and line.
func TestThresholdsAndPanelsProblems(t *testing.T) {
	path := writeFile(t, `thresholds:
  - series: "cpu usage"
    labels: {"1x": a, mode: "(idle"}
    sum_over: [mode, "a-b"]
    warning: 0.9
    critical: 0.8
  - series: load1
    below: true
    warning: 1
    critical: 2
  - series: mem
    of: "x y"
    sum_over: [a]
    critical: 1
  - series: nothing
dashboard:
  panels:
    - {topic: cpu}
    - {topic: cpu, series: ["a b"], include: {cpu: "[" }, unit: furlongs, axes: diagonal}
    - {id: CPU, topic: memory}
    - {id: x}
`)
	cfg, o, err := LoadWithOrigin(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := o.Locate(cfg.Validate()).Error()
	for _, want := range []string{
		`thresholds[0].series = "cpu usage": must be a metric name such as cpu_usage_ratio (line 2)`,
		`thresholds[0].labels.1x: is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)`,
		`thresholds[0].labels.mode = "(idle": not a valid regular expression (Go RE2 syntax)`,
		`thresholds[0].sum_over[1] = "a-b": is not a label name (line 4)`,
		`thresholds[0].warning = "0.9": must not be above critical (0.8)`,
		`thresholds[1].warning = "1": must not be below critical (2) when below is true (line 9)`,
		`thresholds[2].of = "x y": must be a metric name such as memory_total_bytes (line 12)`,
		`thresholds[2].of = "x y": cannot be combined with sum_over (line 12)`,
		`thresholds[3]: needs a warning or a critical level, or both (line 15)`,
		`dashboard.panels[1].id = "cpu": is the id of dashboard.panels[0] too`,
		`dashboard.panels[1].series[0] = "a b": must be a metric name`,
		`dashboard.panels[1].include.cpu = "[": not a valid regular expression`,
		`dashboard.panels[1].unit = "furlongs": must be one of ratio, bytes, bytes_per_second, seconds, per_second, count, celsius, status, auto (line 19)`,
		`dashboard.panels[1].axes = "diagonal": must be one of auto, shared, separate (line 19)`,
		`dashboard.panels[2].id = "CPU": must be 1 to 64 of a-z 0-9 _ - (line 20)`,
		`dashboard.panels[3].topic: is required`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q", want)
		}
	}
	if t.Failed() {
		t.Logf("problems:\n%s", got)
	}
}

// Without configuration the built-in panels and the default thresholds
// hold; a dashboard section shows exactly its panels, defaults filled in.
func TestEffectivePanels(t *testing.T) {
	cfg := mustLoad(t, "")
	panels, others := cfg.Dashboard.EffectivePanels()
	var ids []string
	for _, p := range panels {
		ids = append(ids, p.ID)
	}
	if strings.Join(ids, ",") != "cpu,memory,load,disk,filesystem,network,system,self" || !others {
		t.Fatalf("built-in panels %v, other topics %v", ids, others)
	}
	if len(cfg.Thresholds) != 4 || cfg.Thresholds[0].Series != "cpu_usage_ratio" {
		t.Fatalf("default thresholds %+v", cfg.Thresholds)
	}
	cfg = mustLoad(t, `dashboard:
  panels:
    - {topic: load}
    - {id: jobs, topic: app, series: [jobs_running_total]}
    - {id: q, topic: app, series: [queue_depth]}
    - {id: all, topic: app}
thresholds: []
`)
	panels, others = cfg.Dashboard.EffectivePanels()
	if others || len(panels) != 4 || len(cfg.Thresholds) != 0 {
		t.Fatalf("panels %+v others %v thresholds %v", panels, others, cfg.Thresholds)
	}
	for i, want := range []struct{ id, title, unit, axes string }{
		{"load", "Load average", "auto", "auto"},
		{"jobs", "jobs", "count", "auto"},
		{"q", "q", "auto", "auto"},
		{"all", "all", "auto", "auto"},
	} {
		p := panels[i]
		if p.ID != want.id || p.Title != want.title || p.Unit != want.unit || p.Axes != want.axes {
			t.Errorf("panel %d = %+v, want %+v", i, p, want)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}
