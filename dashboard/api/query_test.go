package api

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"livedash/dashboard/store"
	"livedash/dashboard/store/bolt"
)

type queryResp struct {
	Series []struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
		Topic  string            `json:"topic"`
		Unit   string            `json:"unit"`
	} `json:"series"`
	Labels []string     `json:"labels"`
	Data   [][]*float64 `json:"data"`
	First  *string      `json:"first"`
	Last   string       `json:"last"`
	After  int64        `json:"after"`
	Before int64        `json:"before"`
	Points int          `json:"points"`
	Step   int64        `json:"step"`
	Group  string       `json:"group"`
	Capped bool         `json:"capped"`
}

// point is one stored sample, for the brute-force reference.
type point struct {
	seq       uint64
	ms        int64
	topic     string
	name, key string
	labels    map[string]string
	v         float64
}

// randomData appends frames of two topics at ~1 s spacing with jitter, gaps
// and missing samples, and returns every sample for the reference.
func randomData(t *testing.T, st *bolt.Store, rng *rand.Rand, frames int, start time.Time) []point {
	t.Helper()
	type ser struct {
		name   string
		labels map[string]string
	}
	sers := map[string][]ser{
		"cpu": {{"cpu_usage_ratio", map[string]string{"cpu": "0"}}, {"cpu_usage_ratio", map[string]string{"cpu": "1"}},
			{"cpu_usage_ratio", map[string]string{"cpu": "total", "mode": "user"}}},
		"mem": {{"mem_used_bytes", nil}, {"mem_free_bytes", map[string]string{"q": `a"b\c`}}},
	}
	var pts []point
	ms := start.UnixMilli()
	for range frames {
		ms += 1000 + int64(rng.IntN(200)) - 100
		if rng.IntN(20) == 0 {
			ms += int64(rng.IntN(30_000)) // a gap
		}
		topic := []string{"cpu", "mem"}[rng.IntN(2)]
		var samples []store.Sample
		for _, s := range sers[topic] {
			if rng.IntN(6) == 0 {
				continue
			}
			samples = append(samples, store.Sample{Name: s.name, Labels: s.labels, Value: math.Round(rng.NormFloat64()*1e4) / 100})
		}
		fs, err := st.Append([]store.Batch{{Topic: topic, Time: time.UnixMilli(ms), Samples: samples}})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range samples {
			key, _ := appendSeriesKey(nil, s.Name, s.Labels, nil)
			pts = append(pts, point{fs[0].ID.Seq, ms, topic, s.Name, string(key), s.Labels, s.Value})
		}
	}
	return pts
}

// reference computes a query by brute force: for every bucket of the grid,
// filter all points.
func reference(pts []point, p QueryParams) (times []int64, cols []string, vals [][]float64, first uint64) {
	step := max(1, int64(math.Ceil(float64(p.Before-p.After)/float64(p.Points))))
	kLast := int64(math.Floor(float64(p.Before) / float64(step)))
	for k := kLast - int64(p.Points) + 1; k <= kLast; k++ {
		if (k+1)*step > p.After {
			times = append(times, k*step)
		}
	}
	keys := map[string]bool{}
	for _, pt := range pts {
		if (p.Topics == nil || slices.Contains(p.Topics, pt.topic)) && p.Selector.Match(pt.name, pt.labels) {
			k := pt.topic + "\x00" + pt.key
			if !keys[k] {
				keys[k] = true
				cols = append(cols, k)
			}
		}
	}
	slices.Sort(cols)
	for _, c := range cols {
		col := make([]float64, len(times))
		for bi, bt := range times {
			lo, hi := bt*1000, min((bt+step)*1000, (p.Before+1)*1000)
			var in []float64
			for _, pt := range pts {
				if pt.topic+"\x00"+pt.key == c && pt.ms >= lo && pt.ms < hi {
					in = append(in, pt.v)
					if first == 0 || pt.seq < first {
						first = pt.seq
					}
				}
			}
			v := math.NaN()
			if len(in) > 0 {
				switch p.Group {
				case GroupAvg:
					s := 0.0
					for _, x := range in {
						s += x
					}
					v = s / float64(len(in))
				case GroupMin:
					v = slices.Min(in)
				case GroupMax:
					v = slices.Max(in)
				case GroupLast:
					v = in[len(in)-1]
				}
			}
			col[bi] = v
		}
		vals = append(vals, col)
	}
	return times, cols, vals, first
}

func randomQuery(rng *rand.Rand, now int64, span int64) (string, QueryParams) {
	q := url.Values{}
	before := -rng.Int64N(span / 4)
	if rng.IntN(3) == 0 {
		before = now + before // absolute
	}
	after := -1 - rng.Int64N(span)
	q.Set("before", fmt.Sprint(before))
	q.Set("after", fmt.Sprint(after))
	q.Set("points", fmt.Sprint(1+rng.IntN(80)))
	q.Set("group", []string{"avg", "min", "max", "last"}[rng.IntN(4)])
	switch rng.IntN(5) {
	case 1:
		q.Set("series", "cpu_usage_ratio")
	case 2:
		q.Set("series", `cpu_usage_ratio{cpu!="total"}`)
	case 3:
		q.Set("topics", "mem")
	case 4:
		q.Set("series", `{q="a\"b\\c"}`)
	}
	raw := q.Encode()
	p, aerr := ParseQueryParams(raw, testCfg(), time.Unix(now, 0))
	if aerr != nil {
		panic(aerr)
	}
	return raw, p
}

func checkAgainstReference(t *testing.T, ts *testServer, pts []point, raw string, p QueryParams) {
	t.Helper()
	var r queryResp
	if code := getJSON(t, ts.url+"/api/v1/query?"+raw, &r); code != 200 {
		t.Fatalf("%s: status %d", raw, code)
	}
	times, cols, vals, first := reference(pts, p)
	if len(r.Data) != len(cols)+1 || len(r.Labels) != len(cols)+1 || len(r.Series) != len(cols) {
		t.Fatalf("%s: %d columns, want %d (%q)", raw, len(r.Data)-1, len(cols), cols)
	}
	if r.Points != len(times) || r.After != times[0] || r.Before != p.Before || r.Group != string(p.Group) {
		t.Fatalf("%s: points %d after %d before %d, want %d %d %d", raw, r.Points, r.After, r.Before, len(times), times[0], p.Before)
	}
	for i, tm := range times {
		if r.Data[0][i] == nil || int64(*r.Data[0][i]) != tm {
			t.Fatalf("%s: time %d = %v, want %d", raw, i, r.Data[0][i], tm)
		}
	}
	for ci, c := range cols {
		if got := r.Series[ci].Topic + "\x00" + r.Labels[ci+1]; got != c {
			t.Fatalf("%s: column %d is %q, want %q", raw, ci, got, c)
		}
		for bi, want := range vals[ci] {
			got := r.Data[ci+1][bi]
			if math.IsNaN(want) != (got == nil) || (got != nil && math.Abs(*got-want) > 1e-9*max(1, math.Abs(want))) {
				t.Fatalf("%s: series %q bucket %d (t=%d): got %v, want %v", raw, c, bi, times[bi], deref(got), want)
			}
		}
	}
	if (first == 0) != (r.First == nil) || (r.First != nil && *r.First != (store.ID{Epoch: ts.store.Epoch(), Seq: first}).String()) {
		t.Fatalf("%s: first %v, want seq %d", raw, deref(r.First), first)
	}
	if r.Last != ts.store.Head().String() {
		t.Fatalf("%s: last %s, want the head %s", raw, r.Last, ts.store.Head())
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestQueryMatchesBruteForce compares random queries over random data with a
// brute-force reference, answered from memory and, with a tiny index, from
// the store.
func TestQueryMatchesBruteForce(t *testing.T) {
	for _, tc := range []struct {
		name        string
		indexFrames int
		loadMax     int
		fromStore   bool
	}{{"memory", 0, 0, false}, {"store: evicted from memory", 8, 0, true}, {"store: older than Load read back", 0, 50, true}} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, uint64(tc.indexFrames)))
			st := openStore(t, bolt.Options{})
			pts := randomData(t, st, rng, 600, t0)
			now := pts[len(pts)-1].ms/1000 + 5
			ts := newTestServer(t, st, testCfg(), Options{IndexFrames: tc.indexFrames, LoadMaxFrames: tc.loadMax,
				Now: func() time.Time { return time.Unix(now, 0) }})
			for range 150 {
				raw, p := randomQuery(rng, now, 900)
				checkAgainstReference(t, ts, pts, raw, p)
			}
			if scans := testutil.ToFloat64(ts.api.m.storeScans); (scans > 0) != tc.fromStore {
				t.Fatalf("store scans %v, want them: %v", scans, tc.fromStore)
			}
		})
	}
}

// TestQueryLiveMatchesLoaded: an index fed by OnCommit and one rebuilt by
// Load from the same store answer alike.
func TestQueryLiveMatchesLoaded(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	st := openStore(t, bolt.Options{})
	var now int64
	nowf := func() time.Time { return time.Unix(now, 0) }
	live := newTestServer(t, st, testCfg(), Options{Now: nowf})
	pts := randomData(t, st, rng, 400, t0)
	now = pts[len(pts)-1].ms/1000 + 5
	loaded := newTestServer(t, st, testCfg(), Options{Now: nowf})
	for range 50 {
		raw, _ := randomQuery(rng, now, 600)
		_, a := get(t, live.url+"/api/v1/query?"+raw)
		_, b := get(t, loaded.url+"/api/v1/query?"+raw)
		if string(a) != string(b) {
			t.Fatalf("%s:\nlive   %s\nloaded %s", raw, a, b)
		}
	}
}

// TestQueryBucketsStayAligned: as the window advances, bucket start times
// stay multiples of the step and whole buckets keep their values.
func TestQueryBucketsStayAligned(t *testing.T) {
	st := openStore(t, bolt.Options{})
	var now int64
	ts := newTestServer(t, st, testCfg(), Options{Now: func() time.Time { return time.Unix(now, 0) }})
	base := t0.Unix()
	appendFrames(t, st, "cpu", 900, func(i int) time.Time { return time.Unix(base+int64(i), 0) })
	var prev queryResp
	for adv := int64(0); adv < 120; adv += 7 {
		now = base + 600 + adv
		var r queryResp
		getJSON(t, ts.url+"/api/v1/query?after=-600&points=60&series=cpu_usage_ratio", &r)
		if r.Step != 10 || r.Points > 60 {
			t.Fatalf("step %d points %d", r.Step, r.Points)
		}
		for i, tm := range r.Data[0] {
			if int64(*tm)%r.Step != 0 {
				t.Fatalf("bucket %d starts at %v, not a multiple of %d", i, *tm, r.Step)
			}
		}
		if prev.Data != nil {
			// Every bucket of the previous answer but its last (then partial)
			// has the same value now.
			for i := 0; i+1 < len(prev.Data[0]); i++ {
				j := slices.IndexFunc(r.Data[0], func(x *float64) bool { return *x == *prev.Data[0][i] })
				if j < 0 {
					continue // left the window
				}
				if deref(r.Data[1][j]) != deref(prev.Data[1][i]) {
					t.Fatalf("bucket t=%v changed from %v to %v as the window advanced", *prev.Data[0][i], deref(prev.Data[1][i]), deref(r.Data[1][j]))
				}
			}
		}
		prev = r
	}
}

func TestQueryCaps(t *testing.T) {
	st := openStore(t, bolt.Options{})
	cfg := testCfg()
	cfg.QueryMaxPoints, cfg.QueryMaxFrames = 50, 100
	var now int64
	ts := newTestServer(t, st, cfg, Options{Now: func() time.Time { return time.Unix(now, 0) }})
	base := t0.Unix()
	appendFrames(t, st, "cpu", 300, func(i int) time.Time { return time.Unix(base+int64(i), 0) })
	now = base + 299
	var r queryResp
	getJSON(t, ts.url+"/api/v1/query?after=-40&points=40", &r)
	if r.Capped || r.Points != 40 || r.Step != 1 {
		t.Fatalf("small query: capped %v points %d", r.Capped, r.Points)
	}
	getJSON(t, ts.url+"/api/v1/query?after=-40&points=5000", &r)
	if !r.Capped || r.Points > 50 {
		t.Fatalf("points over the max: capped %v points %d", r.Capped, r.Points)
	}
	getJSON(t, ts.url+"/api/v1/query?after=-250&points=50", &r)
	if !r.Capped {
		t.Fatal("250 frames with query_max_frames=100: not capped")
	}
	// The newest part is kept.
	if v := r.Data[1][len(r.Data[1])-1]; v == nil {
		t.Fatal("capped query lost its newest bucket")
	}
	if v := r.Data[1][0]; v != nil {
		t.Fatalf("capped query kept its oldest bucket: %v", *v)
	}
}

func TestUnitOf(t *testing.T) {
	for name, want := range map[string]string{
		"cpu_usage_ratio": "ratio", "disk_read_bytes": "bytes", "uptime_seconds": "seconds",
		"net_received_bytes_per_second": "bytes/s", "context_switches_per_second": "switches/s",
		"interrupts_total_per_second": "interrupts/s", "http_requests_total": "count", "load1": "",
		"gc_pause_seconds_per_second": "seconds/s",
	} {
		if got := unitOf(name); got != want {
			t.Errorf("unitOf(%q) = %q, want %q", name, got, want)
		}
	}
}
