package api

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"livedash/dashboard/apierr"
	"livedash/dashboard/store"
	"livedash/dashboard/store/bolt"
)

// TestBadParameters: every bad value of every parameter gets the documented
// 4xx and an error body naming the parameter (and, for values, the range).
func TestBadParameters(t *testing.T) {
	st := openStore(t, bolt.Options{})
	ts := newTestServer(t, st, testCfg(), Options{})
	appendFrames(t, st, "cpu", 3, nil)
	for _, tc := range []struct {
		query, code string
		mentions    []string
	}{
		{"/api/v1/frames?limit=1e9", "invalid_parameter", []string{"limit", "1 to 1000"}},
		{"/api/v1/frames?limit=1001", "invalid_parameter", []string{"limit", "1 to 1000"}},
		{"/api/v1/frames?limit=-1", "invalid_parameter", []string{"limit"}},
		{"/api/v1/frames?limit=0", "invalid_parameter", []string{"limit"}},
		{"/api/v1/frames?limit=abc", "invalid_parameter", []string{"limit", `"abc"`}},
		{"/api/v1/frames?limit=+5", "invalid_parameter", []string{"limit"}},
		{"/api/v1/frames?limit=2.5", "invalid_parameter", []string{"limit"}},
		{"/api/v1/frames?after=zzz", "invalid_parameter", []string{"after", "oldest"}},
		{"/api/v1/frames?after=0000000000000001-01", "invalid_parameter", []string{"after"}},
		{"/api/v1/frames?after=0000000000000001-18446744073709551616", "invalid_parameter", []string{"after"}},
		{"/api/v1/frames?after=" + strings.Repeat("a", 100), "invalid_parameter", []string{"after", "64 bytes"}},
		{"/api/v1/frames?after=%00%0d%0a", "invalid_parameter", []string{"after", `\x00`}},
		{"/api/v1/frames?wait=-1s", "invalid_parameter", []string{"wait", "non-negative"}},
		{"/api/v1/frames?wait=-5", "invalid_parameter", []string{"wait"}},
		{"/api/v1/frames?wait=soon", "invalid_parameter", []string{"wait", "clamped to 1m0s"}},
		{"/api/v1/frames?wait=1e9", "invalid_parameter", []string{"wait"}},
		{"/api/v1/frames?topics=a,,b", "invalid_parameter", []string{"topics"}},
		{"/api/v1/frames?topics=" + strings.Repeat("x", 256), "invalid_parameter", []string{"topics", "255"}},
		{"/api/v1/frames?limit=1&limit=2", "duplicate_parameter", []string{"limit"}},
		{"/api/v1/frames?after=oldest&after=oldest", "duplicate_parameter", []string{"after"}},
		{"/api/v1/frames?lmit=5", "unknown_parameter", []string{`"lmit"`, "after, topics, limit, wait"}},
		{"/api/v1/frames?limit=%zz", "invalid_parameter", []string{"limit", "URL encoding"}},
		{"/api/v1/frames?%zz=1", "invalid_query", []string{"URL encoding"}},
		{"/api/v1/latest?topic=cpu", "unknown_parameter", []string{`"topic"`, "topics"}},
		{"/api/v1/latest?topics=a&topics=b", "duplicate_parameter", []string{"topics"}},
		{"/api/v1/series?x=1", "unknown_parameter", []string{`"x"`}},
		{"/api/v1/openapi.json?x=1", "unknown_parameter", []string{`"x"`, "none"}},
		{"/api/v1/query?points=0", "invalid_parameter", []string{"points", "from 1"}},
		{"/api/v1/query?points=1e9", "invalid_parameter", []string{"points"}},
		{"/api/v1/query?points=-3", "invalid_parameter", []string{"points"}},
		{"/api/v1/query?group=median", "invalid_parameter", []string{"group", "avg, min, max, last"}},
		{"/api/v1/query?after=yesterday", "invalid_parameter", []string{"after", "Unix seconds"}},
		{"/api/v1/query?before=1.5", "invalid_parameter", []string{"before", "integer"}},
		{"/api/v1/query?before=999999999999999", "invalid_parameter", []string{"before"}},
		{"/api/v1/query?after=10&before=5", "invalid_parameter", []string{"after", "earlier than before"}},
		{"/api/v1/query?after=0", "invalid_parameter", []string{"after", "empty"}},
		{"/api/v1/query?series=cpu{", "invalid_parameter", []string{"series", "selector"}},
		{"/api/v1/query?series=cpu{a=b}", "invalid_parameter", []string{"series", "double-quoted"}},
		{"/api/v1/query?series=1cpu", "invalid_parameter", []string{"series"}},
		{"/api/v1/query?series=a&series=b", "duplicate_parameter", []string{"series"}},
		{"/api/v1/query?step=10", "unknown_parameter", []string{`"step"`}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			code, body := get(t, ts.url+tc.query)
			if code != 400 {
				t.Fatalf("status %d, want 400: %s", code, body)
			}
			var b apierr.Body
			if err := json.Unmarshal(body, &b); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			if b.Error.Code != tc.code {
				t.Fatalf("code %q, want %q (%s)", b.Error.Code, tc.code, b.Error.Message)
			}
			for _, m := range tc.mentions {
				if !strings.Contains(b.Error.Message, m) {
					t.Errorf("message %q does not mention %q", b.Error.Message, m)
				}
			}
		})
	}
}

// TestGoodParameters: values at the edges are accepted; wait over the
// maximum is clamped to the documented maximum, not refused.
func TestGoodParameters(t *testing.T) {
	cfg := testCfg()
	for raw, want := range map[string]FramesParams{
		"":                        {Limit: 100},
		"limit=&after=&wait=":     {Limit: 100},
		"limit=1000":              {Limit: 1000},
		"wait=1h":                 {Limit: 100, Wait: 60 * time.Second, Clamped: true},
		"wait=99999999999999h":    {Limit: 100, Wait: 60 * time.Second, Clamped: true},
		"wait=30":                 {Limit: 100, Wait: 30 * time.Second},
		"wait=0":                  {Limit: 100},
		"wait=250ms":              {Limit: 100, Wait: 250 * time.Millisecond},
		"after=oldest&topics=cpu": {Limit: 100, Mode: AfterOldest, Topics: []string{"cpu"}},
		"after=9f2c41d07a3be511-1042&topics=a%2Cb,a": {Limit: 100, Mode: AfterID,
			After: store.ID{Epoch: 0x9f2c41d07a3be511, Seq: 1042}, Topics: []string{"a", "b"}},
	} {
		got, aerr := ParseFramesParams(raw, cfg)
		if aerr != nil {
			t.Errorf("%q: %v", raw, aerr)
			continue
		}
		if got.Mode != want.Mode || got.After != want.After || got.Limit != want.Limit || got.Wait != want.Wait ||
			got.Clamped != want.Clamped || strings.Join(got.Topics, ",") != strings.Join(want.Topics, ",") {
			t.Errorf("%q: got %+v, want %+v", raw, got, want)
		}
	}
	now := time.Unix(1_000_000, 0)
	for raw, want := range map[string][2]int64{
		"":                         {1_000_000 - 600, 1_000_000},
		"after=-60&before=-30":     {1_000_000 - 90, 1_000_000 - 30},
		"after=900000&before=-10":  {900000, 1_000_000 - 10},
		"after=-100&before=950000": {949900, 950000},
		"after=5&before=7":         {5, 7},
	} {
		p, aerr := ParseQueryParams(raw, cfg, now)
		if aerr != nil || p.After != want[0] || p.Before != want[1] || p.Points != 300 || p.Group != GroupAvg {
			t.Errorf("%q: got %+v %v, want after/before %v", raw, p, aerr, want)
		}
	}
}

func TestSelector(t *testing.T) {
	lbl := map[string]string{"cpu": "0", "mode": "user"}
	for sel, want := range map[string]bool{
		"cpu_usage_ratio":          true,
		"cpu_usage":                false,
		`cpu_usage_ratio{cpu="0"}`: true,
		`cpu_usage_ratio{ cpu = "0" , mode!="x", }`: true,
		`cpu_usage_ratio{cpu="1"}`:                  false,
		`{mode="user"}`:                             true,
		`{__name__="cpu_usage_ratio"}`:              true,
		`{absent=""}`:                               true,
		`{absent!=""}`:                              false,
		`{}`:                                        true,
	} {
		s, msg := ParseSelector(sel)
		if msg != "" {
			t.Errorf("%s: %s", sel, msg)
			continue
		}
		if got := s.Match("cpu_usage_ratio", lbl); got != want {
			t.Errorf("%s matches: %v, want %v", sel, got, want)
		}
	}
	for _, bad := range []string{"", "{", "a{b}", `a{b="c}`, `a{b="c"`, `a{b="c"}x`, "a b", `a{b~"c"}`, `a{b="\x"}`} {
		if _, msg := ParseSelector(bad); msg == "" {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseFramesParams(f *testing.F) {
	for _, s := range []string{"", "after=oldest&limit=5", "wait=1h", "limit=1e9&limit=2", "after=9f2c41d07a3be511-1042&topics=a,b", "%zz", "wait=99999999999999999h", "a=1&&b"} {
		f.Add(s)
	}
	cfg := testCfg()
	f.Fuzz(func(t *testing.T, raw string) {
		p, aerr := ParseFramesParams(raw, cfg)
		if aerr != nil {
			if aerr.Status != 400 || aerr.Code == "" || aerr.Message == "" {
				t.Fatalf("bad error %+v", aerr)
			}
			return
		}
		if p.Limit < 1 || p.Limit > cfg.MaxLimit || p.Wait < 0 || p.Wait > cfg.MaxWait.D() {
			t.Fatalf("out of range: %+v", p)
		}
		for _, tp := range p.Topics {
			if tp == "" || len(tp) > maxTopicLen {
				t.Fatalf("topic %q", tp)
			}
		}
	})
}

func FuzzParseQueryParams(f *testing.F) {
	for _, s := range []string{"", "series=cpu_usage_ratio{cpu=\"0\"}&after=-600&before=0&points=300&group=avg", "after=10&before=5", "points=99999999", `series={a!="\""}`, "before=-99999999999"} {
		f.Add(s)
	}
	cfg := testCfg()
	f.Fuzz(func(t *testing.T, raw string) {
		p, aerr := ParseQueryParams(raw, cfg, time.Unix(1_764_255_600, 0))
		if aerr != nil {
			if aerr.Status != 400 || aerr.Code == "" {
				t.Fatalf("bad error %+v", aerr)
			}
			return
		}
		if p.After >= p.Before || p.Points < 1 || p.Points > cfg.QueryMaxPoints {
			t.Fatalf("accepted %+v", p)
		}
		pl := makePlan(p)
		if pl.n < 1 || pl.n > p.Points || pl.step < 1 || pl.startMs > (p.After+pl.step)*1000 || pl.startMs <= (p.After-pl.step)*1000 || pl.endMs != (p.Before+1)*1000 {
			t.Fatalf("plan %+v for %+v", pl, p)
		}
	})
}

func FuzzResolveWindow(f *testing.F) {
	f.Add(int64(-600), int64(0), int64(1_764_255_600))
	f.Add(int64(1_764_255_000), int64(-10), int64(1_764_255_600))
	f.Add(int64(0), int64(0), int64(0))
	f.Fuzz(func(t *testing.T, after, before, now int64) {
		if abs(after) > timeAbsMax || abs(before) > timeAbsMax || abs(now) > timeAbsMax {
			return // the parser bounds these
		}
		from, to, ok := ResolveWindow(after, before, now)
		if ok != (from < to) {
			t.Fatalf("ok=%v for [%d,%d]", ok, from, to)
		}
		if before <= 0 && to != now+before || before > 0 && to != before {
			t.Fatalf("before %d → %d", before, to)
		}
		if after <= 0 && from != to+after || after > 0 && from != after {
			t.Fatalf("after %d → %d", after, from)
		}
	})
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{"cpu", `cpu{a="b",c!="d"}`, `{__name__="x"}`, `a{b="\"\\\n"}`, "{", `a{b=`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, msg := ParseSelector(s)
		if msg != "" {
			return
		}
		_ = sel.Match("x", map[string]string{"a": "b"})
	})
}
