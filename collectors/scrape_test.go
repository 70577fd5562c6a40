package collectors

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"livedash/config"
)

// exposition returns a text-format body whose counters grow with step.
func exposition(step int) string {
	return fmt.Sprintf(`# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{code="200",path="/a\"b\\c\nd"} %d
http_requests_total{code="500",path="/"} %d
# TYPE temperature_celsius gauge
temperature_celsius{target="cpu-socket"} 41.5
# TYPE queue_depth untyped
queue_depth 7
# TYPE rpc_seconds summary
rpc_seconds{quantile="0.5"} 0.2
rpc_seconds{quantile="0.99"} 0.9
rpc_seconds_sum %g
rpc_seconds_count %d
# TYPE req_seconds histogram
req_seconds_bucket{le="0.1"} %d
req_seconds_bucket{le="0.5"} %d
req_seconds_bucket{le="1"} %d
req_seconds_bucket{le="+Inf"} %d
req_seconds_sum %g
req_seconds_count %d
# TYPE weird gauge
weird NaN
`, 100+10*step, 5+step,
		10.0+3*float64(step), 20+10*step,
		50+60*step, 80+80*step, 95+95*step, 100+100*step, 30.0+25*float64(step), 100+100*step)
}

const openMetricsBody = `# TYPE build_info gauge
build_info{version="1.2.3",label="a\\b \"q\""} 1
# TYPE jobs counter
jobs_total{queue="mail"} %d
# TYPE lat histogram
lat_bucket{le="1.0"} %d
lat_bucket{le="+Inf"} %d
lat_sum %d
lat_count %d
# EOF
`

func scrapeTargetFor(tb testing.TB, url string, mutate func(*config.Scrape)) *scrapeTarget {
	tb.Helper()
	cfg := config.Default().Collectors
	cfg.Prometheus.Targets = []config.ScrapeTarget{{Name: "app", URL: url}}
	if mutate != nil {
		mutate(&cfg.Prometheus)
	}
	jobs, err := newScrape(&cfg, testEnv(tb, ""))
	if err != nil || len(jobs) != 1 {
		tb.Fatalf("newScrape: %v", err)
	}
	st := jobs[0].c.(*scrapeTarget)
	tb.Cleanup(st.client.CloseIdleConnections)
	return st
}

// scrapeTwice scrapes a server that advances one step per request, one
// second apart, and returns the formatted samples of each scrape.
func scrapeTwice(t *testing.T, st *scrapeTarget) (first, second string) {
	t.Helper()
	now := time.Now()
	s1, err := st.collect(context.Background(), now)
	if err != nil {
		t.Fatalf("first scrape: %v", err)
	}
	s2, err := st.collect(context.Background(), now.Add(time.Second))
	if err != nil {
		t.Fatalf("second scrape: %v", err)
	}
	return formatSamples(s1), formatSamples(s2)
}

func TestScrapeText(t *testing.T) {
	var step atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Accept"), "text/plain") {
			t.Errorf("Accept = %q, want text first", r.Header.Get("Accept"))
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		fmt.Fprint(w, exposition(int(step.Add(1))-1))
	}))
	defer srv.Close()
	st := scrapeTargetFor(t, srv.URL, nil)
	first, second := scrapeTwice(t, st)
	golden(t, "scrape_text.txt", "# first\n"+first+"\n# second\n"+second+"\n")
}

func TestScrapeOpenMetrics(t *testing.T) {
	var step atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := int(step.Add(1))
		w.Header().Set("Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
		fmt.Fprintf(w, openMetricsBody, 10*n, 4*n, 5*n, 3*n, 5*n)
	}))
	defer srv.Close()
	st := scrapeTargetFor(t, srv.URL, nil)
	first, second := scrapeTwice(t, st)
	golden(t, "scrape_openmetrics.txt", "# first\n"+first+"\n# second\n"+second+"\n")
}

func TestScrapeSelector(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, exposition(1))
	}))
	defer srv.Close()
	st := scrapeTargetFor(t, srv.URL, func(c *config.Scrape) {
		c.Targets[0].Match = "^(http_requests_total|queue_depth)$"
		c.Targets[0].MatchLabels = map[string]string{"code": "^5..$"}
	})
	_, second := scrapeTwice(t, st)
	if second != `http_requests_per_second{code="500",path="/",target="app"} 0` {
		t.Errorf("selected:\n%s", second)
	}
}

func TestScrapeBadTargets(t *testing.T) {
	for _, tc := range []struct {
		name, ctype, body string
		status            int
	}{
		{"malformed text", "text/plain; version=0.0.4", "metric{unclosed=\"x 1\n", 200},
		{"bad value", "text/plain", "metric abc\n", 200},
		{"openmetrics without EOF", "application/openmetrics-text; version=1.0.0", "# TYPE a gauge\na 1\n", 200},
		{"html error page", "text/html", "<html><body>oops</body></html>", 200},
		{"server error", "text/plain", "", 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", tc.ctype)
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			}))
			defer srv.Close()
			st := scrapeTargetFor(t, srv.URL, nil)
			samples, err := st.collect(context.Background(), time.Now())
			if err == nil || len(samples) != 0 {
				t.Fatalf("collect = %d samples, %v; want an error and nothing", len(samples), err)
			}
			if v := counterValue(t, st.up); v != 0 {
				t.Errorf("up = %v", v)
			}
			if v := counterValue(t, st.errCount); v != 1 {
				t.Errorf("errors = %v", v)
			}
		})
	}
}

// TestScrapeHugeTarget: a target exposing 200,000 series over a 2 MiB body
// cap keeps max_series, counts the rest, and marks the body truncated.
func TestScrapeHugeTarget(t *testing.T) {
	var body strings.Builder
	body.WriteString("# TYPE big gauge\n")
	for i := range 200_000 {
		fmt.Fprintf(&body, "big{i=\"%d\"} %d\n", i, i)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, body.String())
	}))
	defer srv.Close()
	st := scrapeTargetFor(t, srv.URL, func(c *config.Scrape) {
		c.MaxSeries = 1000
		c.MaxBodyBytes = 2 << 20
	})
	samples, err := st.collect(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != 1000 {
		t.Errorf("%d samples, want the cap 1000", len(samples))
	}
	dropped := counterValue(t, st.dropped)
	if dropped < 50_000 || dropped >= 200_000 {
		t.Errorf("dropped = %v, want the series read beyond the cap", dropped)
	}
	if v := counterValue(t, st.cut); v != 1 {
		t.Errorf("truncated = %v, want 1", v)
	}
	if len(st.rates.prev) > 1000 {
		t.Errorf("rate state for %d series: series beyond the cap must cost nothing", len(st.rates.prev))
	}
}
