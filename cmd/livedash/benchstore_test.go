package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"livedash/dashboard/store"
	"livedash/dashboard/store/bolt"
)

var benchStorePath = flag.String("benchstore", "", "write the store scripts/httpbench.sh serves to this path")

// Topics of the HTTP benchmark's store and their series: /latest of the
// newest frames is about 4 KB, a query of cpu_usage_ratio has ten series.
var benchTopics = []struct {
	topic, name, label string
	series             int
}{
	{"cpu", "cpu_usage_ratio", "cpu", 10},
	{"mem", "mem_some_bytes", "k", 5},
	{"net", "net_some_bytes", "k", 5},
	{"disk", "disk_some_bytes", "k", 5},
}

// collectorsOff is the configuration the benchmark's server runs with: no
// collector appends to the store, so the data stays put.
const collectorsOff = `collectors:
  cpu: {enabled: false}
  memory: {enabled: false}
  load: {enabled: false}
  disk: {enabled: false}
  filesystem: {enabled: false}
  network: {enabled: false}
  system: {enabled: false}
  self: {enabled: false}
`

// writeBenchStore writes 1 h of 1 s frames of benchTopics ending at end
// (one frame per topic per second) to a new store at path.
func writeBenchStore(tb testing.TB, path string, end time.Time) {
	tb.Helper()
	st, err := bolt.Open(bolt.Options{Path: path, NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	var batches []store.Batch
	for i := range 3600 {
		at := end.Add(time.Duration(i-3599) * time.Second)
		for _, bt := range benchTopics {
			ss := make([]store.Sample, bt.series)
			for k := range ss {
				ss[k] = store.Sample{Name: bt.name, Labels: map[string]string{bt.label: fmt.Sprint(k)}, Value: float64((i*(k+1))%100) / 100}
			}
			batches = append(batches, store.Batch{Topic: bt.topic, Time: at, Samples: ss})
		}
		if len(batches) >= 400 || i == 3599 {
			if _, err := st.Append(batches); err != nil {
				tb.Fatal(err)
			}
			batches = batches[:0]
		}
	}
}

// TestBenchStore writes the HTTP benchmark's store (to -benchstore when
// scripts/httpbench.sh gives it, else to a temporary file) and checks it:
// an hour of frames of every topic, one a second, the newest at the end
// time, served as such by /api/v1/query.
func TestBenchStore(t *testing.T) {
	path := *benchStorePath
	if path == "" {
		path = filepath.Join(t.TempDir(), "bench.db")
	}
	end := time.Now().Truncate(time.Second)
	writeBenchStore(t, path, end)
	if *benchStorePath != "" {
		t.Logf("wrote %s: 1 h of 1 s frames of %d topics, ending %s", path, len(benchTopics), end.Format(time.RFC3339))
		return
	}
	st, err := bolt.Open(bolt.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	n := 3600 * len(benchTopics)
	if st.Len() != n || st.Head().Seq != uint64(n) {
		t.Fatalf("store holds %d frames, head %v; want %d", st.Len(), st.Head(), n)
	}
	if f, ok := st.Latest("cpu"); !ok || f.TS != end.UnixMilli() {
		t.Fatalf("newest cpu frame %v at %d, want it at %d", ok, f.TS, end.UnixMilli())
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// Served as scripts/httpbench.sh serves it: collectors off.
	conf := filepath.Join(t.TempDir(), "quiet.yaml")
	if err := os.WriteFile(conf, []byte(collectorsOff), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, "--store", path, "--config", conf)
	var q struct {
		Labels []string
		Data   [][]*float64
		Last   string
	}
	// The index is loaded beside the server's start, oldest frames first:
	// the query answers from the whole hour once it reads up to the head.
	waitFor(t, "the hour indexed", time.Minute, func() bool {
		getJSON(t, srv.URL+"/api/v1/query?series=cpu_usage_ratio&after=-3600&points=300", &q)
		return seqOf(q.Last) == int64(n)
	})
	if len(q.Labels) != 11 || len(q.Data) != 11 || len(q.Data[0]) < 300 || q.Data[1][len(q.Data[1])/2] == nil {
		t.Fatalf("query of the bench store: %d labels, %d columns of %d points", len(q.Labels), len(q.Data), len(q.Data[0]))
	}
}
