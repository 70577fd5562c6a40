package collectors

import (
	"context"
	"runtime"
	rtmetrics "runtime/metrics"
	"syscall"
	"time"

	"livedash/config"
)

// selfCollector reports livedash's own health: self_goroutines,
// self_heap_bytes (live and not yet swept heap objects), self_memory_bytes
// (all memory the Go runtime mapped), self_gc_cycles_per_second,
// self_gc_pause_ratio (share of wall time the world was stopped for GC) and
// self_cpu_usage_ratio (CPU seconds per second; 2 = two cores busy). It
// reads runtime/metrics, which does not stop the world (ReadMemStats does).
type selfCollector struct {
	samples []rtmetrics.Sample
	rates   *rates
}

var selfMetrics = []string{
	"/sched/goroutines:goroutines",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/total:bytes",
	"/gc/cycles/total:gc-cycles",
	"/sched/pauses/total/gc:seconds",
}

func newSelf(_ *config.Collectors, _ env) ([]*job, error) {
	c := &selfCollector{rates: newRates()}
	for _, name := range selfMetrics {
		c.samples = append(c.samples, rtmetrics.Sample{Name: name})
	}
	return []*job{{c: c}}, nil
}

func (c *selfCollector) collect(_ context.Context, now time.Time) ([]Sample, error) {
	rtmetrics.Read(c.samples)
	out := make([]Sample, 0, 6)
	out = append(out, Sample{Name: "self_goroutines", Value: float64(runtime.NumGoroutine())})
	if v := c.samples[1].Value; v.Kind() == rtmetrics.KindUint64 {
		out = append(out, Sample{Name: "self_heap_bytes", Value: float64(v.Uint64())})
	}
	if v := c.samples[2].Value; v.Kind() == rtmetrics.KindUint64 {
		out = append(out, Sample{Name: "self_memory_bytes", Value: float64(v.Uint64())})
	}
	c.rates.begin()
	if v := c.samples[3].Value; v.Kind() == rtmetrics.KindUint64 {
		if r, ok := c.rates.rate(seriesKey{name: "gc"}, float64(v.Uint64()), now); ok {
			out = append(out, Sample{Name: "self_gc_cycles_per_second", Value: r})
		}
	}
	if v := c.samples[4].Value; v.Kind() == rtmetrics.KindFloat64Histogram {
		if r, ok := c.rates.rate(seriesKey{name: "pause"}, histogramSum(v.Float64Histogram()), now); ok {
			out = append(out, Sample{Name: "self_gc_pause_ratio", Value: r})
		}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		if r, ok := c.rates.rate(seriesKey{name: "cpu"}, cpu, now); ok {
			out = append(out, Sample{Name: "self_cpu_usage_ratio", Value: r})
		}
	}
	c.rates.end()
	return out, nil
}

// histogramSum estimates the sum of a runtime histogram from bucket
// midpoints (the runtime keeps no exact sum of pause times).
func histogramSum(h *rtmetrics.Float64Histogram) float64 {
	var sum float64
	for i, n := range h.Counts {
		if n == 0 {
			continue
		}
		lo, hi := h.Buckets[i], h.Buckets[i+1]
		switch {
		case lo < -1e300 || hi > 1e300: // ±Inf edge: use the finite one
			if lo < -1e300 {
				lo = hi
			}
			sum += float64(n) * lo
		default:
			sum += float64(n) * (lo + hi) / 2
		}
	}
	return sum
}
