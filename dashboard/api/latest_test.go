package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"livedash/dashboard/store"
	"livedash/dashboard/store/bolt"
)

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
		Head   string                     `json:"head"`
		Topics map[string]json.RawMessage `json:"topics"`
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
		string(body.Topics["cpu"]) != string(cpu[0].JSON) || string(body.Topics["mem"]) != string(mem[1].JSON) ||
		string(body.Topics["disk"]) != string(pre[0].JSON) {
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

	code, b := get(t, ts.url+"/api/v1/latest?topics=mem,nope")
	if code != 200 || !strings.Contains(string(b), `"topics":{"mem":`+string(mem[1].JSON)+`}`) {
		t.Fatalf("filtered: %d %s", code, b)
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
