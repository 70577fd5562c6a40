package bolt

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the store's health series. A nil *metrics (no Registerer) is a
// valid no-op.
type metrics struct {
	reg        prometheus.Registerer
	cs         []prometheus.Collector
	appendDur  prometheus.Histogram
	appendErrs prometheus.Counter
	appended   prometheus.Counter
	trimmedC   prometheus.Counter
	skipped    prometheus.Counter
	bad        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, s *Store) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		reg: reg,
		appendDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "livedash_store_append_duration_seconds",
			Help:    "Time to append and commit one batch of frames, including fsync.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		appendErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livedash_store_append_errors_total",
			Help: "Appends that failed (disk full, size limit, I/O); their frames were not stored or published.",
		}),
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livedash_store_appended_frames_total",
			Help: "Frames committed to the store.",
		}),
		trimmedC: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livedash_store_trimmed_frames_total",
			Help: "Frames removed by retention (count or age).",
		}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livedash_store_skipped_samples_total",
			Help: "Samples left out of frames because their value was NaN or infinite.",
		}),
	}
	m.bad = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "livedash_store_unreadable_frames_total",
		Help: "Stored frames that could not be parsed and were skipped by reads.",
	})
	m.cs = []prometheus.Collector{m.appendDur, m.appendErrs, m.appended, m.trimmedC, m.skipped, m.bad,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "livedash_store_frames",
			Help: "Frames retained in the store.",
		}, func() float64 { return float64(s.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "livedash_store_size_bytes",
			Help: "Size of the store file as of the last commit.",
		}, func() float64 { return float64(s.Size()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "livedash_store_head_sequence",
			Help: "Sequence number of the newest committed frame.",
		}, func() float64 { return float64(s.head.Load()) }),
	}
	for _, c := range m.cs {
		reg.MustRegister(c)
	}
	return m
}

func (m *metrics) observeAppend(d time.Duration, err error, frames, skipped int) {
	if m == nil {
		return
	}
	m.appendDur.Observe(d.Seconds())
	if err != nil {
		m.appendErrs.Inc()
		return
	}
	m.appended.Add(float64(frames))
	m.skipped.Add(float64(skipped))
}

func (m *metrics) trimmed(n uint64) {
	if m == nil {
		return
	}
	m.trimmedC.Add(float64(n))
}

func (m *metrics) unregister() {
	if m == nil {
		return
	}
	for _, c := range m.cs {
		m.reg.Unregister(c)
	}
}

func (m *metrics) badRecord() {
	if m == nil {
		return
	}
	m.bad.Inc()
}
