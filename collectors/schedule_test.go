package collectors

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

type funcCollector func(ctx context.Context, now time.Time) ([]Sample, error)

func (f funcCollector) collect(ctx context.Context, now time.Time) ([]Sample, error) {
	return f(ctx, now)
}

func one(v float64) []Sample { return []Sample{{Name: "x", Value: v}} }

func testJob(topic string, iv time.Duration, f funcCollector) *job {
	return &job{info: Info{Topic: topic, Collector: topic, Interval: iv, Timeout: iv}, c: f}
}

func newTestSet(tb testing.TB, jobs ...*job) *Set {
	tb.Helper()
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		tb.Fatal(err)
	}
	return &Set{jobs: jobs, log: quietLogger(), m: m, queue: 64, gather: 5 * time.Millisecond}
}

// recordSink records every Append with the (fake) time it happened.
type recordSink struct {
	mu    sync.Mutex
	calls [][]Batch
	block chan struct{} // if non-nil, Append waits for it to close
	err   error
}

func (r *recordSink) Append(b []Batch) error {
	if r.block != nil {
		<-r.block
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, b)
	return r.err
}

func (r *recordSink) byTopic() map[string][]Batch {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]Batch{}
	for _, call := range r.calls {
		for _, b := range call {
			out[b.Topic] = append(out[b.Topic], b)
		}
	}
	return out
}

func counterValue(tb testing.TB, c prometheus.Collector) float64 {
	tb.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		tb.Fatal(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// runFor runs s in the bubble for d after starting at an unaligned instant,
// then stops it and checks that Run returned.
func runFor(t *testing.T, s *Set, sink Sink, offset, d time.Duration) {
	t.Helper()
	time.Sleep(offset)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, sink) }()
	time.Sleep(d)
	cancel()
	synctest.Wait()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	default:
		t.Fatal("Run did not return after cancel: a goroutine is still running")
	}
}

func TestScheduleIntervalsAndAlignment(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestSet(t,
			testJob("a", time.Second, func(context.Context, time.Time) ([]Sample, error) { return one(1), nil }),
			testJob("b", 2*time.Second, func(context.Context, time.Time) ([]Sample, error) { return one(2), nil }),
			testJob("c", 250*time.Millisecond, func(context.Context, time.Time) ([]Sample, error) { return one(3), nil }),
		)
		sink := &recordSink{}
		start := time.Now()
		runFor(t, s, sink, 300*time.Millisecond, 5*time.Second) // runs 0.3s → 5.3s

		got := sink.byTopic()
		for topic, want := range map[string]int{"a": 5, "b": 2, "c": 20} {
			if n := len(got[topic]); n != want {
				t.Errorf("topic %s: %d batches, want %d", topic, n, want)
			}
		}
		for topic, iv := range map[string]time.Duration{"a": time.Second, "b": 2 * time.Second, "c": 250 * time.Millisecond} {
			for _, b := range got[topic] {
				if off := b.Time.Sub(start) % iv; off != 0 {
					t.Errorf("topic %s batch at %v: not aligned to %v", topic, b.Time.Sub(start), iv)
				}
			}
		}
		// a, b and c tick together at 2s and 4s: one Append each.
		sink.mu.Lock()
		defer sink.mu.Unlock()
		together := 0
		for _, call := range sink.calls {
			if len(call) == 3 {
				together++
				if !call[0].Time.Equal(call[1].Time) || !call[1].Time.Equal(call[2].Time) {
					t.Errorf("grouped batches have different times: %v", call)
				}
			}
		}
		if together != 2 {
			t.Errorf("%d appends carried a, b and c together, want 2", together)
		}
	})
}

func TestScheduleSlowCollectorDoesNotDelayOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow := testJob("slow", time.Second, func(ctx context.Context, _ time.Time) ([]Sample, error) {
			select { // honours ctx, as collectors must
			case <-time.After(10 * time.Second):
				return one(1), nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		})
		fast := testJob("fast", time.Second, func(context.Context, time.Time) ([]Sample, error) { return one(1), nil })
		s := newTestSet(t, slow, fast)
		sink := &recordSink{}
		runFor(t, s, sink, 0, 5*time.Second+time.Millisecond)
		got := sink.byTopic()
		if n := len(got["fast"]); n != 5 {
			t.Errorf("fast: %d batches, want 5", n)
		}
		if n := len(got["slow"]); n != 0 {
			t.Errorf("slow: %d batches, want 0", n)
		}
		// Every tick of slow times out after its 1s timeout; overrun skips
		// the boundary it ran into, so it runs at 1s, 3s and starts at 5s.
		if v := counterValue(t, s.m.errors.WithLabelValues("slow")); v < 2 {
			t.Errorf("slow errors = %v, want ≥ 2 timeouts", v)
		}
		if v := counterValue(t, s.m.errors.WithLabelValues("fast")); v != 0 {
			t.Errorf("fast errors = %v", v)
		}
	})
}

func TestSchedulePanicIsolated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls int
		bad := testJob("bad", time.Second, func(context.Context, time.Time) ([]Sample, error) {
			calls++
			panic("boom")
		})
		good := testJob("good", time.Second, func(context.Context, time.Time) ([]Sample, error) { return one(1), nil })
		s := newTestSet(t, bad, good)
		sink := &recordSink{}
		runFor(t, s, sink, 0, 3*time.Second+time.Millisecond)
		if n := len(sink.byTopic()["good"]); n != 3 {
			t.Errorf("good: %d batches, want 3", n)
		}
		if calls != 3 {
			t.Errorf("panicking collector called %d times, want 3 (retried every tick)", calls)
		}
		if v := counterValue(t, s.m.panics.WithLabelValues("bad")); v != 3 {
			t.Errorf("panics = %v, want 3", v)
		}
	})
}

func TestScheduleFailingRetriedAndPartialKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := 0
		flaky := testJob("flaky", time.Second, func(context.Context, time.Time) ([]Sample, error) {
			n++
			if n%2 == 1 {
				return nil, errors.New("flaky")
			}
			return []Sample{{Name: "ok", Value: 1}, {Name: "nan", Value: nan()}, {Name: "inf", Value: inf()}}, nil
		})
		s := newTestSet(t, flaky)
		sink := &recordSink{}
		runFor(t, s, sink, 0, 4*time.Second+time.Millisecond)
		bs := sink.byTopic()["flaky"]
		if len(bs) != 2 {
			t.Fatalf("%d batches, want 2", len(bs))
		}
		for _, b := range bs {
			if len(b.Samples) != 1 || b.Samples[0].Name != "ok" {
				t.Errorf("NaN/Inf not removed: %+v", b.Samples)
			}
		}
		if v := counterValue(t, s.m.errors.WithLabelValues("flaky")); v != 2 {
			t.Errorf("errors = %v, want 2", v)
		}
	})
}

func TestScheduleStuckSinkDropsAndCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestSet(t, testJob("a", 100*time.Millisecond, func(context.Context, time.Time) ([]Sample, error) { return one(1), nil }))
		s.queue = 4
		sink := &recordSink{block: make(chan struct{}), err: errors.New("disk full")}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx, sink) }()
		time.Sleep(2 * time.Second) // 20 ticks against a stuck sink
		dropped := counterValue(t, s.m.dropped.WithLabelValues("a"))
		if dropped < 10 {
			t.Errorf("dropped = %v, want the ticks beyond the queue counted", dropped)
		}
		cancel()
		close(sink.block) // the sink recovers; Run makes its final appends
		synctest.Wait()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if v := counterValue(t, s.m.sinkErrors); v < 1 {
			t.Errorf("sink errors = %v", v)
		}
	})
}

func TestNextWaitBounded(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	iv := time.Second
	for _, tc := range []struct {
		name      string
		now, last time.Time
		want      time.Duration
	}{
		{"first", base.Add(300 * time.Millisecond), time.Time{}, 700 * time.Millisecond},
		{"on time", base.Add(time.Second + time.Millisecond), base.Add(time.Second), 999 * time.Millisecond},
		{"fired early by wall clock", base.Add(time.Second - time.Microsecond), base.Add(time.Second), time.Second + time.Microsecond},
		{"clock jumped back an hour", base.Add(-time.Hour + 400*time.Millisecond), base, 600 * time.Millisecond},
		{"clock jumped forward a day", base.Add(24*time.Hour + 100*time.Millisecond), base, 900 * time.Millisecond},
		{"collect overran", base.Add(3*time.Second + 200*time.Millisecond), base.Add(time.Second), 800 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := nextWait(tc.now, iv, tc.last); got != tc.want {
				t.Errorf("nextWait = %v, want %v", got, tc.want)
			}
		})
	}
}
