package hub

import (
	"github.com/prometheus/client_golang/prometheus"

	"livedash/dashboard/store"
)

type metrics struct {
	connected     prometheus.Gauge
	rejected      *prometheus.CounterVec
	published     prometheus.Counter
	framesSent    prometheus.Counter
	bytesSent     prometheus.Counter
	replays       prometheus.Counter
	replayed      prometheus.Counter
	resets        *prometheus.CounterVec
	disconnects   *prometheus.CounterVec
	queueDepth    prometheus.Histogram
	panics        *prometheus.CounterVec
	disconnectsBy map[string]prometheus.Counter
	resetsBy      map[store.Reason]prometheus.Counter
}

// newMetrics always returns working metrics; they are registered only when
// reg is non-nil. Every label value is created up front so that a reason shows
// 0 before it first happens (dashboards and alerts see the series).
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "livedash_stream_connected",
			Help: "Streams currently open, over every transport.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livedash_stream_rejected_total",
			Help: "Stream requests turned away with a retry: hint, by reason.",
		}, []string{"reason"}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livedash_stream_published_frames_total",
			Help: "Frames handed to the stream hub after commit.",
		}),
		framesSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livedash_stream_frames_sent_total",
			Help: "Frame events written to streams, replayed or live.",
		}),
		bytesSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livedash_stream_bytes_sent_total",
			Help: "Bytes of events written to streams (the transport's encoding, without HTTP framing).",
		}),
		replays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livedash_stream_replays_total",
			Help: "Streams that resumed from a Last-Event-ID and replayed from the store.",
		}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livedash_stream_replayed_frames_total",
			Help: "Frames sent from the store during replays.",
		}),
		resets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livedash_stream_resets_total",
			Help: "reset events sent because a Last-Event-ID could not be resumed, by reason.",
		}, []string{"reason"}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livedash_stream_disconnects_total",
			Help: "Streams ended, by reason (slow and write_deadline are slow-subscriber cuts).",
		}, []string{"reason"}),
		queueDepth: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "livedash_stream_queue_depth",
			Help:    "Frames sent per live write (one write per wake-up): how far a stream was behind when it woke.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 7), // 1 … 4096
		}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livedash_stream_panics_total",
			Help: "Panics recovered in a stream's goroutine, by transport; the stream ended, the server went on.",
		}, []string{"transport"}),
		disconnectsBy: map[string]prometheus.Counter{},
		resetsBy:      map[store.Reason]prometheus.Counter{},
	}
	for _, r := range []string{RejectMaxStreams, RejectPerIP, RejectShutdown} {
		m.rejected.WithLabelValues(r)
	}
	for _, r := range []store.Reason{store.Malformed, store.UnknownEpoch, store.Expired, store.Future, store.TooFar} {
		m.resetsBy[r] = m.resets.WithLabelValues(string(r))
	}
	for _, r := range []string{DisconnectSlow, DisconnectWriteDeadline, DisconnectLifetime, DisconnectShutdown,
		DisconnectClient, DisconnectResync, DisconnectError, DisconnectPanic} {
		m.disconnectsBy[r] = m.disconnects.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.connected, m.rejected, m.published, m.framesSent, m.bytesSent, m.replays,
			m.replayed, m.resets, m.disconnects, m.queueDepth, m.panics)
	}
	return m
}
