package collectors

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the collectors' health metrics. Label values are collector and
// target names from the configuration, so cardinality is bounded by it.
type metrics struct {
	duration      *prometheus.GaugeVec   // collector
	errors        *prometheus.CounterVec // collector
	samples       *prometheus.GaugeVec   // collector
	panics        *prometheus.CounterVec // collector
	dropped       *prometheus.CounterVec // collector: batches dropped, sink stuck
	sinkErrors    prometheus.Counter
	sinkBatches   prometheus.Counter
	targetUp      *prometheus.GaugeVec   // collector, target
	targetErrors  *prometheus.CounterVec // collector, target
	scrapeDropped *prometheus.CounterVec // target
	scrapeCut     *prometheus.CounterVec // target
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		duration: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "livedash_collector_duration_seconds",
			Help: "Duration of the last collect of each collector job.",
		}, []string{"collector"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livedash_collector_errors_total",
			Help: "Collects that failed, timed out or panicked.",
		}, []string{"collector"}),
		samples: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "livedash_collector_samples",
			Help: "Samples produced by the last collect.",
		}, []string{"collector"}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livedash_collector_panics_total",
			Help: "Collects that panicked (recovered).",
		}, []string{"collector"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livedash_collector_batches_dropped_total",
			Help: "Batches dropped because the sink did not keep up.",
		}, []string{"collector"}),
		sinkErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livedash_collector_sink_errors_total",
			Help: "Sink appends that returned an error (their batches are lost).",
		}),
		sinkBatches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livedash_collector_sink_batches_total",
			Help: "Batches handed to the sink.",
		}),
		targetUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "livedash_collector_target_up",
			Help: "1 if the last probe, scrape or command of the target succeeded, else 0.",
		}, []string{"collector", "target"}),
		targetErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livedash_collector_target_errors_total",
			Help: "Failed probes, scrapes or commands per target.",
		}, []string{"collector", "target"}),
		scrapeDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livedash_collector_scrape_dropped_series_total",
			Help: "Scraped series dropped because the target exceeded max_series.",
		}, []string{"target"}),
		scrapeCut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livedash_collector_scrape_truncated_total",
			Help: "Scrapes whose body exceeded max_body_bytes and was cut.",
		}, []string{"target"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.duration, m.errors, m.samples, m.panics, m.dropped,
		m.sinkErrors, m.sinkBatches, m.targetUp, m.targetErrors, m.scrapeDropped, m.scrapeCut} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("register collector metrics: %w (one Set per registry)", err)
			}
			return nil, fmt.Errorf("register collector metrics: %w", err)
		}
	}
	return m, nil
}
