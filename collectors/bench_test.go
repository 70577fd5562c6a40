package collectors

import (
	"context"
	"runtime"
	"testing"
	"time"

	"livedash/config"
)

// BenchmarkDefaultSetCollect measures one tick of every default host
// collector (plus self) against this machine's /proc, and reports CPU time
// per produced sample. Goal: ≤ 5 µs/sample.
func BenchmarkDefaultSetCollect(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("host collectors are Linux-only")
	}
	s, err := New(config.Default().Collectors, Options{Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	for _, j := range s.jobs { // prime counters so rates are produced
		_, _ = j.c.collect(ctx, now)
	}
	b.ReportAllocs()
	samples := 0
	for i := 0; b.Loop(); i++ {
		t := now.Add(time.Duration(i+1) * time.Second)
		for _, j := range s.jobs {
			out, _ := j.c.collect(ctx, t)
			samples += len(out)
		}
	}
	if samples > 0 {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(samples), "ns/sample")
		b.ReportMetric(float64(samples)/float64(b.N), "samples/tick")
	}
}

// BenchmarkSynthetic1000 is one tick of the synthetic collector at 1000
// series (at 10 Hz that is 10 ticks per second).
func BenchmarkSynthetic1000(b *testing.B) {
	cfg := config.Default().Collectors
	cfg.Synthetic.Series = 1000
	jobs, err := newSynthetic(&cfg, env{})
	if err != nil {
		b.Fatal(err)
	}
	c := jobs[0].c
	now := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_, _ = c.collect(context.Background(), now.Add(time.Duration(i)*100*time.Millisecond))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/sample")
}
