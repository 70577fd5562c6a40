package api

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"livedash/dashboard/apierr"
	"livedash/dashboard/store"
)

// maxQuerySeries bounds the columns of one query; more matching series set
// capped and are left out (the first ones by topic, then series key, stay).
const maxQuerySeries = 500

// plan is a query's bucket grid. Bucket k covers Unix seconds
// [k·step, (k+1)·step) with step = ceil((before−after)/points): buckets are
// aligned to multiples of step, so a bucket's value does not change as the
// window advances. There are at most `points` buckets, the newest kept: the
// last one holds `before` (inclusive, partial while `before` is now), the
// first is whole and starts within one step of `after` (an unaligned window
// straddles points+1 buckets; the oldest is then left out). The response's
// `after` is that first bucket's start.
type plan struct {
	step, kFirst int64
	n            int
	startMs      int64
	endMs        int64 // exclusive
	group        Group
}

func makePlan(p QueryParams) plan {
	span := p.Before - p.After
	step := max(1, ceilDiv(span, int64(p.Points)))
	kLast := floorDiv(p.Before, step)
	kFirst := max(floorDiv(p.After, step), kLast-int64(p.Points)+1)
	return plan{step: step, kFirst: kFirst, n: int(kLast - kFirst + 1),
		startMs: kFirst * step * 1000, endMs: (p.Before + 1) * 1000, group: p.Group}
}

// bucket returns the bucket of a time in ms, or -1 outside the window.
func (pl *plan) bucket(ms int64) int {
	if ms < pl.startMs || ms >= pl.endMs {
		return -1
	}
	return int(floorDiv(ms, pl.step*1000) - pl.kFirst)
}

// result is an aggregated query before encoding: acc and cnt are
// column-major, one column of n buckets per series.
type result struct {
	pl       plan
	cols     []column
	acc      []float64
	cnt      []int32
	first    uint64 // seq of the oldest frame that contributed; 0 = none
	last     store.ID
	capped   bool
	scanned  int
	fromDisk bool
}

type column struct {
	topic, key string
	desc       []byte
	keyJSON    []byte
}

func (r *result) addColumn(c column) int {
	r.cols = append(r.cols, c)
	r.acc = append(r.acc, make([]float64, r.pl.n)...)
	r.cnt = append(r.cnt, make([]int32, r.pl.n)...)
	return len(r.cols) - 1
}

// add folds one value into column ci, bucket b.
func (r *result) add(ci, b int, v float64, seq uint64) {
	i := ci*r.pl.n + b
	c := r.cnt[i]
	switch r.pl.group {
	case GroupAvg:
		r.acc[i] += v
	case GroupMin:
		if c == 0 || v < r.acc[i] {
			r.acc[i] = v
		}
	case GroupMax:
		if c == 0 || v > r.acc[i] {
			r.acc[i] = v
		}
	case GroupLast:
		r.acc[i] = v
	}
	r.cnt[i] = c + 1
	if r.first == 0 || seq < r.first {
		r.first = seq
	}
}

// query serves GET /api/v1/query: a window of series downsampled into
// aligned buckets, column-major for uPlot:
//
//	{"series":[{"name","labels","topic","unit"}…],"labels":["time","<key>"…],
//	 "data":[[t…],[v|null…]…],"first":"<id>"|null,"last":"<id>",
//	 "after":<s>,"before":<s>,"points":N,"step":<s>,"group":"avg","capped":false}
//
// Times are bucket starts in Unix seconds; a bucket with no value is null.
// `first` is the oldest frame that contributed; `last` is the head the query
// read up to, so a chart that back-fills and then streams from `last` sees no
// gap and no duplicate. `after` is the start of the first bucket (aligned),
// `before` the inclusive end. capped is true when points was clamped to
// query_max_points, more than 500 series matched, or the window held more
// than query_max_frames frames (then its oldest part is left out).
//
// Windows within memory (Options.IndexFrames per topic) are answered from the
// index; older ones from a bounded scan of the store.
func (a *API) query(c echo.Context) error {
	p, aerr := ParseQueryParams(c.QueryString(), a.cfg, a.opts.Now())
	if aerr != nil {
		return aerr
	}
	if aerr := a.checkTopics(p.Topics); aerr != nil {
		return aerr
	}
	if aerr := a.checkSelector(p.Selector, p.Topics); aerr != nil {
		return aerr
	}
	r, err := a.run(p)
	if err != nil {
		return &apierr.Error{Status: http.StatusServiceUnavailable, Code: "store_unavailable",
			Message: "the store could not be read; try again", Err: err}
	}
	if r.capped {
		a.m.capped.Inc()
	}
	bp := getBuf()
	defer putBuf(bp)
	if p.Format == FormatCSV {
		*bp = r.appendCSV(*bp)
		h := c.Response().Header()
		h.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
		h.Set(echo.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="livedash-%d-%d.csv"`, r.pl.kFirst*r.pl.step, r.pl.endMs/1000-1))
		h.Set(echo.HeaderCacheControl, "no-store")
		c.Response().WriteHeader(http.StatusOK)
		_, err := c.Response().Write(*bp)
		return err
	}
	*bp = r.appendJSON(*bp)
	return writeJSON(c, *bp, noStore)
}

// appendCSV appends the result as CSV (RFC 4180): a header row "time" and
// one column per series, named by its key (cpu_usage_ratio{cpu="total"},
// prefixed with "<topic>:" where two topics hold the same key), then one row
// per bucket: its start as RFC 3339 UTC and the values, empty where a
// bucket has none. Every header cell after "time" starts with a metric
// name, so no cell is a spreadsheet formula.
func (r *result) appendCSV(b []byte) []byte {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	keys := map[string]int{}
	for _, c := range r.cols {
		keys[c.key]++
	}
	row := make([]string, 0, len(r.cols)+1)
	row = append(row, "time")
	for _, c := range r.cols {
		if keys[c.key] > 1 {
			row = append(row, c.topic+":"+c.key)
		} else {
			row = append(row, c.key)
		}
	}
	_ = w.Write(row) // a bytes.Buffer does not fail
	var num []byte
	for k := 0; k < r.pl.n; k++ {
		row = row[:0]
		row = append(row, time.Unix((r.pl.kFirst+int64(k))*r.pl.step, 0).UTC().Format(time.RFC3339))
		for ci := range r.cols {
			v := r.value(ci, k)
			if math.IsNaN(v) {
				row = append(row, "")
				continue
			}
			num = store.AppendJSONFloat(num[:0], v)
			row = append(row, string(num))
		}
		_ = w.Write(row)
	}
	w.Flush()
	return append(b, buf.Bytes()...)
}

// run answers a parsed query from memory, or from the store when the window
// starts before what memory covers and the store holds older frames.
func (a *API) run(p QueryParams) (*result, error) {
	pl := makePlan(p)
	r, coveredFrom := a.runMemory(p, pl, false)
	if r != nil {
		return r, nil
	}
	if a.store.Len() > 0 && a.store.SeekTime(coveredFrom) > a.store.Oldest().Seq {
		a.m.storeScans.Inc()
		return a.runStore(p, pl)
	}
	r, _ = a.runMemory(p, pl, true)
	return r, nil
}

// runMemory aggregates from the index. Unless force, it returns nil and the
// time memory covers from when the window starts before that.
func (a *API) runMemory(p QueryParams, pl plan, force bool) (*result, int64) {
	r := &result{pl: pl, capped: p.Capped}
	type span struct {
		t      *topicIndex
		lo, hi uint64
		cols   []int
		series []*seriesIndex
	}
	var spans []span
	a.mu.RLock()
	defer a.mu.RUnlock()
	r.last = a.idx.head
	total := 0
	for _, name := range a.idx.topicNames {
		if p.Topics != nil && !contains(p.Topics, name) {
			continue
		}
		t := a.idx.topics[name]
		var sp span
		for _, s := range t.series {
			if !p.Selector.Match(s.name, s.labels) {
				continue
			}
			if len(r.cols) >= maxQuerySeries {
				r.capped = true
				break
			}
			sp.cols = append(sp.cols, r.addColumn(column{topic: name, key: s.key, desc: s.desc, keyJSON: s.keyJSON}))
			sp.series = append(sp.series, s)
		}
		if len(sp.series) == 0 || t.end == t.base {
			continue
		}
		if from := a.idx.coveredFromMs(t); !force && pl.startMs < from {
			return nil, from
		}
		sp.t = t
		sp.lo = t.search(t.base, t.end, pl.startMs)
		sp.hi = t.search(sp.lo, t.end, pl.endMs)
		total += int(sp.hi - sp.lo)
		spans = append(spans, sp)
	}
	if total > a.cfg.QueryMaxFrames {
		// Keep the newest part of every topic's window.
		r.capped = true
		share := uint64(max(1, a.cfg.QueryMaxFrames/len(spans)))
		for i := range spans {
			if spans[i].hi-spans[i].lo > share {
				spans[i].lo = spans[i].hi - share
			}
		}
	}
	var buckets []int32
	for _, sp := range spans {
		t := sp.t
		L := uint64(len(t.ts))
		// Each frame's bucket, once for all the topic's series; -1 outside
		// the window (out of order around a clock jump). ts only grows
		// between jumps, so a division is needed only at bucket boundaries.
		buckets = slices.Grow(buckets[:0], int(sp.hi-sp.lo))[:sp.hi-sp.lo]
		stepMs := pl.step * 1000
		var boundLo, boundHi int64 = 1, 0 // the current bucket's [lo, hi) in ms; empty
		cur := int32(-1)
		for f := sp.lo; f < sp.hi; f++ {
			ms := t.ts[f%L]
			if ms < boundLo || ms >= boundHi {
				cur = int32(pl.bucket(ms))
				if cur >= 0 {
					boundLo = (pl.kFirst + int64(cur)) * stepMs
					boundHi = min(boundLo+stepMs, pl.endMs)
				} else {
					boundLo, boundHi = 1, 0
				}
			}
			buckets[f-sp.lo] = cur
			if cur >= 0 {
				r.scanned++
			}
		}
		for j, s := range sp.series {
			lo := max(sp.lo, s.first)
			if lo >= sp.hi {
				continue
			}
			ci := sp.cols[j]
			n := r.pl.n
			hit := aggregate(s.vals, L, lo, sp.hi, buckets[lo-sp.lo:], r.acc[ci*n:(ci+1)*n], r.cnt[ci*n:(ci+1)*n], pl.group)
			if hit < sp.hi {
				if seq := t.seq[hit%L]; r.first == 0 || seq < r.first {
					r.first = seq
				}
			}
		}
	}
	return r, 0
}

// aggregate folds the ring values of absolute frames [lo, hi) into acc/cnt
// by the frames' buckets (buckets[0] is frame lo's). It returns the first
// frame that had a value in the window, hi if none. The ring range is walked
// as at most two contiguous slices, without a division per value.
func aggregate(vals []float64, L, lo, hi uint64, buckets []int32, acc []float64, cnt []int32, g Group) uint64 {
	hit := hi
	k := 0
	for lo < hi {
		a := lo % L
		end := min(L, a+(hi-lo))
		seg, bk := vals[a:end], buckets[k:k+int(end-a)]
		for i, v := range seg {
			b := bk[i]
			if b < 0 || v != v { // outside the window, or absent (NaN)
				continue
			}
			if hit == hi {
				hit = lo + uint64(i)
			}
			switch g {
			case GroupAvg:
				acc[b] += v
			case GroupMin:
				if cnt[b] == 0 || v < acc[b] {
					acc[b] = v
				}
			case GroupMax:
				if cnt[b] == 0 || v > acc[b] {
					acc[b] = v
				}
			case GroupLast:
				acc[b] = v
			}
			cnt[b]++
		}
		k += len(seg)
		lo += uint64(len(seg))
	}
	return hit
}

// runStore aggregates by scanning the store in short read transactions,
// decoding each frame's samples. It reads at most QueryMaxFrames frames, the
// newest of the window.
func (a *API) runStore(p QueryParams, pl plan) (*result, error) {
	r := &result{pl: pl, capped: p.Capped, fromDisk: true}
	head := a.store.Head()
	r.last = head
	startSeq := a.store.SeekTime(pl.startMs)
	endSeq := min(a.store.SeekTime(pl.endMs), head.Seq+1) // exclusive
	if endSeq > startSeq && endSeq-startSeq > uint64(a.cfg.QueryMaxFrames) {
		startSeq, r.capped = endSeq-uint64(a.cfg.QueryMaxFrames), true
	}
	byKey := map[string]int{} // topic\x00key → column
	var kb []byte
	var keys []string
	// Series the index knows get a column even without a value in the
	// window, as from memory; series found only in the store are added.
	a.mu.RLock()
	for _, name := range a.idx.topicNames {
		if p.Topics != nil && !contains(p.Topics, name) {
			continue
		}
		for _, s := range a.idx.topics[name].series {
			if !p.Selector.Match(s.name, s.labels) {
				continue
			}
			if len(r.cols) >= maxQuerySeries {
				r.capped = true
				break
			}
			byKey[name+"\x00"+s.key] = r.addColumn(column{topic: name, key: s.key, desc: s.desc, keyJSON: s.keyJSON})
		}
	}
	a.mu.RUnlock()
	var buf []storedFrame
	for cursor := startSeq - 1; cursor+1 < endSeq; {
		var err error
		buf, err = readChunk(a.store, cursor, int(min(uint64(loadChunk), endSeq-1-cursor)), buf)
		if err != nil {
			return nil, err
		}
		if len(buf) == 0 {
			break
		}
		cursor = buf[len(buf)-1].seq
		for i := range buf {
			f := &buf[i]
			if f.seq >= endSeq {
				break
			}
			if p.Topics != nil && !contains(p.Topics, f.topic) {
				continue
			}
			b := pl.bucket(f.ts)
			if b < 0 {
				continue
			}
			r.scanned++
			var w wireFrame
			if json.Unmarshal(f.json, &w) != nil {
				continue
			}
			for _, s := range w.Samples {
				if !p.Selector.Match(s.Name, s.Labels) {
					continue
				}
				kb = append(kb[:0], f.topic...)
				kb = append(kb, 0)
				kb, keys = appendSeriesKey(kb, s.Name, s.Labels, keys)
				ci, ok := byKey[string(kb)]
				if !ok {
					if len(r.cols) >= maxQuerySeries {
						r.capped = true
						continue
					}
					key := string(kb[len(f.topic)+1:])
					ci = r.addColumn(column{topic: f.topic, key: key,
						desc: seriesDesc(s.Name, s.Labels, f.topic, unitOf(s.Name)), keyJSON: appendString(nil, key)})
					byKey[string(kb)] = ci
				}
				r.add(ci, b, s.Value, f.seq)
			}
		}
	}
	r.sortColumns()
	return r, nil
}

// sortColumns orders columns by topic, then series key, as the index does.
func (r *result) sortColumns() {
	idx := make([]int, len(r.cols))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(x, y int) int {
		if c := strings.Compare(r.cols[x].topic, r.cols[y].topic); c != 0 {
			return c
		}
		return strings.Compare(r.cols[x].key, r.cols[y].key)
	})
	n := r.pl.n
	cols := make([]column, len(idx))
	acc := make([]float64, len(r.acc))
	cnt := make([]int32, len(r.cnt))
	for to, from := range idx {
		cols[to] = r.cols[from]
		copy(acc[to*n:(to+1)*n], r.acc[from*n:(from+1)*n])
		copy(cnt[to*n:(to+1)*n], r.cnt[from*n:(from+1)*n])
	}
	r.cols, r.acc, r.cnt = cols, acc, cnt
}

// value is the bucket's result, NaN when empty.
func (r *result) value(ci, b int) float64 {
	i := ci*r.pl.n + b
	if r.cnt[i] == 0 {
		return math.NaN()
	}
	if r.pl.group == GroupAvg {
		return r.acc[i] / float64(r.cnt[i])
	}
	return r.acc[i]
}

func (r *result) appendJSON(b []byte) []byte {
	pl := &r.pl
	b = append(b, `{"series":[`...)
	for i, c := range r.cols {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, c.desc...)
	}
	b = append(b, `],"labels":["time"`...)
	for _, c := range r.cols {
		b = append(b, ',')
		b = append(b, c.keyJSON...)
	}
	b = append(b, `],"data":[[`...)
	for k := 0; k < pl.n; k++ {
		if k > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, (pl.kFirst+int64(k))*pl.step, 10)
	}
	b = append(b, ']')
	for ci := range r.cols {
		b = append(b, ",["...)
		for k := 0; k < pl.n; k++ {
			if k > 0 {
				b = append(b, ',')
			}
			b = appendFloat(b, r.value(ci, k))
		}
		b = append(b, ']')
	}
	b = append(b, `],"first":`...)
	if r.first == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, '"')
		b = store.ID{Epoch: r.last.Epoch, Seq: r.first}.AppendTo(b)
		b = append(b, '"')
	}
	b = append(b, `,"last":"`...)
	b = r.last.AppendTo(b)
	b = append(b, `","after":`...)
	b = strconv.AppendInt(b, pl.kFirst*pl.step, 10)
	b = append(b, `,"before":`...)
	b = strconv.AppendInt(b, pl.endMs/1000-1, 10)
	b = append(b, `,"points":`...)
	b = strconv.AppendInt(b, int64(pl.n), 10)
	b = append(b, `,"step":`...)
	b = strconv.AppendInt(b, pl.step, 10)
	b = append(b, `,"group":"`...)
	b = append(b, pl.group...)
	b = append(b, `","capped":`...)
	b = strconv.AppendBool(b, r.capped)
	return append(b, "}\n"...)
}
