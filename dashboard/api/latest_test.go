package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"livedash/dashboard/store"
	"livedash/dashboard/store/bolt"
)

// latestTopic is a topic's object in /latest.
type latestTopic struct {
	ID      string `json:"id"`
	Topic   string `json:"topic"`
	TS      int64  `json:"ts"`
	Samples []struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
		Value  float64           `json:"value"`
		TS     int64             `json:"ts"`
		Alert  string            `json:"alert"`
	} `json:"samples"`
}

// sameAsFrame reports whether a topic's /latest object holds exactly the
// frame's samples, with the frame's ID and time.
func sameAsFrame(tb testing.TB, got latestTopic, f store.Frame) bool {
	tb.Helper()
	var want struct {
		ID      string         `json:"id"`
		Topic   string         `json:"topic"`
		TS      int64          `json:"ts"`
		Samples []store.Sample `json:"samples"`
	}
	if err := json.Unmarshal(f.JSON, &want); err != nil {
		tb.Fatal(err)
	}
	if got.ID != want.ID || got.Topic != want.Topic || got.TS != want.TS || len(got.Samples) != len(want.Samples) {
		return false
	}
	for i, s := range want.Samples {
		g := got.Samples[i]
		if g.Name != s.Name || g.Value != s.Value || g.TS != want.TS || len(g.Labels) != len(s.Labels) {
			return false
		}
		for k, v := range s.Labels {
			if g.Labels[k] != v {
				return false
			}
		}
	}
	return true
}

func TestLatestETagAndFilter(t *testing.T) {
	st := openStore(t, bolt.Options{})
	// One topic's newest frame is from before the API started.
	pre := appendFrames(t, st, "disk", 1, nil)
	ts := newTestServer(t, st, testCfg(), Options{})
	appendFrames(t, st, "cpu", 3, nil)
	mem := appendFrames(t, st, "mem", 2, nil)
	cpu := appendFrames(t, st, "cpu", 1, nil)

	resp, err := http.Get(ts.url + "/api/v1/latest")
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Head   string                 `json:"head"`
		Topics map[string]latestTopic `json:"topics"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	etag := resp.Header.Get("ETag")
	if etag != `"`+st.Head().String()+`"` || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("ETag %q Cache-Control %q", etag, resp.Header.Get("Cache-Control"))
	}
	if body.Head != st.Head().String() || len(body.Topics) != 3 ||
		!sameAsFrame(t, body.Topics["cpu"], cpu[0]) || !sameAsFrame(t, body.Topics["mem"], mem[1]) ||
		!sameAsFrame(t, body.Topics["disk"], pre[0]) {
		t.Fatalf("body %+v", body)
	}

	req, _ := http.NewRequest(http.MethodGet, ts.url+"/api/v1/latest", nil)
	req.Header.Set("If-None-Match", etag)
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %v %v", r.StatusCode, err)
	} else {
		r.Body.Close()
	}
	appendFrames(t, st, "cpu", 1, nil)
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != http.StatusOK || r.Header.Get("ETag") == etag {
		t.Fatalf("after a commit: %v %v", r.StatusCode, err)
	} else {
		r.Body.Close()
	}

	var filtered struct {
		Topics map[string]latestTopic `json:"topics"`
	}
	if code := getJSON(t, ts.url+"/api/v1/latest?topics=mem", &filtered); code != 200 ||
		len(filtered.Topics) != 1 || !sameAsFrame(t, filtered.Topics["mem"], mem[1]) {
		t.Fatalf("filtered: %d %+v", code, filtered)
	}
}

// Several sources in one topic — scrape targets, nodes, pushers — each send
// frames of their own: /latest holds every source's newest values, each
// with its own time, whichever frame is newest. A source's series that its
// newer frame no longer carries is no longer current (a probe that went
// down has no status code, a CPU that went offline no usage); a frame of
// one source never drops another's.
func TestLatestEverySeriesOfEverySource(t *testing.T) {
	st := openStore(t, bolt.Options{})
	ts := newTestServer(t, st, testCfg(), Options{})
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	lbl := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	app := func(topic string, s int, samples ...store.Sample) {
		t.Helper()
		if _, err := st.Append([]store.Batch{{Topic: topic, Time: at(s), Samples: samples}}); err != nil {
			t.Fatal(err)
		}
	}
	up := func(target string, v float64) store.Sample {
		return store.Sample{Name: "http_up", Labels: lbl("target", target), Value: v}
	}
	code := func(target string) store.Sample {
		return store.Sample{Name: "http_status_code", Labels: lbl("target", target), Value: 200}
	}
	dur := func(target string) store.Sample {
		return store.Sample{Name: "http_duration_seconds", Labels: lbl("target", target, "phase", "total"), Value: 0.01}
	}
	app("http", 1, up("a", 1), code("a"), dur("a"))
	app("http", 1, up("b", 1), code("b"), dur("b"))
	app("http", 2, up("a", 1), code("a"), dur("a"))
	app("http", 3, up("b", 0)) // b went down: only http_up
	app("http", 4, up("a", 1), code("a"), dur("a"))
	app("node", 1, store.Sample{Name: "load1", Labels: lbl("node", "n1"), Value: 1})
	app("node", 2, store.Sample{Name: "load1", Labels: lbl("node", "n2"), Value: 2})
	app("cpu", 1, store.Sample{Name: "cpu_usage_ratio", Labels: lbl("cpu", "0", "mode", "user"), Value: 0.1},
		store.Sample{Name: "cpu_usage_ratio", Labels: lbl("cpu", "1", "mode", "user"), Value: 0.2})
	app("cpu", 2, store.Sample{Name: "cpu_usage_ratio", Labels: lbl("cpu", "0", "mode", "user"), Value: 0.3}) // cpu 1 went offline
	// Pushes without a source label replace the series of the names they
	// carry, as a Pushgateway's POST does.
	app("app", 5, store.Sample{Name: "queue_depth", Value: 3})
	app("app", 6, store.Sample{Name: "jobs_running", Labels: lbl("stage", "test"), Value: 4})
	app("app", 7, store.Sample{Name: "jobs_running", Labels: lbl("stage", "build"), Value: 5})

	type key struct{ name, labels string }
	check := func(url string) {
		t.Helper()
		var body struct {
			Topics map[string]latestTopic `json:"topics"`
		}
		if code := getJSON(t, url, &body); code != 200 {
			t.Fatalf("%s: %d", url, code)
		}
		got := map[string]map[key][2]float64{}
		for topic, o := range body.Topics {
			got[topic] = map[key][2]float64{}
			for _, s := range o.Samples {
				var ls []string
				for k, v := range s.Labels {
					ls = append(ls, k+"="+v)
				}
				slices.Sort(ls)
				got[topic][key{s.Name, strings.Join(ls, ",")}] = [2]float64{s.Value, float64(s.TS - t0.UnixMilli())}
			}
		}
		want := map[string]map[key][2]float64{
			"http": {
				{"http_up", "target=a"}: {1, 4000}, {"http_status_code", "target=a"}: {200, 4000},
				{"http_duration_seconds", "phase=total,target=a"}: {0.01, 4000},
				{"http_up", "target=b"}:                           {0, 3000},
			},
			"node": {{"load1", "node=n1"}: {1, 1000}, {"load1", "node=n2"}: {2, 2000}},
			"cpu":  {{"cpu_usage_ratio", "cpu=0,mode=user"}: {0.3, 2000}},
			"app":  {{"queue_depth", ""}: {3, 5000}, {"jobs_running", "stage=build"}: {5, 7000}},
		}
		for topic, w := range want {
			if !reflect.DeepEqual(got[topic], w) {
				t.Errorf("%s: topic %s = %v, want %v", url, topic, got[topic], w)
			}
		}
		if o := body.Topics["http"]; o.TS != at(4).UnixMilli() {
			t.Errorf("http ts %d, want the newest frame's", o.TS)
		}
	}
	check(ts.url + "/api/v1/latest")
	check(ts.url + "/api/v1/latest?topics=http,node,cpu,app")
	// The same after a restart: the index is rebuilt from the store.
	ts2 := newTestServer(t, st, testCfg(), Options{})
	check(ts2.url + "/api/v1/latest")
	// With a back-fill that does not reach them, a topic's older frames
	// are not in memory, but its newest frame's values are.
	ts3 := newTestServer(t, st, testCfg(), Options{LoadMaxFrames: 2})
	var small struct {
		Topics map[string]latestTopic `json:"topics"`
	}
	getJSON(t, ts3.url+"/api/v1/latest", &small)
	if len(small.Topics) != 4 || len(small.Topics["node"].Samples) != 1 || len(small.Topics["http"].Samples) != 3 ||
		len(small.Topics["cpu"].Samples) != 1 || len(small.Topics["app"].Samples) != 1 {
		t.Errorf("with LoadMaxFrames 2: %+v", small.Topics)
	}
}

func TestSeriesCatalog(t *testing.T) {
	st := openStore(t, bolt.Options{})
	ts := newTestServer(t, st, testCfg(), Options{MaxSeries: 3,
		Intervals: func() map[string]time.Duration { return map[string]time.Duration{"cpu": 2 * time.Second} }})
	batch := func(topic string, at time.Time, samples ...store.Sample) {
		if _, err := st.Append([]store.Batch{{Topic: topic, Time: at, Samples: samples}}); err != nil {
			t.Fatal(err)
		}
	}
	xss := "<img src=x onerror=alert(1)>\u2028"
	batch("cpu", t0, store.Sample{Name: "cpu_usage_ratio", Labels: map[string]string{"cpu": xss}, Value: 1})
	batch("net", t0, store.Sample{Name: "net_received_bytes_per_second", Value: 1})
	batch("net", t0.Add(5*time.Second), store.Sample{Name: "net_received_bytes_per_second", Value: 2},
		store.Sample{Name: "net_errors_total", Value: 3}, store.Sample{Name: "over_the_cap", Value: 4})
	code, b := get(t, ts.url+"/api/v1/series")
	if code != 200 {
		t.Fatal(code)
	}
	if strings.Contains(string(b), "<img") || strings.Contains(string(b), "\u2028") {
		t.Fatalf("label not escaped: %s", b)
	}
	var cat struct {
		Topics []struct {
			Topic      string `json:"topic"`
			IntervalMs *int64 `json:"interval_ms"`
			Series     []struct {
				Name      string            `json:"name"`
				Labels    map[string]string `json:"labels"`
				Unit      string            `json:"unit"`
				FirstSeen int64             `json:"first_seen"`
				LastSeen  int64             `json:"last_seen"`
			} `json:"series"`
		} `json:"topics"`
		Dropped int `json:"series_dropped"`
	}
	if err := json.Unmarshal(b, &cat); err != nil {
		t.Fatal(err)
	}
	if len(cat.Topics) != 2 || cat.Topics[0].Topic != "cpu" || *cat.Topics[0].IntervalMs != 2000 ||
		cat.Topics[1].Topic != "net" || *cat.Topics[1].IntervalMs != 5000 || cat.Dropped != 1 {
		t.Fatalf("catalog %s", b)
	}
	if s := cat.Topics[0].Series[0]; s.Labels["cpu"] != xss || s.Unit != "ratio" {
		t.Fatalf("cpu series %+v", s)
	}
	net := cat.Topics[1].Series
	if len(net) != 2 || net[0].Name != "net_errors_total" || net[0].Unit != "count" ||
		net[1].Unit != "bytes/s" || net[1].FirstSeen != t0.UnixMilli() || net[1].LastSeen != t0.Add(5*time.Second).UnixMilli() {
		t.Fatalf("net series %+v", net)
	}
}
