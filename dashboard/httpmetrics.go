package dashboard

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// httpMetrics counts requests by route template, never by raw path, and by a
// closed set of methods, so random paths and methods cannot grow /metrics.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livedash_http_requests_total",
			Help: "HTTP requests by route template, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "livedash_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route template (streams and long polls excluded).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"route", "method"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration)
	}
	return m
}

var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodDelete: true, http.MethodPatch: true, http.MethodOptions: true,
}

// statusTexts holds the label value of every status code net/http can send,
// so counting a request allocates no string.
var statusTexts = func() (t [600]string) {
	for i := 100; i < len(t); i++ {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

func statusText(code int) string {
	if code >= 100 && code < len(statusTexts) {
		return statusTexts[code]
	}
	return strconv.Itoa(code)
}

func (m *httpMetrics) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			// Render now so the status below is the one the client gets.
			c.Error(err)
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		method := c.Request().Method
		if !knownMethods[method] {
			method = "other"
		}
		m.requests.WithLabelValues(route, method, statusText(c.Response().Status)).Inc()
		// A stream lasts as long as the client stays and a long poll as long
		// as it waits: their durations say nothing about server speed. (The
		// raw query is searched, not parsed: parsing it again here cost more
		// than the rest of this middleware when a commit releases thousands
		// of long polls.)
		if route != "/api/v1/stream" && !strings.Contains(c.Request().URL.RawQuery, "wait=") {
			m.duration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
		}
		return nil
	}
}
