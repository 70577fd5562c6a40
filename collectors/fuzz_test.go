package collectors

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"livedash/config"
)

// FuzzParseExecOutput: whatever a command prints, the parser returns only
// samples with valid metric names and finite values, never panics, and
// reports a problem as an error wrapping errParse.
func FuzzParseExecOutput(f *testing.F) {
	for _, s := range []string{
		"jobs_running 3\nqueue_depth 17\n", "# comment\n\nx 1.5e3\n", `{"a": 1, "b": 2.5}`,
		"x NaN\ny +Inf\n", "bad-name 1\n", "x 1 2\n", `{"a": "text"}`, `{"a": 1`, "\x00\xff 1\n", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := parseExecOutput(data)
		if err != nil && !errors.Is(err, errParse) {
			t.Fatalf("error %v does not wrap errParse", err)
		}
		for _, s := range out {
			if !model.LegacyValidation.IsValidMetricName(s.Name) {
				t.Fatalf("invalid name %q accepted", s.Name)
			}
			if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) {
				t.Fatalf("%s = %v accepted", s.Name, s.Value)
			}
			if len(s.Labels) != 0 {
				t.Fatalf("labels from a command's output: %v", s.Labels)
			}
		}
	})
}

// FuzzDecodeScrape: an exporter's body, in text or OpenMetrics format, is
// decoded whole or refused; what is decoded flattens (twice, so rates are
// computed) into samples with finite values, never more than the target's
// series cap, without a panic.
func FuzzDecodeScrape(f *testing.F) {
	f.Add([]byte(exposition(1)), false)
	f.Add([]byte("# TYPE x counter\nx_total 1\n# EOF\n"), true)
	f.Add([]byte("x{a=\"b\"} 1\ny 2\n"), false)
	f.Add([]byte("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 3\nh_sum 2\nh_count 3\n"), false)
	f.Add([]byte("x{a=\"\\q\"} 1\n"), false)
	st := scrapeTargetFor(f, "http://127.0.0.1:9/metrics", func(c *config.Scrape) { c.MaxSeries = 50 })
	f.Fuzz(func(t *testing.T, body []byte, openMetrics bool) {
		format := expfmt.NewFormat(expfmt.TypeTextPlain)
		if openMetrics {
			format = expfmt.NewFormat(expfmt.TypeOpenMetrics)
		}
		fams, err := decodeFamilies(body, format)
		if err != nil {
			return
		}
		now := time.Unix(1764255600, 0)
		for i := range 2 {
			out := st.flatten(fams, now.Add(time.Duration(i)*time.Second))
			if len(out) > 50 {
				t.Fatalf("%d samples over a cap of 50", len(out))
			}
			for _, s := range out {
				if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) {
					t.Fatalf("%s = %v", s.Name, s.Value)
				}
			}
		}
	})
}
