package collectors

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"sync"
	"time"
)

// errTimeout is recorded when a collect outlives its timeout.
var errTimeout = errors.New("collectors: collect timed out")

// Run starts one goroutine per job and one committer goroutine that hands
// batches to sink, and blocks until ctx is done. Before it returns, every job
// goroutine has stopped, the batches already collected have been offered to
// sink in a final Append, and the committer has stopped. Run returns nil
// after a normal shutdown. It must be called at most once.
//
// A job whose collect ignores its context keeps its own goroutine (and Run's
// return) waiting; all built-in collectors honour it.
func (s *Set) Run(ctx context.Context, sink Sink) error {
	if sink == nil {
		return errors.New("collectors: nil sink")
	}
	// The queue is the only buffer between jobs and the sink. Jobs never
	// block on it: a full queue means the sink is stuck, and new batches
	// are dropped and counted instead.
	queue := make(chan Batch, s.queue)
	var jobs sync.WaitGroup
	for _, j := range s.jobs {
		jobs.Go(func() { s.runJob(ctx, j, queue) })
	}
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		s.commit(queue, sink)
	}()
	jobs.Wait()
	close(queue) // no sender is left
	<-committed
	return nil
}

// runJob ticks j until ctx is done.
//
// Scheduling: the wait for the next tick is computed from the wall clock (so
// ticks of all jobs fall on multiples of their interval, aligned to the
// second) but waited for with a monotonic timer. Each wait is at most about
// one interval, whatever the wall clock does, so a clock jump causes neither
// a burst of catch-up ticks nor a long stall. A collect that overruns its
// interval skips the ticks it missed.
func (s *Set) runJob(ctx context.Context, j *job, out chan<- Batch) {
	iv := j.info.Interval
	timer := time.NewTimer(nextWait(time.Now(), iv, time.Time{}))
	defer timer.Stop()
	var last time.Time // the previous tick's aligned time
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		now := time.Now()
		tick := alignTick(now, iv)
		samples := s.collectOnce(ctx, j, now)
		if samples != nil && ctx.Err() == nil {
			select {
			case out <- Batch{Topic: j.info.Topic, Time: tick, Samples: samples}:
			default:
				s.m.dropped.WithLabelValues(j.info.Collector).Inc()
				s.log.Warn("collector batch dropped: sink not keeping up", "collector", j.info.Collector)
			}
		}
		last = tick
		timer.Reset(nextWait(time.Now(), iv, last))
	}
}

// alignTick returns the interval boundary nearest to now: the timer fires at
// (or just after) a boundary, and the batch carries the boundary itself so
// that jobs ticking together carry equal times. Alignment is relative to the
// zero time, which is aligned to the second, minute, hour and day.
func alignTick(now time.Time, iv time.Duration) time.Time {
	return now.Round(iv)
}

// nextWait returns how long to wait from now for the next interval boundary
// after the last tick. It is never more than 1.5 intervals and never less
// than a microsecond.
func nextWait(now time.Time, iv time.Duration, last time.Time) time.Duration {
	next := now.Truncate(iv).Add(iv)
	if !last.IsZero() && !next.After(last) && last.Sub(now) < iv {
		// The timer fired a hair before the boundary by the wall clock
		// (clock slew): do not tick the same boundary twice.
		next = last.Add(iv)
	}
	d := next.Sub(now)
	return max(min(d, iv+iv/2), time.Microsecond)
}

// collectOnce runs one collect of j with its timeout, in a child goroutine so
// that a timeout is logged and counted when it happens and a panic is
// recovered. It waits for the child in any case: a job never has two collects
// running. It returns nil when there is nothing to publish.
func (s *Set) collectOnce(ctx context.Context, j *job, now time.Time) []Sample {
	name := j.info.Collector
	cctx, cancel := context.WithTimeout(ctx, j.info.Timeout)
	defer cancel()
	type result struct {
		samples []Sample
		err     error
		panic   any
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			if p := recover(); p != nil {
				r = result{panic: p}
				s.log.Error("collector panicked", "collector", name, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			}
			done <- r
		}()
		r.samples, r.err = j.c.collect(cctx, now)
	}()
	var r result
	select {
	case r = <-done:
	case <-cctx.Done():
		if ctx.Err() == nil {
			s.log.Warn("collector timed out", "collector", name, "timeout", j.info.Timeout)
		}
		r = <-done
		if r.err == nil && r.panic == nil && ctx.Err() == nil {
			r.err = errTimeout
		}
	}
	s.m.duration.WithLabelValues(name).Set(time.Since(now).Seconds())
	if ctx.Err() == nil {
		j.record(r.err, r.panic)
	}
	switch {
	case r.panic != nil:
		s.m.panics.WithLabelValues(name).Inc()
		s.m.errors.WithLabelValues(name).Inc()
		s.m.samples.WithLabelValues(name).Set(0)
		return nil
	case r.err != nil && ctx.Err() == nil:
		s.m.errors.WithLabelValues(name).Inc()
		if !errors.Is(r.err, errTimeout) {
			s.log.Warn("collect failed", "collector", name, "err", r.err)
		}
	}
	samples := finite(r.samples)
	s.m.samples.WithLabelValues(name).Set(float64(len(samples)))
	if len(samples) == 0 {
		return nil
	}
	return samples
}

// finite removes NaN and ±Inf values in place: they are not JSON numbers and
// cannot be charted.
func finite(in []Sample) []Sample {
	out := in[:0]
	for _, x := range in {
		if !math.IsNaN(x.Value) && !math.IsInf(x.Value, 0) {
			out = append(out, x)
		}
	}
	return out
}

// commit hands batches from in to sink until in is closed. After the first
// batch of a group arrives it gathers whatever else arrives within the gather
// window (the other collectors of the same tick) and appends them in one
// call, so one tick is one store transaction.
func (s *Set) commit(in <-chan Batch, sink Sink) {
	const maxGroup = 256 // bounds one transaction when a fast job floods the queue
	var group []Batch
	for first := range in {
		group = append(group[:0], first)
		timer := time.NewTimer(s.gather)
		open := true
	gather:
		for len(group) < maxGroup {
			select {
			case b, ok := <-in:
				if !ok {
					open = false
					break gather
				}
				group = append(group, b)
			case <-timer.C:
				break gather
			}
		}
		timer.Stop()
		s.append(sink, group)
		clear(group) // do not pin samples until the next tick
		if !open {
			return
		}
	}
}

func (s *Set) append(sink Sink, group []Batch) {
	// The sink owns the slice it is handed.
	batches := make([]Batch, len(group))
	copy(batches, group)
	s.m.sinkBatches.Add(float64(len(batches)))
	if err := sink.Append(batches); err != nil {
		s.m.sinkErrors.Inc()
		s.log.Error("append batches", "batches", len(batches), "err", err)
	}
}
