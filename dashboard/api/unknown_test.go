package api

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"livedash/dashboard/apierr"
	"livedash/dashboard/store"
	"livedash/dashboard/store/bolt"
)

// A topic or series that is neither configured nor ever seen is reported,
// never answered with silence: 400 unknown_topic or unknown_series on
// /latest, /series and /query (naming what is known, or the series meant),
// and an unknown_topics field on /frames, whose polls wait for the topic
// all the same — until its first frame makes it known.
func TestUnknownTopicsAndSeries(t *testing.T) {
	st := openStore(t, bolt.Options{})
	ts := newTestServer(t, st, testCfg(), Options{Topics: []string{"load"}, Series: []string{"load15"}})
	if _, err := st.Append([]store.Batch{{Topic: "cpu", Time: t0, Samples: []store.Sample{
		{Name: "cpu_usage_ratio", Labels: map[string]string{"cpu": "total", "mode": "user"}, Value: 0.1},
		{Name: "cpu_usage_ratio", Labels: map[string]string{"cpu": "0", "mode": "user"}, Value: 0.1},
	}}}); err != nil {
		t.Fatal(err)
	}
	bad := func(path, code string, want ...string) {
		t.Helper()
		status, b := get(t, ts.url+path)
		var e apierr.Body
		if err := json.Unmarshal(b, &e); err != nil || status != 400 || e.Error.Code != code {
			t.Errorf("GET %s: %d %s, want 400 %s", path, status, b, code)
			return
		}
		for _, w := range want {
			if !strings.Contains(e.Error.Message, w) {
				t.Errorf("GET %s: message %q lacks %q", path, e.Error.Message, w)
			}
		}
	}
	good := func(path string) []byte {
		t.Helper()
		status, b := get(t, ts.url+path)
		if status != 200 {
			t.Errorf("GET %s: %d %s", path, status, b)
		}
		return b
	}
	bad("/api/v1/latest?topics=CPU!", "unknown_topic", `topic "CPU!" is unknown`, "known topics: cpu, load")
	bad("/api/v1/latest?topics=cpu,nope,nada", "unknown_topic", `topics "nope", "nada" are unknown`)
	bad("/api/v1/series?topics=nope", "unknown_topic", `"nope"`)
	bad("/api/v1/query?topics=nope", "unknown_topic", `"nope"`)
	bad("/api/v1/query?series=cpu_usage_ratoi", "unknown_series", `no series named "cpu_usage_ratoi"`, "did you mean cpu_usage_ratio?")
	bad("/api/v1/query?series="+url.QueryEscape(`cpu_usage_ratio{cpu="9"}`), "unknown_series", "cpu takes 0, total")
	bad("/api/v1/query?topics=load&series=cpu_usage_ratio", "unknown_series", "in topics load")
	// Configured, or seen: fine even without data.
	good("/api/v1/latest?topics=load")
	good("/api/v1/latest?topics=cpu")
	good("/api/v1/query?topics=load")
	good("/api/v1/query?series=load15")
	good("/api/v1/query?series=" + url.QueryEscape(`cpu_usage_ratio{mode!="idle"}`))

	var fr struct {
		Frames        []json.RawMessage `json:"frames"`
		UnknownTopics []string          `json:"unknown_topics"`
	}
	if err := json.Unmarshal(good("/api/v1/frames?after=oldest&topics=cpu,app"), &fr); err != nil ||
		len(fr.Frames) != 1 || strings.Join(fr.UnknownTopics, ",") != "app" {
		t.Fatalf("frames with an unknown topic: %+v %v", fr, err)
	}
	if _, err := st.Append([]store.Batch{{Topic: "app", Time: t0, Samples: []store.Sample{{Name: "jobs", Value: 1}}}}); err != nil {
		t.Fatal(err)
	}
	fr.UnknownTopics = nil
	if err := json.Unmarshal(good("/api/v1/frames?after=oldest&topics=cpu,app"), &fr); err != nil ||
		len(fr.Frames) != 2 || fr.UnknownTopics != nil {
		t.Fatalf("frames once app has a frame: %+v %v", fr, err)
	}
	good("/api/v1/latest?topics=app")
	if !ts.api.KnownTopic("app") || ts.api.KnownTopic("nope") {
		t.Fatal("KnownTopic")
	}
}
