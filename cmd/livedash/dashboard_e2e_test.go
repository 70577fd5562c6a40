package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

type dashboardAnswer struct {
	Host   string `json:"host"`
	Node   string `json:"node"`
	CPUs   int    `json:"cpus"`
	Panels []struct {
		ID      string            `json:"id"`
		Title   string            `json:"title"`
		Topic   string            `json:"topic"`
		Series  []string          `json:"series"`
		Include map[string]string `json:"include"`
		Exclude map[string]string `json:"exclude"`
		Unit    string            `json:"unit"`
		Stack   bool              `json:"stack"`
		Axes    string            `json:"axes"`
	} `json:"panels"`
	OtherTopics bool `json:"other_topics"`
	Thresholds  []struct {
		Series   string            `json:"series"`
		Labels   map[string]string `json:"labels"`
		Exclude  map[string]string `json:"exclude"`
		SumOver  []string          `json:"sum_over"`
		Of       *string           `json:"of"`
		Below    bool              `json:"below"`
		Warning  *float64          `json:"warning"`
		Critical *float64          `json:"critical"`
	} `json:"thresholds"`
}

// Without configuration, GET /api/v1/dashboard names the host (as
// /api/v1/status does), the built-in panels in their order, and the
// default thresholds with the load levels per CPU multiplied out.
func TestDashboardDefaults(t *testing.T) {
	ts := startServer(t)
	var d dashboardAnswer
	resp := getJSON(t, ts.URL+"/api/v1/dashboard", &d)
	host, _ := os.Hostname()
	if resp.StatusCode != 200 || d.Host != host || d.Node != host || d.CPUs != runtime.NumCPU() || !d.OtherTopics {
		t.Fatalf("dashboard: %d %+v", resp.StatusCode, d)
	}
	var ids []string
	for _, p := range d.Panels {
		ids = append(ids, p.ID)
		if p.Series == nil || p.Include == nil || p.Exclude == nil || p.Unit == "" || p.Axes == "" || p.Title == "" {
			t.Errorf("panel %+v: a field is missing", p)
		}
	}
	if got := strings.Join(ids, ","); got != "cpu,memory,load,disk,filesystem,network,system,self" {
		t.Fatalf("panels %s", got)
	}
	cpu := d.Panels[0]
	if cpu.Topic != "cpu" || cpu.Include["cpu"] != "total" || cpu.Exclude["mode"] != "idle" || cpu.Unit != "ratio" || !cpu.Stack {
		t.Errorf("cpu panel %+v", cpu)
	}
	if len(d.Thresholds) != 4 {
		t.Fatalf("thresholds %+v", d.Thresholds)
	}
	if th := d.Thresholds[3]; th.Series != "load5" || *th.Warning != float64(runtime.NumCPU()) || *th.Critical != float64(2*runtime.NumCPU()) {
		t.Errorf("load threshold %+v", th)
	}
	if th := d.Thresholds[1]; th.Of == nil || *th.Of != "memory_total_bytes" || *th.Warning != 0.9 {
		t.Errorf("memory threshold %+v", th)
	}
	if th := d.Thresholds[0]; strings.Join(th.SumOver, ",") != "mode" || th.Exclude["mode"] != "idle" || th.Labels["cpu"] != "total" || th.Below {
		t.Errorf("cpu threshold %+v", th)
	}
	var st struct{ Host string }
	getJSON(t, ts.URL+"/api/v1/status", &st)
	if st.Host != host {
		t.Errorf("status host %q, want %q", st.Host, host)
	}
	// ETag: the answer changes only with the configuration.
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/v1/dashboard", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusNotModified || resp.Header.Get("ETag") == "" {
		t.Fatalf("If-None-Match: %d (ETag %q)", r.StatusCode, resp.Header.Get("ETag"))
	}
}

// A dashboard section names exactly the panels served, in its order, with
// defaults filled in; thresholds replace the defaults; /api/v1/latest
// reports a value over one.
func TestDashboardConfigured(t *testing.T) {
	t.Setenv("LIVEDASH_PUSH_TOKEN", "s3cret-0123456789abcdef")
	cfg := writeConfig(t, `
dashboard:
  panels:
    - {id: jobs, title: Jobs, topic: app, series: [queue_depth, jobs_running], axes: separate}
    - {topic: load}
    - {id: root, topic: filesystem, series: [filesystem_used_ratio], include: {mountpoint: "/"}, exclude: {fstype: "tmp.*"}}
thresholds:
  - {series: queue_depth, warning: 10, critical: 100}
  - {series: load1, per_cpu: true, warning: 0.5}
`)
	ts := startServer(t, "--config", cfg)
	var d dashboardAnswer
	getJSON(t, ts.URL+"/api/v1/dashboard", &d)
	if d.OtherTopics || len(d.Panels) != 3 || len(d.Thresholds) != 2 {
		t.Fatalf("dashboard %+v", d)
	}
	p := d.Panels
	if p[0].ID != "jobs" || p[0].Title != "Jobs" || p[0].Topic != "app" || strings.Join(p[0].Series, ",") != "queue_depth,jobs_running" ||
		p[0].Unit != "auto" || p[0].Axes != "separate" || p[0].Stack {
		t.Errorf("panel 0 %+v", p[0])
	}
	if p[1].ID != "load" || p[1].Title != "Load average" || len(p[1].Series) != 0 || p[1].Unit != "auto" || p[1].Axes != "auto" {
		t.Errorf("panel 1 %+v", p[1])
	}
	if p[2].ID != "root" || p[2].Include["mountpoint"] != "/" || p[2].Exclude["fstype"] != "tmp.*" || p[2].Unit != "ratio" {
		t.Errorf("panel 2 %+v", p[2])
	}
	if th := d.Thresholds[1]; *th.Warning != 0.5*float64(runtime.NumCPU()) || th.Critical != nil {
		t.Errorf("load1 threshold %+v", th)
	}
	// The panel's topic is configured: known before anything is pushed.
	if resp := getJSON(t, ts.URL+"/api/v1/latest?topics=app", nil); resp.StatusCode != 200 {
		t.Fatalf("latest?topics=app before a push: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("POST", ts.URL+"/api/v1/push/app", strings.NewReader(`{"queue_depth": 17, "jobs_running": 3}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer s3cret-0123456789abcdef")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var pushed struct{ ID string }
	_ = json.NewDecoder(resp.Body).Decode(&pushed)
	resp.Body.Close()
	var b latestBody
	getJSON(t, ts.URL+"/api/v1/latest?topics=app", &b)
	if len(b.Alerts) != 1 || b.Alerts[0].Series != "queue_depth" || b.Alerts[0].Level != "warning" || b.Alerts[0].Value != 17 {
		t.Fatalf("alerts %+v", b.Alerts)
	}
	if b.Topics["app"].ID != pushed.ID || pushed.ID == "" {
		t.Fatalf("the push answered id %q; latest holds %q", pushed.ID, b.Topics["app"].ID)
	}
}

// A stream whose topics= names a topic that is neither configured nor ever
// seen still answers 200, and its hello names the topic; `livedash tail
// --topics`, over SSE and over WebSocket, says so on stderr instead of
// waiting silently.
func TestUnknownTopicOnStreamAndTail(t *testing.T) {
	ts := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/api/v1/stream?topics=cpu,nosuch,CPU!", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	var hello string
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "data: ") {
			hello = strings.TrimPrefix(line, "data: ")
			break
		}
	}
	var h struct {
		Head          string   `json:"head"`
		UnknownTopics []string `json:"unknown_topics"`
	}
	if err := json.Unmarshal([]byte(hello), &h); err != nil || h.Head == "" || strings.Join(h.UnknownTopics, ",") != "CPU!,nosuch" {
		t.Fatalf("hello %s: %v", hello, err)
	}
	cancel()

	// Over both transports: the WebSocket's hello names them too.
	forEachTransport(t, func(t *testing.T, transport string) {
		out, errOut, stop := startTail(t, "--transport", transport, "--server", ts.URL, "--topics", "nosuch")
		waitUntil(t, "the warning", func() bool {
			return strings.Contains(errOut.String(), `livedash tail: warning: the server knows no topic nosuch`)
		})
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if out.String() != "" || strings.Count(errOut.String(), "warning") != 1 {
			t.Fatalf("stdout %q stderr %q", out.String(), errOut.String())
		}
	})
}
