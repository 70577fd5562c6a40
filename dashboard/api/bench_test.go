package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"livedash/dashboard/store"
	"livedash/dashboard/store/bolt"
)

// benchStore holds 1 h of 1 s frames: topic cpu with 10 series (cpu="0".."9"),
// and topics mem, net, disk with 5 series each, so /latest is ~4 KB.
func benchStore(b *testing.B) (*bolt.Store, time.Time) { return benchStoreT(b) }

func benchStoreT(b testing.TB) (*bolt.Store, time.Time) {
	b.Helper()
	st := openStore(b, bolt.Options{})
	base := time.Unix(1_764_255_600, 0)
	var batches []store.Batch
	for i := range 3600 {
		at := base.Add(time.Duration(i) * time.Second)
		var cpu []store.Sample
		for c := range 10 {
			cpu = append(cpu, store.Sample{Name: "cpu_usage_ratio", Labels: map[string]string{"cpu": fmt.Sprint(c), "mode": "user"}, Value: float64(i%100) / 100})
		}
		batches = append(batches, store.Batch{Topic: "cpu", Time: at, Samples: cpu})
		for _, tp := range []string{"mem", "net", "disk"} {
			var ss []store.Sample
			for k := range 5 {
				ss = append(ss, store.Sample{Name: tp + "_some_bytes", Labels: map[string]string{"k": fmt.Sprint(k)}, Value: float64(i * k)})
			}
			batches = append(batches, store.Batch{Topic: tp, Time: at, Samples: ss})
		}
		if len(batches) >= 400 {
			if _, err := st.Append(batches); err != nil {
				b.Fatal(err)
			}
			batches = batches[:0]
		}
	}
	if _, err := st.Append(batches); err != nil {
		b.Fatal(err)
	}
	return st, base.Add(3600 * time.Second)
}

func benchHandler(b *testing.B, target string, hdr map[string]string) {
	st, now := benchStore(b)
	a := New(st, testCfg(), Options{Now: func() time.Time { return now }})
	st.OnCommit(a.OnCommit)
	if err := a.Load(); err != nil {
		b.Fatal(err)
	}
	e := newEcho(a)
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	e.ServeHTTP(w, req)
	if w.Code != 200 && w.Code != 304 {
		b.Fatalf("%s: %d %s", target, w.Code, w.Body)
	}
	b.SetBytes(int64(w.Body.Len()))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
	}
}

func BenchmarkLatest(b *testing.B) { benchHandler(b, "/api/v1/latest", nil) }

func BenchmarkLatestFiltered(b *testing.B) { benchHandler(b, "/api/v1/latest?topics=cpu,mem", nil) }

func BenchmarkQuery300Points1hOneSeries(b *testing.B) {
	benchHandler(b, `/api/v1/query?series=cpu_usage_ratio{cpu="3"}&after=-3600&points=300`, nil)
}

func BenchmarkQuery300Points1hTenSeries(b *testing.B) {
	benchHandler(b, `/api/v1/query?series=cpu_usage_ratio&after=-3600&points=300`, nil)
}

func BenchmarkFramesNearHead(b *testing.B) {
	benchHandler(b, "/api/v1/frames?after=oldest&limit=1", nil) // oldest: read from the store
}

func BenchmarkSeries(b *testing.B) { benchHandler(b, "/api/v1/series", nil) }
