package push

import (
	"math"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/common/model"
)

// FuzzParse: whatever the body, Parse never panics, and what it accepts is
// fully valid: names by Prometheus rules, finite values, UTF-8 labels, no
// more than the sample limit.
func FuzzParse(f *testing.F) {
	f.Add(true, []byte(`{"a": 1}`))
	f.Add(true, []byte(`{"samples":[{"name":"x","labels":{"k":"<img>\u2028"},"value":1}]}`))
	f.Add(false, []byte("# TYPE a counter\na_total{x=\"y\"} 1\n"))
	f.Add(false, []byte("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n"))
	f.Add(false, []byte("a NaN\n"))
	f.Fuzz(func(t *testing.T, isJSON bool, body []byte) {
		mt := MediaText
		if isJSON {
			mt = MediaJSON
		}
		samples, err := Parse(mt, body, 100)
		if err != nil {
			if err.Status < 400 || err.Code == "" || err.Message == "" {
				t.Fatalf("bad error %+v", err)
			}
			return
		}
		if len(samples) == 0 || len(samples) > 100 {
			t.Fatalf("%d samples", len(samples))
		}
		for _, s := range samples {
			if !model.LegacyValidation.IsValidMetricName(s.Name) || math.IsNaN(s.Value) || math.IsInf(s.Value, 0) {
				t.Fatalf("invalid sample accepted: %+v", s)
			}
			for k, v := range s.Labels {
				if !validLabelName(k) || !utf8.ValidString(v) {
					t.Fatalf("invalid label accepted: %q=%q", k, v)
				}
			}
		}
	})
}
