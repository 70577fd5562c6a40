package ws

import (
	"strconv"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// The WebSocket transport's own metrics. Frames, replays, resets, limits and
// slow-subscriber cuts are the hub's (livedash_stream_*), shared with SSE.
type metrics struct {
	connections prometheus.Gauge
	messages    prometheus.Counter
	bytes       prometheus.Counter
	received    prometheus.Counter
	closes      *prometheus.CounterVec
	closesBy    map[closeKey]prometheus.Counter
}

type closeKey struct {
	side string
	code websocket.StatusCode
}

// Close codes counted by their number; any other code a client sends is
// counted as "other", so a client cannot grow the series.
var countedCodes = []websocket.StatusCode{
	websocket.StatusNormalClosure, websocket.StatusGoingAway, websocket.StatusUnsupportedData,
	websocket.StatusNoStatusRcvd, websocket.StatusAbnormalClosure, websocket.StatusPolicyViolation,
	websocket.StatusMessageTooBig, websocket.StatusInternalError, websocket.StatusTryAgainLater,
}

const (
	sideServer = "server" // the server sent the close frame (code is ours)
	sideClient = "client" // the client closed (its code), or went away (1006)
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "livedash_ws_connections",
			Help: "WebSocket connections currently open on /api/v1/ws (admitted or being closed).",
		}),
		messages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livedash_ws_messages_sent_total",
			Help: "Text messages sent to WebSocket clients (one per tick, replay chunk or heartbeat).",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livedash_ws_bytes_sent_total",
			Help: "Payload bytes of the text messages sent to WebSocket clients, before permessage-deflate and framing.",
		}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livedash_ws_messages_received_total",
			Help: "Messages received from WebSocket clients (accepted or refused).",
		}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livedash_ws_closes_total",
			Help: "WebSocket connections ended, by who closed (server, client) and close code (1006: no close frame).",
		}, []string{"side", "code"}),
		closesBy: map[closeKey]prometheus.Counter{},
	}
	for _, side := range []string{sideServer, sideClient} {
		for _, code := range countedCodes {
			m.closesBy[closeKey{side, code}] = m.closes.WithLabelValues(side, strconv.Itoa(int(code)))
		}
		m.closesBy[closeKey{side, -1}] = m.closes.WithLabelValues(side, "other")
	}
	if reg != nil {
		reg.MustRegister(m.connections, m.messages, m.bytes, m.received, m.closes)
	}
	return m
}

// closed counts one connection's end.
func (m *metrics) closed(side string, code websocket.StatusCode) {
	c, ok := m.closesBy[closeKey{side, code}]
	if !ok {
		c = m.closesBy[closeKey{side, -1}]
	}
	c.Inc()
}
