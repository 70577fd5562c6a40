package collectors

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"livedash/config"
)

// syntheticCollector generates synthetic_signal{series="NNNN"}: N smooth
// waves (a sine with a per-series phase and period, plus a little noise),
// for demos and benchmarks. With payload_bytes > 0 every sample carries a
// label payload="xxx…" of that size, to make frames as large as a benchmark
// needs.
type syntheticCollector struct {
	labels []map[string]string // one shared, read-only map per series
	rng    *rand.Rand
	start  time.Time
}

func newSynthetic(c *config.Collectors, _ env) ([]*job, error) {
	n := c.Synthetic.Series
	if n <= 0 {
		n = config.Default().Collectors.Synthetic.Series
	}
	pad := strings.Repeat("x", max(c.Synthetic.PayloadBytes, 0))
	s := &syntheticCollector{labels: make([]map[string]string, n), rng: rand.New(rand.NewPCG(1, 2))}
	for i := range s.labels {
		l := map[string]string{"series": fmt.Sprintf("%04d", i)}
		if pad != "" {
			l["payload"] = pad
		}
		s.labels[i] = l
	}
	return []*job{{c: s}}, nil
}

func (c *syntheticCollector) collect(_ context.Context, now time.Time) ([]Sample, error) {
	if c.start.IsZero() {
		c.start = now
	}
	t := now.Sub(c.start).Seconds()
	out := make([]Sample, len(c.labels))
	for i, l := range c.labels {
		period := 20 + float64(i%7)*10 // seconds
		phase := float64(i) * 0.7
		v := 50 + 40*math.Sin(2*math.Pi*t/period+phase) + c.rng.NormFloat64()
		out[i] = Sample{Name: "synthetic_signal", Labels: l, Value: v}
	}
	return out, nil
}
