package api

import (
	"net/http"
	"testing"
	"time"

	"livedash/config"
	"livedash/dashboard/store"
	"livedash/dashboard/store/bolt"
)

type latestAlerts struct {
	Head   string                 `json:"head"`
	Topics map[string]latestTopic `json:"topics"`
	Alerts []struct {
		Topic    string            `json:"topic"`
		Series   string            `json:"series"`
		Labels   map[string]string `json:"labels"`
		SumOver  []string          `json:"sum_over"`
		Of       string            `json:"of"`
		Value    float64           `json:"value"`
		Level    string            `json:"level"`
		Warning  *float64          `json:"warning"`
		Critical *float64          `json:"critical"`
		Below    bool              `json:"below"`
		TS       int64             `json:"ts"`
	} `json:"alerts"`
}

func f64(v float64) *float64 { return &v }

// /latest reports every value over a threshold: in "alerts", with the
// level, the levels and what was compared (a sum over modes, a fraction of
// a total, a per-CPU load), and on each sample that takes part; values
// under every level are not reported; the ETag and 304 work as before.
func TestLatestThresholds(t *testing.T) {
	st := openStore(t, bolt.Options{})
	ts := newTestServer(t, st, testCfg(), Options{CPUs: 4, Thresholds: append(config.Default().Thresholds,
		config.Threshold{Series: "http_up", Below: true, Critical: f64(0)})})
	lbl := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	sec := 0
	app := func(topic string, samples ...store.Sample) {
		t.Helper()
		sec++
		if _, err := st.Append([]store.Batch{{Topic: topic, Time: t0.Add(time.Duration(sec) * time.Second), Samples: samples}}); err != nil {
			t.Fatal(err)
		}
	}
	cpu := func(user, system, idle float64) {
		app("cpu",
			store.Sample{Name: "cpu_usage_ratio", Labels: lbl("cpu", "total", "mode", "user"), Value: user},
			store.Sample{Name: "cpu_usage_ratio", Labels: lbl("cpu", "total", "mode", "system"), Value: system},
			store.Sample{Name: "cpu_usage_ratio", Labels: lbl("cpu", "total", "mode", "idle"), Value: idle},
			store.Sample{Name: "cpu_usage_ratio", Labels: lbl("cpu", "0", "mode", "user"), Value: 1})
	}
	cpu(0.5, 0.35, 0.15) // busy 0.85: warning
	app("memory", store.Sample{Name: "memory_used_bytes", Value: 960}, store.Sample{Name: "memory_total_bytes", Value: 1000})
	app("filesystem",
		store.Sample{Name: "filesystem_used_ratio", Labels: lbl("mountpoint", "/"), Value: 0.5},
		store.Sample{Name: "filesystem_used_ratio", Labels: lbl("mountpoint", "/data"), Value: 0.9})
	app("load", store.Sample{Name: "load5", Value: 5}, store.Sample{Name: "load1", Value: 50}) // 4 CPUs: warning at 4
	app("http", store.Sample{Name: "http_up", Labels: lbl("target", "a"), Value: 1})
	app("http", store.Sample{Name: "http_up", Labels: lbl("target", "b"), Value: 0})

	var b latestAlerts
	resp := getJSONResp(t, ts.url+"/api/v1/latest", &b)
	type al struct{ topic, series, labels, level string }
	var got []al
	for _, a := range b.Alerts {
		got = append(got, al{a.Topic, a.Series, labelString(a.Labels), a.Level})
	}
	want := []al{
		{"cpu", "cpu_usage_ratio", "cpu=total", "warning"},
		{"filesystem", "filesystem_used_ratio", "mountpoint=/data", "warning"},
		{"http", "http_up", "target=b", "critical"},
		{"load", "load5", "", "warning"},
		{"memory", "memory_used_bytes", "", "critical"},
	}
	if len(got) != len(want) {
		t.Fatalf("alerts %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("alert %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, a := range b.Alerts {
		switch a.Series {
		case "cpu_usage_ratio":
			if d := a.Value - 0.85; d > 1e-9 || d < -1e-9 || len(a.SumOver) != 1 || *a.Warning != 0.8 || *a.Critical != 0.95 {
				t.Errorf("cpu alert %+v", a)
			}
		case "memory_used_bytes":
			if a.Value != 0.96 || a.Of != "memory_total_bytes" {
				t.Errorf("memory alert %+v", a)
			}
		case "load5":
			if a.Value != 5 || *a.Warning != 4 || *a.Critical != 8 {
				t.Errorf("load alert %+v: want levels per CPU times 4", a)
			}
		case "http_up":
			if !a.Below || a.Warning != nil || *a.Critical != 0 || a.TS == 0 {
				t.Errorf("http alert %+v", a)
			}
		}
	}
	// The samples that take part say so; the others do not.
	marked := map[string]string{}
	for topic, o := range b.Topics {
		for _, s := range o.Samples {
			marked[topic+" "+s.Name+" "+labelString(s.Labels)] = s.Alert
		}
	}
	for k, v := range map[string]string{
		"cpu cpu_usage_ratio cpu=total,mode=user":           "warning",
		"cpu cpu_usage_ratio cpu=total,mode=system":         "warning",
		"cpu cpu_usage_ratio cpu=total,mode=idle":           "",
		"cpu cpu_usage_ratio cpu=0,mode=user":               "",
		"memory memory_used_bytes ":                         "critical",
		"memory memory_total_bytes ":                        "",
		"filesystem filesystem_used_ratio mountpoint=/data": "warning",
		"filesystem filesystem_used_ratio mountpoint=/":     "",
		"load load5 ":           "warning",
		"load load1 ":           "",
		"http http_up target=b": "critical",
		"http http_up target=a": "",
	} {
		if got, ok := marked[k]; !ok || got != v {
			t.Errorf("sample %s: alert %q (present %v), want %q", k, got, ok, v)
		}
	}

	// ETag and 304 as before; a new frame that crosses back changes both.
	etag := resp.Header.Get("ETag")
	req, _ := http.NewRequest(http.MethodGet, ts.url+"/api/v1/latest", nil)
	req.Header.Set("If-None-Match", etag)
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %v %v", r, err)
	} else {
		r.Body.Close()
	}
	cpu(0.9, 0.08, 0.02) // busy 0.98: critical
	var b2 latestAlerts
	getJSON(t, ts.url+"/api/v1/latest?topics=cpu", &b2)
	if len(b2.Alerts) != 1 || b2.Alerts[0].Level != "critical" {
		t.Fatalf("after the CPU crossed critical, topics=cpu: %+v", b2.Alerts)
	}
	cpu(0.1, 0.1, 0.8)
	getJSON(t, ts.url+"/api/v1/latest?topics=cpu,memory", &b2)
	if len(b2.Alerts) != 1 || b2.Alerts[0].Topic != "memory" {
		t.Fatalf("after the CPU calmed down: %+v", b2.Alerts)
	}

	// Without thresholds: no alerts, an empty list.
	none := newTestServer(t, st, testCfg(), Options{})
	var b3 latestAlerts
	getJSON(t, none.url+"/api/v1/latest", &b3)
	if b3.Alerts == nil || len(b3.Alerts) != 0 {
		t.Fatalf("without thresholds: alerts %+v", b3.Alerts)
	}
}

func labelString(m map[string]string) string {
	s := ""
	for _, k := range sortedKeys(m) {
		if s != "" {
			s += ","
		}
		s += k + "=" + m[k]
	}
	return s
}

func getJSONResp(tb testing.TB, url string, v any) *http.Response {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	getJSON(tb, url, v)
	return resp
}
