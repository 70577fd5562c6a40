package collectors

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"livedash/config"
)

func TestNewTable(t *testing.T) {
	cfg := config.Default().Collectors
	cfg.Exec.Commands = []config.ExecCommand{{Name: "a", Command: "true"}, {Name: "b", Command: "true", Interval: config.Duration(10 * time.Second)}}
	cfg.Prometheus.Targets = []config.ScrapeTarget{{URL: "http://127.0.0.1:9100/metrics"}}
	off := false
	cfg.Memory.Enabled = &off
	s, err := New(cfg, Options{Registerer: prometheus.NewRegistry(), Demo: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, in := range s.Infos() {
		got = append(got, in.Collector+"@"+in.Interval.String())
		if in.Timeout <= 0 || in.Timeout > in.Interval {
			t.Errorf("%s: timeout %v", in.Collector, in.Timeout)
		}
	}
	want := []string{"self@1s", "prometheus/127.0.0.1:9100@5s", "exec/a@5s", "exec/b@10s", "synthetic@1s"}
	if runtime.GOOS == "linux" {
		want = append([]string{"cpu@1s", "load@1s", "disk@1s", "filesystem@1s", "network@1s", "system@1s"}, want...)
	}
	if !slices.Equal(got, want) {
		t.Errorf("jobs = %v\nwant %v", got, want)
	}
	// One Set per registry: a second one is refused, not a panic.
	reg := prometheus.NewRegistry()
	if _, err := New(cfg, Options{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg, Options{Registerer: reg}); err == nil {
		t.Error("second Set on one registry: no error")
	}
}

// TestNewZeroValuesTakeConfigDefaults: a section that leaves a value zero
// (an unvalidated config) gets config.Default()'s value for that section,
// not a number of the collectors package's own.
func TestNewZeroValuesTakeConfigDefaults(t *testing.T) {
	def := config.Default().Collectors
	off := false
	cfg := config.Collectors{
		Prometheus: config.Scrape{Targets: []config.ScrapeTarget{{URL: "http://127.0.0.1:9100/metrics"}}},
		Exec:       config.Exec{Commands: []config.ExecCommand{{Name: "a", Command: "true"}}},
		HTTP:       config.HTTPProbe{Targets: []config.HTTPTarget{{URL: "http://127.0.0.1:1/"}}},
	}
	for _, c := range []*config.Common{&cfg.CPU.Common, &cfg.Memory, &cfg.Load, &cfg.Disk.Common,
		&cfg.Filesystem.Common, &cfg.Network.Common, &cfg.System} {
		c.Enabled = &off // host collectors need their regexps; not under test here
	}
	s, err := New(cfg, Options{Demo: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Duration{
		"self":                      def.Self.Interval.D(),
		"http":                      def.HTTP.Interval.D(),
		"prometheus/127.0.0.1:9100": def.Prometheus.Interval.D(),
		"exec/a":                    def.Exec.Interval.D(),
		"synthetic":                 def.Synthetic.Interval.D(),
	}
	for _, j := range s.jobs {
		in := j.info
		if iv, ok := want[in.Collector]; !ok || in.Interval != iv {
			t.Errorf("%s: interval %v, want %v (known: %v)", in.Collector, in.Interval, iv, ok)
		}
		delete(want, in.Collector)
		switch c := j.c.(type) {
		case *scrapeTarget:
			if c.maxSeries != def.Prometheus.MaxSeries || c.maxBody != def.Prometheus.MaxBodyBytes {
				t.Errorf("scrape: max_series %d, max_body_bytes %d", c.maxSeries, c.maxBody)
			}
		case *execCollector:
			if c.maxOutput != def.Exec.MaxOutputBytes {
				t.Errorf("exec: max_output_bytes %d", c.maxOutput)
			}
		case *syntheticCollector:
			if len(c.labels) != def.Synthetic.Series {
				t.Errorf("synthetic: %d series", len(c.labels))
			}
		case *httpProbe:
			if m := c.targets[0].method; m != config.DefaultHTTPMethod {
				t.Errorf("http: method %q", m)
			}
		}
	}
	if len(want) > 0 {
		t.Errorf("jobs missing: %v", want)
	}
}

// TestDefaultSetProducesFrames runs the default set against this machine
// until every default collector has produced a frame (at most 30 s, a
// ceiling that only a collector that never reports reaches; about 2 s when
// nothing is delayed), then stops it: Run returns nil.
func TestDefaultSetProducesFrames(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("host collectors are Linux-only")
	}
	if testing.Short() {
		t.Skip("real time")
	}
	s, err := New(config.Default().Collectors, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sink := &recordSink{}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, sink) }()
	// disk and filesystem may legitimately be empty in a container.
	topics := []string{"cpu", "memory", "load", "system", "self"}
	if !onlyLoopback() {
		topics = append(topics, "network")
	}
	missing := func() []string {
		got := sink.byTopic()
		var out []string
		for _, topic := range topics {
			if len(got[topic]) == 0 {
				out = append(out, topic)
			}
		}
		return out
	}
	start := time.Now()
	for m := missing(); len(m) > 0; m = missing() {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("no frame from %v within 30s", m)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("every default collector reported within %v", time.Since(start).Round(time.Millisecond))
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of its context ending")
	}
}

func onlyLoopback() bool {
	data, err := readProc("/proc", "net/dev")
	if err != nil {
		return true
	}
	devs, _ := parseNetDev(data, nil)
	for _, d := range devs {
		if d.device != "lo" {
			return false
		}
	}
	return true
}
