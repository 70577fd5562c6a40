package api

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"livedash/dashboard/store"
)

// latest serves GET /api/v1/latest, the newest value of every series:
//
//	{"head":"<id>","topics":{"cpu":{"id":"<id>","topic":"cpu","ts":<ms>,
//	  "samples":[{"name","labels","value","ts","alert"?}…]},…},
//	 "alerts":[{"topic","series","labels","value","level",…}…]}
//
// alerts lists every value over a threshold (Options.Thresholds), and a
// sample that takes part in one carries "alert": "warning" or "critical"
// (the higher when several): a script alerts on `.alerts | length > 0`.
//
// A topic's object has the shape of a frame: id and ts are those of the
// topic's newest frame, and samples hold every current series of the topic
// (index.apply says which are current), whichever frame carried it — with
// several targets, nodes or pushers in one topic, each one's newest values —
// each with the ts of its own frame, sorted by series key.
//
// The unfiltered body is encoded once per index head, lazily by the first
// request after a commit, and then served from memory; a topic's part is
// encoded again only when the topic changed. A topics= filter composes the
// body from those parts. The ETag is the head ID, so If-None-Match costs one
// string compare.
func (a *API) latest(c echo.Context) error {
	var topics []string
	if raw := c.QueryString(); raw != "" {
		p, aerr := ParseLatestParams(raw)
		if aerr != nil {
			return aerr
		}
		if aerr := a.checkTopics(p.Topics); aerr != nil {
			return aerr
		}
		topics = p.Topics
	}
	head := a.headID()
	h := c.Response().Header()
	h[echo.HeaderCacheControl] = noCache // on 304s too
	if len(topics) == 0 {
		e := a.latestCache.Load()
		if e == nil || e.head != head {
			e = a.buildLatest()
		}
		h.Set("ETag", e.etag)
		if etagMatch(c.Request().Header.Get("If-None-Match"), e.etag) {
			return c.NoContent(http.StatusNotModified)
		}
		return writeJSON(c, e.body, nil)
	}
	a.buildMu.Lock()
	a.mu.RLock()
	head = a.idx.head
	etag := makeETag(head)
	h.Set("ETag", etag)
	if etagMatch(c.Request().Header.Get("If-None-Match"), etag) {
		a.mu.RUnlock()
		a.buildMu.Unlock()
		return c.NoContent(http.StatusNotModified)
	}
	parts := make([]*topicLatest, 0, len(topics))
	for _, t := range a.idx.topicNames { // sorted output
		if contains(topics, t) {
			parts = append(parts, a.topicPart(a.idx.topics[t]))
		}
	}
	a.mu.RUnlock()
	a.buildMu.Unlock()
	bp := getBuf()
	defer putBuf(bp)
	*bp = appendLatest(*bp, head, parts)
	return writeJSON(c, *bp, nil)
}

// topicLatest is one topic's part of /latest, encoded for one gen of the
// topic. It is immutable once built.
type topicLatest struct {
	gen    uint64
	name   string
	body   []byte // {"id":…,"topic":…,"ts":…,"samples":[…]}
	alerts []byte // its alerts' objects, comma-separated; empty: none
}

// topicPart returns t's part, encoding it when t changed since the last
// time. The caller holds a.buildMu and a.mu for reading.
func (a *API) topicPart(t *topicIndex) *topicLatest {
	if p := t.cached; p != nil && p.gen == t.gen {
		return p
	}
	b := append([]byte(nil), `{"id":"`...)
	b = store.ID{Epoch: a.idx.head.Epoch, Seq: t.latestSeq}.AppendTo(b)
	b = append(b, `","topic":`...)
	b = appendString(b, t.name)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, t.latestTS, 10)
	b = append(b, `,"samples":[`...)
	levels, alerts := a.evaluate(t)
	n := 0
	for _, s := range t.series {
		if !s.current {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = append(b, `{"name":`...)
		b = appendString(b, s.name)
		if len(s.labels) > 0 {
			b = append(b, `,"labels":`...)
			b = appendLabels(b, s.labels)
		}
		b = append(b, `,"value":`...)
		b = appendFloat(b, s.value)
		b = append(b, `,"ts":`...)
		b = strconv.AppendInt(b, s.lastSeen, 10)
		if l := levels[s]; l != levelNone {
			b = append(b, `,"alert":"`...)
			b = append(b, l.String()...)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	b = append(b, "]}"...)
	var ab []byte
	for i, al := range alerts {
		if i > 0 {
			ab = append(ab, ',')
		}
		ab = appendAlert(ab, t.name, al)
	}
	p := &topicLatest{gen: t.gen, name: t.name, body: b, alerts: ab}
	t.cached = p
	return p
}

// buildLatest encodes the unfiltered body for the current head. Concurrent
// callers wait for one encode instead of each doing their own.
func (a *API) buildLatest() *encoded {
	a.buildMu.Lock()
	defer a.buildMu.Unlock()
	if e := a.latestCache.Load(); e != nil && e.head == a.headID() {
		return e
	}
	a.mu.RLock()
	head := a.idx.head
	parts := make([]*topicLatest, 0, len(a.idx.topicNames))
	for _, t := range a.idx.topicNames {
		parts = append(parts, a.topicPart(a.idx.topics[t]))
	}
	a.mu.RUnlock()
	e := &encoded{head: head, etag: makeETag(head), body: appendLatest(nil, head, parts)}
	a.latestCache.Store(e)
	return e
}

func appendLatest(b []byte, head store.ID, parts []*topicLatest) []byte {
	b = append(b, `{"head":"`...)
	b = head.AppendTo(b)
	b = append(b, `","topics":{`...)
	for i, p := range parts {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, p.name)
		b = append(b, ':')
		b = append(b, p.body...)
	}
	b = append(b, `},"alerts":[`...)
	n := 0
	for _, p := range parts {
		if len(p.alerts) == 0 {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = append(b, p.alerts...)
	}
	return append(b, "]}\n"...)
}

func makeETag(head interface{ AppendTo([]byte) []byte }) string {
	b := make([]byte, 0, 48)
	b = append(b, '"')
	b = head.AppendTo(b)
	return string(append(b, '"'))
}

// etagMatch implements If-None-Match for GET: "*", or any listed tag equal
// to etag under the weak comparison (W/ prefixes ignored).
func etagMatch(header, etag string) bool {
	if header == "" {
		return false
	}
	if header == etag {
		return true
	}
	for part := range strings.SplitSeq(header, ",") {
		part = strings.TrimSpace(part)
		part = strings.TrimPrefix(part, "W/")
		if part == "*" || part == etag {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// series serves GET /api/v1/series, the catalog:
//
//	{"topics":[{"topic":"cpu","interval_ms":1000,"series":[{"name","labels",
//	  "unit","first_seen","last_seen"}]}],"series_dropped":0}
//
// first_seen/last_seen are Unix ms of the first and newest indexed value.
// interval_ms is the collector's configured interval, else the interval
// observed between the topic's last two frames, else null. The catalog holds
// at most Options.MaxSeries series; series_dropped counts samples refused
// once that many are held. Encoded once per head, served from memory.
func (a *API) series(c echo.Context) error {
	var topics []string
	if raw := c.QueryString(); raw != "" {
		p, aerr := ParseSeriesParams(raw)
		if aerr != nil {
			return aerr
		}
		if aerr := a.checkTopics(p.Topics); aerr != nil {
			return aerr
		}
		topics = p.Topics
	}
	if len(topics) == 0 {
		e := a.seriesCache.Load()
		if e == nil || e.head != a.headID() {
			a.buildMu.Lock()
			if e = a.seriesCache.Load(); e == nil || e.head != a.headID() {
				e = a.buildSeries(nil)
				a.seriesCache.Store(e)
			}
			a.buildMu.Unlock()
		}
		return writeJSON(c, e.body, noCache)
	}
	return writeJSON(c, a.buildSeries(topics).body, noCache)
}

func (a *API) buildSeries(filter []string) *encoded {
	var intervals map[string]int64
	if a.opts.Intervals != nil {
		iv := a.opts.Intervals()
		intervals = make(map[string]int64, len(iv))
		for t, d := range iv {
			intervals[t] = d.Milliseconds()
		}
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	b := append([]byte(nil), `{"topics":[`...)
	n := 0
	for _, t := range a.idx.topicNames {
		if filter != nil && !contains(filter, t) {
			continue
		}
		ti := a.idx.topics[t]
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = append(b, `{"topic":`...)
		b = appendString(b, t)
		b = append(b, `,"interval_ms":`...)
		if ms, ok := intervals[t]; ok && ms > 0 {
			b = strconv.AppendInt(b, ms, 10)
		} else if ti.intervalMs > 0 {
			b = strconv.AppendInt(b, ti.intervalMs, 10)
		} else {
			b = append(b, "null"...)
		}
		b = append(b, `,"series":[`...)
		for i, s := range ti.series {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = appendString(b, s.name)
			b = append(b, `,"labels":`...)
			b = appendLabels(b, s.labels)
			b = append(b, `,"unit":`...)
			b = appendString(b, s.unit)
			b = append(b, `,"first_seen":`...)
			b = strconv.AppendInt(b, s.firstSeen, 10)
			b = append(b, `,"last_seen":`...)
			b = strconv.AppendInt(b, s.lastSeen, 10)
			b = append(b, '}')
		}
		b = append(b, "]}"...)
	}
	b = append(b, `],"series_dropped":`...)
	b = strconv.AppendUint(b, a.idx.dropped, 10)
	b = append(b, "}\n"...)
	return &encoded{head: a.idx.head, body: b}
}
