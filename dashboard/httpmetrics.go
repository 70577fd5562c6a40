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
	panics   *prometheus.CounterVec
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
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livedash_http_panics_total",
			Help: "Panics recovered in HTTP handlers and middleware, by route template.",
		}, []string{"route"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.panics)
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

// routeOf is the route template of c's request for metric labels and logs:
// never the raw path, which the client chooses.
func routeOf(c echo.Context) string {
	if r := c.Path(); r != "" {
		return r
	}
	return "unmatched"
}

// middleware counts each request and times it. It is the outermost
// middleware: it renders a returned error itself (so that the status it
// counts is the one the client gets) and returns nil.
func (m *httpMetrics) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		// Deferred, so that a request aborted by a panic after its response
		// was committed (see recoverPanics) is counted too, with the
		// status it sent.
		defer m.observe(c, time.Now())
		if err := next(c); err != nil {
			c.Error(err)
		}
		return nil
	}
}

// observe counts and times one request once its answer is written.
func (m *httpMetrics) observe(c echo.Context, start time.Time) {
	route := routeOf(c)
	method := c.Request().Method
	if !knownMethods[method] {
		method = "other"
	}
	m.requests.WithLabelValues(route, method, statusText(c.Response().Status)).Inc()
	// A stream lasts as long as the client stays and a long poll as long
	// as it waits: their durations say nothing about server speed. (The
	// raw query is searched, not parsed: this runs for every request, and
	// one commit can release thousands of long polls at once.)
	if route != "/api/v1/stream" && !strings.Contains(c.Request().URL.RawQuery, "wait=") {
		m.duration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
	}
}
