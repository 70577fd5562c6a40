package collectors

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"livedash/config"
)

// scrapeAccept asks for the classic text format first: it is parsed in one
// pass, whereas prometheus/common's OpenMetrics decoder runs an ABNF parser
// per line and is far slower. OpenMetrics answers are still understood.
const scrapeAccept = "text/plain;version=0.0.4;q=1,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1"

// scrapeTarget scrapes one exporter endpoint per tick and flattens what it
// selects into chartable samples, each labelled target="<name>" (an exposed
// target label is renamed exported_target):
//
//   - gauge, untyped: as exposed.
//   - counter: a rate, named with "_total" replaced by "_per_second".
//   - summary: its quantiles as exposed ({quantile="0.5"}), <name>_count_per_second,
//     and <name>_mean (increase of sum / increase of count over the tick).
//   - histogram: <name>_count_per_second, <name>_mean, and estimated
//     p50/p90/p99 as <name>{quantile="…"} from the bucket increases over the
//     tick (linear interpolation inside a bucket, as histogram_quantile does).
//
// Bounds: the body read is capped at max_body_bytes (a text body over the
// cap is cut at its last complete line and counted as truncated; an
// OpenMetrics body over the cap is rejected), and at most max_series samples
// are kept per scrape — the rest are dropped and counted.
type scrapeTarget struct {
	name, url  string
	client     *http.Client
	maxSeries  int
	maxBody    int64
	match      *regexp.Regexp
	matchLabel map[string]*regexp.Regexp
	rates      *rates
	log        *slog.Logger

	up             prometheus.Gauge
	errCount       prometheus.Counter
	dropped, cut   prometheus.Counter
	lastDropLogged time.Time
}

func newScrape(c *config.Collectors, e env) ([]*job, error) {
	def := config.Default().Collectors.Prometheus
	maxSeries, maxBody := c.Prometheus.MaxSeries, c.Prometheus.MaxBodyBytes
	if maxSeries <= 0 {
		maxSeries = def.MaxSeries
	}
	if maxBody <= 0 {
		maxBody = def.MaxBodyBytes
	}
	var jobs []*job
	client := &http.Client{
		Transport: &http.Transport{
			Proxy:                  http.ProxyFromEnvironment,
			MaxIdleConnsPerHost:    2,
			IdleConnTimeout:        90 * time.Second,
			MaxResponseHeaderBytes: 64 << 10,
			ForceAttemptHTTP2:      true,
		},
	}
	for i, t := range c.Prometheus.Targets {
		name := t.Name
		if name == "" {
			name = config.TargetName(t.URL)
		}
		st := &scrapeTarget{
			name: name, url: t.URL, client: client,
			maxSeries: t.MaxSeries, maxBody: maxBody,
			rates: newRates(), log: e.log.With("target", name),
			up:       e.m.targetUp.WithLabelValues("prometheus", name),
			errCount: e.m.targetErrors.WithLabelValues("prometheus", name),
			dropped:  e.m.scrapeDropped.WithLabelValues(name),
			cut:      e.m.scrapeCut.WithLabelValues(name),
		}
		if st.maxSeries <= 0 {
			st.maxSeries = maxSeries
		}
		if t.Match != "" {
			re, err := regexp.Compile(t.Match)
			if err != nil {
				return nil, fmt.Errorf("targets[%d].match: %w", i, err)
			}
			st.match = re
		}
		for k, v := range t.MatchLabels {
			re, err := regexp.Compile(v)
			if err != nil {
				return nil, fmt.Errorf("targets[%d].match_labels.%s: %w", i, k, err)
			}
			if st.matchLabel == nil {
				st.matchLabel = map[string]*regexp.Regexp{}
			}
			st.matchLabel[k] = re
		}
		jobs = append(jobs, &job{
			info: Info{Target: name, Interval: t.Interval.D(), Timeout: t.Timeout.D(), Collector: "prometheus/" + name},
			c:    st,
		})
	}
	return jobs, nil
}

// errBodyTooLarge is returned for an OpenMetrics body over max_body_bytes.
var errBodyTooLarge = errors.New("collectors: scrape body too large")

func (t *scrapeTarget) collect(ctx context.Context, now time.Time) ([]Sample, error) {
	out, err := t.scrape(ctx, now)
	if err != nil {
		t.up.Set(0)
		t.errCount.Inc()
		return nil, fmt.Errorf("scrape %s: %w", t.name, err)
	}
	t.up.Set(1)
	return out, nil
}

func (t *scrapeTarget) scrape(ctx context.Context, now time.Time) ([]Sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", scrapeAccept)
	req.Header.Set("User-Agent", "livedash-scrape")
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, redactURLError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, t.maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	format := expfmt.ResponseFormat(resp.Header)
	if format.FormatType() == expfmt.TypeUnknown {
		format = expfmt.NewFormat(expfmt.TypeTextPlain)
	}
	if int64(len(body)) > t.maxBody {
		if format.FormatType() != expfmt.TypeTextPlain {
			return nil, fmt.Errorf("%w: over %d bytes", errBodyTooLarge, t.maxBody)
		}
		// Text is line-oriented: cut at the last complete line and keep
		// what came before.
		body = body[:t.maxBody]
		body = body[:bytes.LastIndexByte(body, '\n')+1]
		t.cut.Inc()
	}
	fams, err := decodeFamilies(body, format)
	if err != nil {
		return nil, err
	}
	return t.flatten(fams, now), nil
}

// decodeFamilies parses an exposition body in the given format. Any parse
// error rejects the whole body: a half-understood scrape is not shown.
func decodeFamilies(body []byte, format expfmt.Format) ([]*dto.MetricFamily, error) {
	dec := expfmt.NewDecoder(bytes.NewReader(body), format)
	var fams []*dto.MetricFamily
	for {
		mf := &dto.MetricFamily{}
		err := dec.Decode(mf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse exposition: %w", err)
		}
		fams = append(fams, mf)
	}
	// The text decoder returns families in map order; sort so the series
	// cap keeps the same series every scrape.
	sort.Slice(fams, func(i, j int) bool { return fams[i].GetName() < fams[j].GetName() })
	return fams, nil
}

// flatten selects and converts families; it enforces the series cap.
func (t *scrapeTarget) flatten(fams []*dto.MetricFamily, now time.Time) []Sample {
	t.rates.begin()
	defer t.rates.end()
	f := flattener{t: t, now: now, out: make([]Sample, 0, min(256, t.maxSeries))}
	for _, mf := range fams {
		name := mf.GetName()
		if t.match != nil && !t.match.MatchString(name) {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !t.selected(m) {
				continue
			}
			f.metric(name, mf.GetType(), m)
		}
	}
	if f.dropped > 0 {
		t.dropped.Add(float64(f.dropped))
		if now.Sub(t.lastDropLogged) > time.Minute {
			t.lastDropLogged = now
			t.log.Warn("scrape over max_series; excess dropped", "max_series", t.maxSeries, "dropped", f.dropped)
		}
	}
	return f.out
}

func (t *scrapeTarget) selected(m *dto.Metric) bool {
	for k, re := range t.matchLabel {
		v := ""
		for _, lp := range m.GetLabel() {
			if lp.GetName() == k {
				v = lp.GetValue()
				break
			}
		}
		if !re.MatchString(v) {
			return false
		}
	}
	return true
}

type flattener struct {
	t       *scrapeTarget
	now     time.Time
	out     []Sample
	dropped int
}

// emit appends one sample unless the cap is reached.
func (f *flattener) emit(name string, labels map[string]string, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	if len(f.out) >= f.t.maxSeries {
		f.dropped++
		return
	}
	f.out = append(f.out, Sample{Name: name, Labels: labels, Value: v})
}

// rate emits the per-second rate of a counter-like value.
func (f *flattener) rate(name string, labels map[string]string, key string, v float64) {
	if r, ok := f.t.rates.rate(seriesKey{name: name, a: key}, v, f.now); ok {
		f.emit(name, labels, r)
	}
}

func (f *flattener) metric(name string, typ dto.MetricType, m *dto.Metric) {
	if len(f.out) >= f.t.maxSeries {
		// Over the cap: count the series and keep no state for it, so a
		// huge target costs no memory beyond its (bounded) body.
		f.dropped++
		return
	}
	labels, key := f.labels(m)
	switch typ {
	case dto.MetricType_COUNTER:
		f.rate(strings.TrimSuffix(name, "_total")+"_per_second", labels, key, m.GetCounter().GetValue())
	case dto.MetricType_GAUGE:
		f.emit(name, labels, m.GetGauge().GetValue())
	case dto.MetricType_UNTYPED:
		f.emit(name, labels, m.GetUntyped().GetValue())
	case dto.MetricType_SUMMARY:
		s := m.GetSummary()
		for _, q := range s.GetQuantile() {
			f.emit(name, withLabel(labels, "quantile", formatQuantile(q.GetQuantile())), q.GetValue())
		}
		f.countAndMean(name, labels, key, float64(s.GetSampleCount()), s.GetSampleSum())
	case dto.MetricType_HISTOGRAM:
		h := m.GetHistogram()
		dCount, okCount := f.countAndMean(name, labels, key, float64(h.GetSampleCount()), h.GetSampleSum())
		f.quantiles(name, labels, key, h, dCount, okCount)
	default:
		// Gauge histograms and unknown types are not charted.
	}
}

// countAndMean emits <name>_count_per_second and <name>_mean and returns the
// count increase.
func (f *flattener) countAndMean(name string, labels map[string]string, key string, count, sum float64) (float64, bool) {
	f.rate(name+"_count_per_second", labels, key, count)
	dCount, okC := f.t.rates.delta(seriesKey{name: name, a: key, b: "count"}, count, f.now)
	dSum, okS := f.t.rates.delta(seriesKey{name: name, a: key, b: "sum"}, sum, f.now)
	if okC && okS && dCount > 0 {
		f.emit(name+"_mean", labels, dSum/dCount)
	}
	return dCount, okC
}

var histQuantiles = [...]float64{0.5, 0.9, 0.99}

// quantiles estimates quantiles of the observations made during the tick
// from the increase of each cumulative bucket.
func (f *flattener) quantiles(name string, labels map[string]string, key string, h *dto.Histogram, dCount float64, ok bool) {
	buckets := h.GetBucket()
	if len(buckets) == 0 {
		return
	}
	deltas := make([]float64, len(buckets))
	complete := true
	for i, b := range buckets {
		d, okB := f.t.rates.delta(seriesKey{name: name, a: key, b: "le", c: formatQuantile(b.GetUpperBound())},
			float64(b.GetCumulativeCount()), f.now)
		if !okB {
			complete = false
		}
		deltas[i] = d
	}
	if !ok || !complete || dCount <= 0 {
		return
	}
	total := max(dCount, deltas[len(deltas)-1])
	for _, q := range histQuantiles {
		rank := q * total
		lowerBound, lowerCount := 0.0, 0.0
		v := math.NaN()
		for i, b := range buckets {
			ub := b.GetUpperBound()
			if deltas[i] >= rank {
				if math.IsInf(ub, 1) {
					v = lowerBound // above the highest finite bucket
				} else if i == 0 && ub <= 0 {
					v = ub
				} else {
					span := deltas[i] - lowerCount
					frac := 1.0
					if span > 0 {
						frac = (rank - lowerCount) / span
					}
					v = lowerBound + (ub-lowerBound)*frac
				}
				break
			}
			lowerBound, lowerCount = ub, deltas[i]
		}
		if math.IsNaN(v) {
			v = lowerBound
		}
		f.emit(name, withLabel(labels, "quantile", formatQuantile(q)), v)
	}
}

// labels converts a metric's label pairs, adds target and returns them with
// a stable series key (sorted name=value pairs).
func (f *flattener) labels(m *dto.Metric) (map[string]string, string) {
	lps := m.GetLabel()
	labels := make(map[string]string, len(lps)+1)
	for _, lp := range lps {
		n := lp.GetName()
		if n == "target" {
			n = "exported_target"
		}
		labels[n] = lp.GetValue()
	}
	labels["target"] = f.t.name
	names := make([]string, 0, len(labels))
	for k := range labels {
		names = append(names, k)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, k := range names {
		b.WriteString(k)
		b.WriteByte(0xff)
		b.WriteString(labels[k])
		b.WriteByte(0xfe)
	}
	return labels, b.String()
}

func withLabel(l map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(l)+1)
	for a, b := range l {
		out[a] = b
	}
	out[k] = v
	return out
}

func formatQuantile(q float64) string {
	return fmt.Sprint(q)
}
