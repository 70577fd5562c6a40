package api

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"livedash/dashboard/store"
	"livedash/dashboard/store/bolt"
)

// format=csv answers the same buckets as the JSON answer, as a download: a
// header of "time" and the series keys, a row per bucket with its start in
// RFC 3339 and empty cells where a bucket has no value.
func TestQueryCSV(t *testing.T) {
	st := openStore(t, bolt.Options{})
	now := t0.Add(time.Minute)
	ts := newTestServer(t, st, testCfg(), Options{Now: func() time.Time { return now }})
	for i := range 60 {
		samples := []store.Sample{{Name: "cpu_usage_ratio", Labels: map[string]string{"cpu": "total", "mode": "user"}, Value: float64(i) / 100}}
		if i%2 == 0 {
			samples = append(samples, store.Sample{Name: "cpu_usage_ratio", Labels: map[string]string{"cpu": "total", "mode": `sys"tem,`}, Value: 0.5})
		}
		if _, err := st.Append([]store.Batch{{Topic: "cpu", Time: t0.Add(time.Duration(i) * time.Second), Samples: samples}}); err != nil {
			t.Fatal(err)
		}
	}
	q := "/api/v1/query?topics=cpu&after=-60&before=0&points=60&group=last"
	var js queryResp
	if code := getJSON(t, ts.url+q, &js); code != 200 {
		t.Fatal(code)
	}
	resp, err := http.Get(ts.url + q + "&format=csv")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" ||
		!strings.HasPrefix(resp.Header.Get("Content-Disposition"), `attachment; filename="livedash-`) {
		t.Fatalf("%d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"))
	}
	rows, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(rows[0], "|"), strings.Join(js.Labels, "|"); got != want {
		t.Fatalf("header %q, want the JSON answer's labels %q", got, want)
	}
	if len(rows)-1 != js.Points {
		t.Fatalf("%d rows, want %d", len(rows)-1, js.Points)
	}
	for k := 1; k < len(rows); k++ {
		at, err := time.Parse(time.RFC3339, rows[k][0])
		if err != nil || at.Unix() != int64(*js.Data[0][k-1]) {
			t.Fatalf("row %d time %q, want %v", k, rows[k][0], *js.Data[0][k-1])
		}
		for c := 1; c < len(rows[k]); c++ {
			v := js.Data[c][k-1]
			want := ""
			if v != nil {
				b, _ := json.Marshal(*v)
				want = string(b)
			}
			if rows[k][c] != want {
				t.Fatalf("row %d column %d = %q, want %q", k, c, rows[k][c], want)
			}
		}
	}
	if code, b := get(t, ts.url+q+"&format=xml"); code != 400 || !strings.Contains(string(b), "format") {
		t.Fatalf("format=xml: %d %s", code, b)
	}
}
