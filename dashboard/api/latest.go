package api

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
)

// latest serves GET /api/v1/latest:
//
//	{"head":"<id>","topics":{"cpu":<newest cpu frame, verbatim>,…}}
//
// Each topic's value is its newest frame exactly as stored and streamed
// ({"id","topic","ts","samples"}): the newest value of every series the topic
// still reports, with the frame's time. A series that stopped appearing in
// its topic's frames is not current and is not listed.
//
// The unfiltered body is encoded once per index head, lazily by the first
// request after a commit, and then served from memory. A topics= filter is
// composed per request by appending the pre-encoded frames (no encoding).
// The ETag is the head ID, so If-None-Match costs one string compare.
func (a *API) latest(c echo.Context) error {
	var topics []string
	if raw := c.QueryString(); raw != "" {
		p, aerr := ParseLatestParams(raw)
		if aerr != nil {
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
	bp := getBuf()
	defer putBuf(bp)
	a.mu.RLock()
	head = a.idx.head
	etag := makeETag(head)
	h.Set("ETag", etag)
	if etagMatch(c.Request().Header.Get("If-None-Match"), etag) {
		a.mu.RUnlock()
		return c.NoContent(http.StatusNotModified)
	}
	pieces := make([][]byte, 0, len(topics))
	names := make([]string, 0, len(topics))
	for _, t := range a.idx.topicNames { // sorted output
		ti := a.idx.topics[t]
		if ti.latest == nil || !contains(topics, t) {
			continue
		}
		names, pieces = append(names, t), append(pieces, ti.latest)
	}
	a.mu.RUnlock()
	*bp = appendLatest(*bp, head, names, pieces)
	return writeJSON(c, *bp, nil)
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
	names := make([]string, 0, len(a.idx.topicNames))
	pieces := make([][]byte, 0, len(a.idx.topicNames))
	for _, t := range a.idx.topicNames {
		if ti := a.idx.topics[t]; ti.latest != nil {
			names, pieces = append(names, t), append(pieces, ti.latest)
		}
	}
	a.mu.RUnlock()
	e := &encoded{head: head, etag: makeETag(head), body: appendLatest(nil, head, names, pieces)}
	a.latestCache.Store(e)
	return e
}

func appendLatest(b []byte, head interface{ AppendTo([]byte) []byte }, names []string, pieces [][]byte) []byte {
	b = append(b, `{"head":"`...)
	b = head.AppendTo(b)
	b = append(b, `","topics":{`...)
	for i, p := range pieces {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, names[i])
		b = append(b, ':')
		b = append(b, p...)
	}
	return append(b, "}}\n"...)
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
