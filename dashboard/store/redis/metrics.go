package redis

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the store's health series: the ones every livedash store
// exports (livedash_store_*, as the bbolt store does, so one dashboard fits
// both) and the Redis ones (livedash_store_redis_*). A nil *metrics (no
// Registerer) is a valid no-op.
type metrics struct {
	reg prometheus.Registerer
	cs  []prometheus.Collector

	appendDur    prometheus.Histogram
	appendErrs   prometheus.Counter
	appendedC    prometheus.Counter
	skipped      prometheus.Counter
	roundTrips   *prometheus.HistogramVec
	redisErrs    *prometheus.CounterVec
	reconnects   prometheus.Counter
	connectFails prometheus.Counter
	deliveredC   prometheus.Counter
	deliverLate  prometheus.Counter
	lost         prometheus.Counter
	lagSeconds   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, s *Store) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		reg: reg,
		appendDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "livedash_store_append_duration_seconds",
			Help:    "Time to append one batch of frames: the round trip to Redis that commits them (not the wait for the tail).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		appendErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livedash_store_append_errors_total",
			Help: "Appends that failed; their frames were not stored or published.",
		}),
		appendedC: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livedash_store_appended_frames_total",
			Help: "Frames this instance committed to the store.",
		}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livedash_store_skipped_samples_total",
			Help: "Samples left out of frames because their value was NaN or infinite.",
		}),
		roundTrips: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "livedash_store_redis_roundtrip_duration_seconds",
			Help:    "Round trips to Redis by operation: append (the script), read (XRANGE), seek (time search), check (epoch and size), init.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"op"}),
		redisErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livedash_store_redis_append_errors_total",
			Help: "Appends to Redis that failed, by kind: unreachable, timeout, epoch (the ring's epoch is gone), other.",
		}, []string{"kind"}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livedash_store_redis_reconnects_total",
			Help: "Times the tail got Redis back after losing it.",
		}),
		connectFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livedash_store_redis_connect_failures_total",
			Help: "Failed attempts to reach Redis at start (each is retried with backoff).",
		}),
		deliveredC: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livedash_store_redis_delivered_frames_total",
			Help: "Frames the tail delivered to this instance (every instance's).",
		}),
		deliverLate: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livedash_store_redis_deliver_timeouts_total",
			Help: "Appends that returned before the tail delivered their frames (committed, delivered later).",
		}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livedash_store_redis_epoch_lost_total",
			Help: "Times the ring's epoch vanished from Redis (Redis lost its data) under this store.",
		}),
		lagSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "livedash_store_redis_tail_lag_seconds",
			Help: "At the tail's last delivery: the time from the commit (by the appending instance's clock) to its delivery here.",
		}),
	}
	for _, op := range []string{"append", "read", "seek", "check", "init"} {
		m.roundTrips.WithLabelValues(op)
	}
	for _, k := range []string{"unreachable", "timeout", "epoch", "other"} {
		m.redisErrs.WithLabelValues(k)
	}
	m.cs = []prometheus.Collector{m.appendDur, m.appendErrs, m.appendedC, m.skipped, m.roundTrips, m.redisErrs,
		m.reconnects, m.connectFails, m.deliveredC, m.deliverLate, m.lost, m.lagSeconds,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "livedash_store_redis_tail_lag_frames",
			Help: "Frames committed in Redis (as last heard of) that the tail has not delivered here yet.",
		}, func() float64 {
			top, head := s.redisTop.Load(), s.bnd.Load().head
			if top <= head {
				return 0
			}
			return float64(top - head)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "livedash_store_frames",
			Help: "Frames retained in the store.",
		}, func() float64 { return float64(s.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "livedash_store_size_bytes",
			Help: "Memory of the ring's stream in Redis as last measured.",
		}, func() float64 { return float64(s.Size()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "livedash_store_head_sequence",
			Help: "Sequence number of the newest frame delivered here.",
		}, func() float64 { return float64(s.bnd.Load().head) }),
	}
	for _, c := range m.cs {
		reg.MustRegister(c)
	}
	return m
}

func (m *metrics) unregister() {
	if m == nil {
		return
	}
	for _, c := range m.cs {
		m.reg.Unregister(c)
	}
}

func (m *metrics) roundTrip(op string, d time.Duration) {
	if m == nil {
		return
	}
	m.roundTrips.WithLabelValues(op).Observe(d.Seconds())
}

func (m *metrics) appended(d time.Duration, frames, skipped int) {
	if m == nil {
		return
	}
	m.appendDur.Observe(d.Seconds())
	m.appendedC.Add(float64(frames))
	m.skipped.Add(float64(skipped))
}

func (m *metrics) appendFailed(kind string) {
	if m == nil {
		return
	}
	m.appendErrs.Inc()
	m.redisErrs.WithLabelValues(kind).Inc()
}

func (m *metrics) reconnected() {
	if m == nil {
		return
	}
	m.reconnects.Inc()
}

func (m *metrics) connectFailed() {
	if m == nil {
		return
	}
	m.connectFails.Inc()
}

func (m *metrics) delivered(frames int, committedAtMilli int64) {
	if m == nil {
		return
	}
	m.deliveredC.Add(float64(frames))
	if committedAtMilli > 0 {
		lag := max(time.Now().UnixMilli()-committedAtMilli, 0)
		m.lagSeconds.Set(float64(lag) / 1000)
	}
}

func (m *metrics) deliverTimeout() {
	if m == nil {
		return
	}
	m.deliverLate.Inc()
}

func (m *metrics) lostEpoch() {
	if m == nil {
		return
	}
	m.lost.Inc()
}

// The client library logs connection-pool events itself; they go to the
// first store's logger at debug level (the store logs what matters at its
// own levels), instead of to stderr.
var clientLogOnce sync.Once

type clientLogger struct{ log *slog.Logger }

func (l clientLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...), "component", "redis-client")
}

func setClientLogger(log *slog.Logger) {
	clientLogOnce.Do(func() { goredis.SetLogger(clientLogger{log}) })
}
