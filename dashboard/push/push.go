// Package push is the ingest endpoint POST /api/v1/push/:topic: a script or
// a service pushes values, which are appended to the store as one frame of
// the given topic.
//
// Accepted bodies:
//
//   - Content-Type text/plain (optionally "; version=0.0.4"): the Prometheus
//     text exposition format. Every exposed sample is stored as pushed
//     (histograms and summaries as their _bucket/_sum/_count/quantile
//     samples; counters as their raw value: a push is a snapshot, there is
//     no previous value to make a rate from). Timestamps are ignored.
//   - Content-Type application/json: an object of numbers, {"queue_depth": 12},
//     or the frame's own shape, {"samples":[{"name":"x","labels":{"k":"v"},"value":1}]}.
//
// A request is validated as a whole before anything is appended: it is
// stored completely or not at all. Metric and label names follow Prometheus'
// classic rules; label values are any valid UTF-8 text (they are data, and
// are JSON-encoded on the wire). Built-in collector topics (Reserved) cannot
// be pushed to, so a pushed frame is never mistaken for a collector's.
package push

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"livedash/config"
	"livedash/dashboard/apierr"
	"livedash/dashboard/clientip"
)

// Sample is one pushed value; the same fields as a frame's sample.
type Sample struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	Value  float64           `json:"value"`
}

// Appender stores one pushed frame and returns its ID (the cursor a client
// can resume after). cmd/livedash adapts it to the store. AppendPush is
// called concurrently from request goroutines; the samples slice belongs to
// the callee.
type Appender interface {
	AppendPush(topic string, t time.Time, samples []Sample) (id string, err error)
}

// Reserved are the topics of the built-in collectors (collectors.Names());
// push refuses them. Kept here because push may not import collectors; a
// test in cmd/livedash should compare the two lists.
var Reserved = []string{
	"cpu", "memory", "load", "disk", "filesystem", "network", "system", "self",
	"http", "prometheus", "exec", "synthetic",
}

var topicRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// Error codes of this endpoint (the "code" of the JSON error body).
const (
	CodeDisabled         = "push_disabled"
	CodeUnauthorized     = "unauthorized"
	CodeInvalidTopic     = "invalid_topic"
	CodeReservedTopic    = "reserved_topic"
	CodeUnsupportedMedia = "unsupported_media_type"
	CodeBodyTooLarge     = "body_too_large"
	CodeTooManySamples   = "too_many_samples"
	CodeInvalidBody      = "invalid_body"
	CodeInvalidName      = "invalid_name"
	CodeInvalidValue     = "invalid_value"
	CodeDuplicateSeries  = "duplicate_series"
	CodeStoreFailed      = "store_unavailable"
	CodeTooManyLabels    = "too_many_labels"
	CodeLabelTooLong     = "label_too_long"
	CodeTooManySeries    = "too_many_series"
	CodeTooManyTopics    = "too_many_topics"
	CodeBackoff          = "too_many_failures"
)

// TokenHeader carries the push token when the Authorization header holds
// basic-auth credentials (the server asks every route for a login when
// users are configured, push included).
const TokenHeader = "X-Push-Token"

// Defaults used when cfg leaves limits at zero.
var defaults = config.Default().Push

// Back-off after failed token attempts: a client may fail freeFailures
// times; each failure after that closes the endpoint to it for a doubling
// time, from one second up to maxBackoff. A good token clears its record.
const (
	freeFailures = 5
	maxBackoff   = 5 * time.Minute
	// failLogEvery bounds the log lines about failed attempts: one per
	// interval, with the count of those not logged.
	failLogEvery = 10 * time.Second
	// failuresKept bounds the clients remembered; the oldest records go
	// first when it is reached.
	failuresKept = 10_000
)

type metrics struct {
	requests *prometheus.CounterVec // by outcome code ("ok" or an error code)
	samples  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livedash_push_requests_total",
			Help: "Push requests by outcome (ok or the error code).",
		}, []string{"code"}),
		samples: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livedash_push_samples_total",
			Help: "Samples appended through push.",
		}),
	}
	if reg != nil {
		m.requests = register(reg, m.requests)
		m.samples = register(reg, m.samples)
	}
	return m
}

// register registers c, or returns the collector already registered under
// the same descriptor (a second Handler on the same registry).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// Only a programming error (conflicting descriptors) gets here.
		panic(fmt.Sprintf("push: register metrics: %v", err))
	}
	return c
}

// Options are the handler's collaborators. All fields are optional.
type Options struct {
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	Now        func() time.Time // default time.Now
}

// Handler returns the handler of POST /api/v1/push/:topic, registering its
// metrics with reg.
func Handler(app Appender, cfg config.Push, reg prometheus.Registerer) echo.HandlerFunc {
	return HandlerWith(app, cfg, Options{Registerer: reg})
}

// HandlerWith returns the handler of POST /api/v1/push/:topic. Failures are
// returned as *apierr.Error for the server's error handler to render. With
// an empty cfg.Token the route answers 404 push_disabled. Zero limits in
// cfg take the configuration's defaults.
//
// The token is read from "Authorization: Bearer <token>", or from the
// X-Push-Token header when Authorization carries the login. A client (its
// clientip.Key) that keeps sending wrong tokens is made to wait, with 429
// and Retry-After, before its next attempt is even looked at; failures are
// counted (livedash_push_requests_total{code="unauthorized"}) and logged,
// at most one line per ten seconds.
func HandlerWith(app Appender, cfg config.Push, opts Options) echo.HandlerFunc {
	fill := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = defaults.MaxBodyBytes
	}
	fill(&cfg.MaxSamples, defaults.MaxSamples)
	fill(&cfg.MaxLabelNameBytes, defaults.MaxLabelNameBytes)
	fill(&cfg.MaxLabelValueBytes, defaults.MaxLabelValueBytes)
	fill(&cfg.MaxSeriesPerTopic, defaults.MaxSeriesPerTopic)
	fill(&cfg.MaxTopics, defaults.MaxTopics)
	fill(&cfg.MaxLabels, defaults.MaxLabels)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	// Compare hashes so the comparison takes the same time whatever the
	// length of the presented token.
	want := sha256.Sum256([]byte(cfg.Token))
	m := newMetrics(opts.Registerer)
	guard := &tokenGuard{log: opts.Logger, failures: map[netip.Addr]*failures{}}
	series := &seriesCaps{maxSeries: cfg.MaxSeriesPerTopic, maxTopics: cfg.MaxTopics, topics: map[string]map[uint64]struct{}{}}
	return func(c echo.Context) error {
		if cfg.Token == "" {
			return m.fail(apierr.New(http.StatusNotFound, CodeDisabled, "push is disabled: no push token is configured"))
		}
		req := c.Request()
		client := clientip.Of(req)
		now := opts.Now()
		if wait := guard.waiting(client, now); wait > 0 {
			secs := int((wait + time.Second - 1) / time.Second)
			c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
			return m.fail(apierr.New(http.StatusTooManyRequests, CodeBackoff,
				"too many wrong push tokens from this client; retry after %d s", secs))
		}
		got, ok := bearer(req.Header.Get(echo.HeaderAuthorization))
		if !ok {
			got = strings.TrimSpace(req.Header.Get(TokenHeader))
			ok = got != ""
		}
		gotSum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(gotSum[:], want[:]) != 1 || !ok {
			guard.failed(client, now)
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="livedash push"`)
			return m.fail(apierr.New(http.StatusUnauthorized, CodeUnauthorized, "a valid push token is required (Authorization: Bearer, or X-Push-Token beside a login)"))
		}
		guard.succeeded(client)
		topic := c.Param("topic")
		if err := checkTopic(topic); err != nil {
			return m.fail(err)
		}
		mediaType, err := mediaTypeOf(req.Header.Get(echo.HeaderContentType))
		if err != nil {
			return m.fail(err)
		}
		body, err := readBody(req, cfg.MaxBodyBytes)
		if err != nil {
			return m.fail(err)
		}
		samples, err := Parse(mediaType, body, cfg.MaxSamples)
		if err != nil {
			return m.fail(err)
		}
		if err := checkLabels(samples, cfg); err != nil {
			return m.fail(err)
		}
		if err := series.admit(topic, samples); err != nil {
			return m.fail(err)
		}
		id, aerr := app.AppendPush(topic, now, samples)
		if aerr != nil {
			e := apierr.New(http.StatusServiceUnavailable, CodeStoreFailed, "the store could not append the frame; retry later")
			e.Err = aerr
			return m.fail(e)
		}
		m.requests.WithLabelValues("ok").Inc()
		m.samples.Add(float64(len(samples)))
		return c.JSON(http.StatusOK, pushAnswer{ID: id, Topic: topic, Samples: len(samples)})
	}
}

// pushAnswer is the body of a successful push: the new frame's ID, its
// topic and how many samples it holds.
type pushAnswer struct {
	ID      string `json:"id"`
	Topic   string `json:"topic"`
	Samples int    `json:"samples"`
}

// checkLabels enforces the per-sample caps: what one push may add to every
// later rebuild of the catalog and the latest values.
func checkLabels(samples []Sample, cfg config.Push) *apierr.Error {
	for i, s := range samples {
		if len(s.Name) > cfg.MaxLabelNameBytes {
			return apierr.New(http.StatusBadRequest, CodeLabelTooLong,
				"sample %d: the metric name is %d bytes; push.max_label_name_bytes is %d", i, len(s.Name), cfg.MaxLabelNameBytes)
		}
		if len(s.Labels) > cfg.MaxLabels {
			return apierr.New(http.StatusBadRequest, CodeTooManyLabels,
				"sample %d (%s): %d labels; push.max_labels is %d", i, s.Name, len(s.Labels), cfg.MaxLabels)
		}
		for k, v := range s.Labels {
			if len(k) > cfg.MaxLabelNameBytes {
				return apierr.New(http.StatusBadRequest, CodeLabelTooLong,
					"sample %d (%s): a label name is %d bytes; push.max_label_name_bytes is %d", i, s.Name, len(k), cfg.MaxLabelNameBytes)
			}
			if len(v) > cfg.MaxLabelValueBytes {
				return apierr.New(http.StatusBadRequest, CodeLabelTooLong,
					"sample %d (%s): label %s is %d bytes; push.max_label_value_bytes is %d", i, s.Name, k, len(v), cfg.MaxLabelValueBytes)
			}
		}
	}
	return nil
}

// seriesCaps remembers the distinct series pushed to each topic (by a
// 64-bit hash of name and labels) since start-up, to cap them and the
// topics.
type seriesCaps struct {
	maxSeries, maxTopics int

	mu     sync.Mutex
	topics map[string]map[uint64]struct{}
}

var seriesSeed = maphash.MakeSeed()

// admit records samples' series under topic, or refuses the whole push
// when it would take the topic past its series cap or add a topic past
// the topics cap. A push the store then fails to append keeps its series
// counted: the caps err on the side of less.
func (sc *seriesCaps) admit(topic string, samples []Sample) *apierr.Error {
	keys := make([]uint64, len(samples))
	var h maphash.Hash
	h.SetSeed(seriesSeed)
	for i, s := range samples {
		h.Reset()
		h.WriteString(s.Name)
		for _, k := range sortedKeys(s.Labels) {
			h.WriteByte(0xff)
			h.WriteString(k)
			h.WriteByte(0xfe)
			h.WriteString(s.Labels[k])
		}
		keys[i] = h.Sum64()
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	set, ok := sc.topics[topic]
	if !ok {
		if len(sc.topics) >= sc.maxTopics {
			return apierr.New(http.StatusRequestEntityTooLarge, CodeTooManyTopics,
				"%d topics have been pushed to already; push.max_topics is %d", len(sc.topics), sc.maxTopics)
		}
		set = map[uint64]struct{}{}
	}
	fresh := 0
	for _, k := range keys {
		if _, seen := set[k]; !seen {
			fresh++
		}
	}
	if len(set)+fresh > sc.maxSeries {
		return apierr.New(http.StatusRequestEntityTooLarge, CodeTooManySeries,
			"topic %s would hold %d distinct series; push.max_series_per_topic is %d", topic, len(set)+fresh, sc.maxSeries)
	}
	for _, k := range keys {
		set[k] = struct{}{}
	}
	sc.topics[topic] = set
	return nil
}

// tokenGuard keeps the failed token attempts per client.
type tokenGuard struct {
	log *slog.Logger

	mu       sync.Mutex
	failures map[netip.Addr]*failures
	lastLog  time.Time
	unlogged int
}

type failures struct {
	n     int
	last  time.Time
	until time.Time // no attempt is looked at before this
}

// waiting is how long client must still wait before its next attempt.
func (g *tokenGuard) waiting(client netip.Addr, now time.Time) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f := g.failures[clientip.Key(client)]; f != nil && now.Before(f.until) {
		return f.until.Sub(now)
	}
	return 0
}

func (g *tokenGuard) failed(client netip.Addr, now time.Time) {
	key := clientip.Key(client)
	g.mu.Lock()
	defer g.mu.Unlock()
	f := g.failures[key]
	if f == nil {
		if len(g.failures) >= failuresKept {
			g.forgetOldest()
		}
		f = &failures{}
		g.failures[key] = f
	}
	f.n++
	f.last = now
	if over := f.n - freeFailures; over > 0 {
		f.until = now.Add(min(maxBackoff, time.Second<<min(over-1, 16)))
	}
	g.unlogged++
	if now.Sub(g.lastLog) >= failLogEvery {
		g.log.Warn("push: wrong or missing token", "client", client.String(), "attempts", g.unlogged,
			"client_failures", f.n, "backoff", f.until.Sub(now).Round(time.Second).String())
		g.lastLog, g.unlogged = now, 0
	}
}

func (g *tokenGuard) succeeded(client netip.Addr) {
	key := clientip.Key(client)
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.failures, key)
}

// forgetOldest drops the records of the tenth of clients that failed
// longest ago. g.mu is held.
func (g *tokenGuard) forgetOldest() {
	type rec struct {
		k netip.Addr
		t time.Time
	}
	all := make([]rec, 0, len(g.failures))
	for k, f := range g.failures {
		all = append(all, rec{k, f.last})
	}
	slices.SortFunc(all, func(a, b rec) int { return a.t.Compare(b.t) })
	for _, r := range all[:max(1, len(all)/10)] {
		delete(g.failures, r.k)
	}
}

func (m *metrics) fail(e *apierr.Error) error {
	m.requests.WithLabelValues(e.Code).Inc()
	return e
}

// bearer extracts the token of an "Authorization: Bearer <token>" header.
func bearer(h string) (string, bool) {
	const prefix = "bearer "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	t := strings.TrimSpace(h[len(prefix):])
	return t, t != ""
}

func checkTopic(topic string) *apierr.Error {
	if !topicRe.MatchString(topic) {
		return apierr.New(http.StatusBadRequest, CodeInvalidTopic,
			"topic must match [a-z][a-z0-9_]{0,63}")
	}
	if slices.Contains(Reserved, topic) {
		return apierr.New(http.StatusBadRequest, CodeReservedTopic,
			"topic %q belongs to a built-in collector; choose another name", topic)
	}
	return nil
}

// Media types Parse accepts.
const (
	MediaText = "text/plain"
	MediaJSON = "application/json"
)

func mediaTypeOf(ct string) (string, *apierr.Error) {
	unsupported := apierr.New(http.StatusUnsupportedMediaType, CodeUnsupportedMedia,
		"Content-Type must be text/plain (Prometheus text format, version 0.0.4) or application/json")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", unsupported
	}
	switch mt {
	case MediaText:
		if v, ok := params["version"]; ok && v != "0.0.4" {
			return "", unsupported
		}
	case MediaJSON:
	default:
		return "", unsupported
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return "", unsupported
	}
	return mt, nil
}

func tooLarge(max int64) *apierr.Error {
	return apierr.New(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "body exceeds %d bytes", max)
}

func readBody(r *http.Request, max int64) ([]byte, *apierr.Error) {
	if r.ContentLength > max {
		return nil, tooLarge(max)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		e := apierr.New(http.StatusBadRequest, CodeInvalidBody, "the body could not be read")
		e.Err = err
		return nil, e
	}
	if int64(len(body)) > max {
		return nil, tooLarge(max)
	}
	return body, nil
}

// Parse parses and validates a push body of the given media type (MediaText
// or MediaJSON). It returns every sample or an error, never part of the body.
func Parse(mediaType string, body []byte, maxSamples int) ([]Sample, *apierr.Error) {
	if !utf8.Valid(body) {
		return nil, apierr.New(http.StatusBadRequest, CodeInvalidBody, "the body is not valid UTF-8")
	}
	var (
		samples []Sample
		err     *apierr.Error
	)
	switch mediaType {
	case MediaText:
		samples, err = parseText(body, maxSamples)
	case MediaJSON:
		samples, err = parseJSON(body, maxSamples)
	default:
		return nil, apierr.New(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "unsupported media type")
	}
	if err != nil {
		return nil, err
	}
	if len(samples) == 0 {
		return nil, apierr.New(http.StatusBadRequest, CodeInvalidBody, "the body holds no samples")
	}
	if len(samples) > maxSamples {
		return nil, tooMany(maxSamples)
	}
	if err := validate(samples); err != nil {
		return nil, err
	}
	return samples, nil
}

func tooMany(max int) *apierr.Error {
	return apierr.New(http.StatusRequestEntityTooLarge, CodeTooManySamples, "more than %d samples in one push", max)
}

func parseText(body []byte, maxSamples int) ([]Sample, *apierr.Error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		e := apierr.New(http.StatusBadRequest, CodeInvalidBody, "not valid Prometheus text format: %s", textErr(err))
		e.Err = err
		return nil, e
	}
	var out []Sample
	for _, name := range sortedKeys(fams) {
		vec, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{Timestamp: model.Now()}, fams[name])
		if err != nil {
			e := apierr.New(http.StatusBadRequest, CodeInvalidBody, "metric family %s cannot be read", name)
			e.Err = err
			return nil, e
		}
		for _, s := range vec {
			labels := make(map[string]string, len(s.Metric))
			for k, v := range s.Metric {
				if k != model.MetricNameLabel {
					labels[string(k)] = string(v)
				}
			}
			if len(labels) == 0 {
				labels = nil
			}
			out = append(out, Sample{Name: string(s.Metric[model.MetricNameLabel]), Labels: labels, Value: float64(s.Value)})
			if len(out) > maxSamples {
				return nil, tooMany(maxSamples)
			}
		}
	}
	return out, nil
}

// textErr keeps the parser's own explanation (line number and reason), which
// is about the client's input and carries no server detail.
func textErr(err error) string {
	var pe expfmt.ParseError
	if errors.As(err, &pe) {
		return fmt.Sprintf("line %d: %s", pe.Line, truncate(pe.Msg, 200))
	}
	return "parse error"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

type jsonSample struct {
	Name   *string           `json:"name"`
	Labels map[string]string `json:"labels"`
	Value  *float64          `json:"value"`
}

func parseJSON(body []byte, maxSamples int) ([]Sample, *apierr.Error) {
	bad := func(format string, args ...any) *apierr.Error {
		return apierr.New(http.StatusBadRequest, CodeInvalidBody, format, args...)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		return nil, bad(`the body must be a JSON object: {"name": number, ...} or {"samples": [...]}`)
	}
	if raw, ok := obj["samples"]; ok && len(obj) == 1 && len(bytes.TrimSpace(raw)) > 0 && bytes.TrimSpace(raw)[0] == '[' {
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, bad("samples must be an array of objects")
		}
		if len(list) > maxSamples {
			return nil, tooMany(maxSamples)
		}
		out := make([]Sample, 0, len(list))
		for i, item := range list {
			var js jsonSample
			dec := json.NewDecoder(bytes.NewReader(item))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&js); err != nil {
				return nil, bad("samples[%d]: want {\"name\": string, \"labels\": {string: string}, \"value\": number}", i)
			}
			if js.Name == nil || js.Value == nil {
				return nil, bad("samples[%d]: name and value are required", i)
			}
			out = append(out, Sample{Name: *js.Name, Labels: js.Labels, Value: *js.Value})
		}
		return out, nil
	}
	if len(obj) > maxSamples {
		return nil, tooMany(maxSamples)
	}
	out := make([]Sample, 0, len(obj))
	for _, k := range sortedKeys(obj) {
		var v float64
		if err := json.Unmarshal(obj[k], &v); err != nil {
			return nil, apierr.New(http.StatusBadRequest, CodeInvalidValue, "value of %q must be a finite number", truncate(k, 100))
		}
		out = append(out, Sample{Name: k, Value: v})
	}
	return out, nil
}

// validate checks names, values and duplicates of a whole push.
func validate(samples []Sample) *apierr.Error {
	seen := make(map[string]struct{}, len(samples))
	var key strings.Builder
	for i, s := range samples {
		if !model.LegacyValidation.IsValidMetricName(s.Name) {
			return apierr.New(http.StatusBadRequest, CodeInvalidName,
				"sample %d: metric name %q must match [a-zA-Z_:][a-zA-Z0-9_:]*", i, truncate(s.Name, 100))
		}
		if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) {
			return apierr.New(http.StatusBadRequest, CodeInvalidValue,
				"sample %d (%s): NaN and Inf cannot be stored; send a finite number", i, s.Name)
		}
		key.Reset()
		key.WriteString(s.Name)
		for _, k := range sortedKeys(s.Labels) {
			v := s.Labels[k]
			if !validLabelName(k) {
				return apierr.New(http.StatusBadRequest, CodeInvalidName,
					"sample %d (%s): label name %q must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __", i, s.Name, truncate(k, 100))
			}
			if !utf8.ValidString(v) {
				return apierr.New(http.StatusBadRequest, CodeInvalidBody, "sample %d (%s): label %s is not valid UTF-8", i, s.Name, k)
			}
			key.WriteByte(0xff)
			key.WriteString(k)
			key.WriteByte(0xfe)
			key.WriteString(v)
		}
		if _, dup := seen[key.String()]; dup {
			return apierr.New(http.StatusBadRequest, CodeDuplicateSeries,
				"sample %d (%s): the same series appears twice in one push", i, s.Name)
		}
		seen[key.String()] = struct{}{}
	}
	return nil
}

func validLabelName(n string) bool {
	if n == "" || strings.HasPrefix(n, "__") {
		return false
	}
	for i, c := range n {
		if !(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')) {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
