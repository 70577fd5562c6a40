package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// exporter is a real HTTP server exposing Prometheus text, as a
// node_exporter would.
func exporter(tb testing.TB, body string) string {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, body)
	}))
	tb.Cleanup(srv.Close)
	return srv.URL
}

// writeConfig writes a configuration file for one test.
func writeConfig(tb testing.TB, doc string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "livedash.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

type latestBody struct {
	Head   string `json:"head"`
	Topics map[string]struct {
		ID      string `json:"id"`
		TS      int64  `json:"ts"`
		Samples []struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
			Value  float64           `json:"value"`
			TS     int64             `json:"ts"`
			Alert  string            `json:"alert"`
		} `json:"samples"`
	} `json:"topics"`
	Alerts []struct {
		Topic  string            `json:"topic"`
		Series string            `json:"series"`
		Labels map[string]string `json:"labels"`
		Value  float64           `json:"value"`
		Level  string            `json:"level"`
	} `json:"alerts"`
}

// has reports whether topic holds a sample of name whose labels include
// want's, and returns its value.
func (b latestBody) has(topic, name string, want map[string]string) (float64, bool) {
	for _, s := range b.Topics[topic].Samples {
		if s.Name != name {
			continue
		}
		ok := true
		for k, v := range want {
			if s.Labels[k] != v {
				ok = false
			}
		}
		if ok {
			return s.Value, true
		}
	}
	return 0, false
}

// Two scrape targets (real HTTP servers exposing Prometheus text), two HTTP
// probes of which one fails, and two exec commands, on one server: every
// call of /api/v1/latest shows every target's series, and the failing probe
// as down — never only the target whose frame happens to be newest. The
// catalog lists them all too.
func TestLatestShowsEveryTarget(t *testing.T) {
	a := exporter(t, "# TYPE node_load1 gauge\nnode_load1 0.5\n# TYPE node_memory_MemFree_bytes gauge\nnode_memory_MemFree_bytes 1e9\n")
	b := exporter(t, "# TYPE node_load1 gauge\nnode_load1 1.5\n# TYPE app_queue gauge\napp_queue{q=\"x\"} 7\n")
	ok := exporter(t, "ok\n")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/" // nothing listens there
	ln.Close()
	cfg := writeConfig(t, fmt.Sprintf(`
collectors:
  prometheus:
    interval: 500ms
    targets:
      - {name: a, url: %q}
      - {name: b, url: %q}
  http:
    interval: 500ms
    targets:
      - {name: up, url: %q}
      - {name: down, url: %q}
  exec:
    interval: 500ms
    commands:
      - {name: one, command: sh, args: ["-c", "echo answer 42"]}
      - {name: two, command: sh, args: ["-c", "echo answer 7; echo other 1"]}
`, a+"/metrics", b+"/metrics", ok, closed))
	ts := startServer(t, "--config", cfg)

	type series struct {
		topic, name string
		labels      map[string]string
		value       float64 // -1: any
	}
	want := []series{
		{"prometheus", "node_load1", map[string]string{"target": "a"}, 0.5},
		{"prometheus", "node_memory_MemFree_bytes", map[string]string{"target": "a"}, 1e9},
		{"prometheus", "node_load1", map[string]string{"target": "b"}, 1.5},
		{"prometheus", "app_queue", map[string]string{"target": "b", "q": "x"}, 7},
		{"http", "http_up", map[string]string{"target": "up"}, 1},
		{"http", "http_status_code", map[string]string{"target": "up"}, 200},
		{"http", "http_duration_seconds", map[string]string{"target": "up", "phase": "total"}, -1},
		{"http", "http_up", map[string]string{"target": "down"}, 0},
		{"exec", "answer", map[string]string{"command": "one"}, 42},
		{"exec", "answer", map[string]string{"command": "two"}, 7},
		{"exec", "other", map[string]string{"command": "two"}, 1},
	}
	// On every call, every target's series are there. The healthy probe's
	// values are checked once: on a loaded machine one probe of it may
	// time out, and then it is rightly down, without a status code.
	always := []series{}
	for _, w := range want {
		switch {
		case w.topic != "http":
			always = append(always, w)
		case w.name == "http_up":
			always = append(always, series{w.topic, w.name, w.labels, -1})
		}
	}
	always = append(always, series{"http", "http_up", map[string]string{"target": "down"}, 0})
	missingOf := func(b latestBody, want []series) []string {
		var out []string
		for _, w := range want {
			v, found := b.has(w.topic, w.name, w.labels)
			if !found || (w.value >= 0 && v != w.value) {
				out = append(out, fmt.Sprintf("%s %s%v=%v (found %v, %v)", w.topic, w.name, w.labels, w.value, found, v))
			}
		}
		if _, found := b.has("http", "http_status_code", map[string]string{"target": "down"}); found {
			out = append(out, "a status code for the probe that cannot connect")
		}
		return out
	}
	missing := func(b latestBody) []string { return missingOf(b, want) }
	waitFor(t, "every target in /latest", 20*time.Second, func() bool {
		var b latestBody
		getJSON(t, ts.URL+"/api/v1/latest", &b)
		return len(missing(b)) == 0
	})
	// From now on, every call shows every target: 15 calls over 4 s, that
	// is 8 ticks of each collector, whose targets' frames alternate.
	heads := map[string]bool{}
	for i := range 15 {
		var b latestBody
		getJSON(t, ts.URL+"/api/v1/latest", &b)
		if m := missingOf(b, always); len(m) > 0 {
			t.Fatalf("call %d (head %s) lacks:\n  %s", i, b.Head, strings.Join(m, "\n  "))
		}
		var f latestBody
		getJSON(t, ts.URL+"/api/v1/latest?topics=prometheus,http,exec", &f)
		if m := missingOf(f, always); len(m) > 0 {
			t.Fatalf("call %d with topics= lacks:\n  %s", i, strings.Join(m, "\n  "))
		}
		heads[b.Head] = true
		time.Sleep(250 * time.Millisecond)
	}
	if len(heads) < 5 {
		t.Fatalf("only %d distinct heads in 15 calls: the collectors did not tick", len(heads))
	}

	var cat struct {
		Topics []struct {
			Topic  string `json:"topic"`
			Series []struct {
				Name   string            `json:"name"`
				Labels map[string]string `json:"labels"`
			} `json:"series"`
		} `json:"topics"`
	}
	getJSON(t, ts.URL+"/api/v1/series", &cat)
	inCatalog := func(topic, name string, labels map[string]string) bool {
		for _, tp := range cat.Topics {
			if tp.Topic != topic {
				continue
			}
			for _, s := range tp.Series {
				if s.Name != name {
					continue
				}
				match := true
				for k, v := range labels {
					if s.Labels[k] != v {
						match = false
					}
				}
				if match {
					return true
				}
			}
		}
		return false
	}
	for _, w := range want {
		if !inCatalog(w.topic, w.name, w.labels) {
			t.Errorf("/api/v1/series lacks %s %s%v", w.topic, w.name, w.labels)
		}
	}
}
