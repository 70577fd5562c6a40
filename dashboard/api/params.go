package api

import (
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"livedash/config"
	"livedash/dashboard/apierr"
	"livedash/dashboard/store"
)

// Parameter parsing is pure (raw query string + config + clock in, typed
// parameters or one *apierr.Error out) so that it can be fuzzed without a
// server. Rules shared by every endpoint:
//
//   - an unknown parameter name is a 400 unknown_parameter, a repeated one a
//     400 duplicate_parameter (both name the parameter);
//   - an empty value (`limit=`) means the parameter is omitted, so a script can
//     always write `after=$cursor` even before it has a cursor;
//   - every other bad value is a 400 invalid_parameter whose message names the
//     parameter and the accepted range.

const (
	maxTopics      = 64   // topics listed in one filter
	maxTopicLen    = 255  // store.ErrTopic bound
	maxSelectorLen = 1024 // bytes of series=
	maxEcho        = 40   // bytes of a bad value quoted back in a message

	// timeAbsMax bounds |after| and |before|: Unix seconds up to year 5138,
	// relative offsets of the same size. Anything larger is a typo.
	timeAbsMax = 100_000_000_000

	defaultPoints = 300
	defaultAfter  = -600
)

// splitQuery splits a raw query string into parameters, rejecting names not in
// allowed and names given twice. It returns nil for an empty query.
func splitQuery(raw string, allowed ...string) (map[string]string, *apierr.Error) {
	if raw == "" {
		return nil, nil
	}
	out := make(map[string]string, 4)
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			return nil, apierr.New(http.StatusBadRequest, "invalid_query", "the query string is not valid URL encoding (at %s)", quote(k))
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return nil, apierr.BadParam(safeName(name), "value is not valid URL encoding")
		}
		known := false
		for _, a := range allowed {
			if a == name {
				known = true
				break
			}
		}
		if !known {
			list := "none"
			if len(allowed) > 0 {
				list = strings.Join(allowed, ", ")
			}
			return nil, apierr.New(http.StatusBadRequest, "unknown_parameter",
				"unknown parameter %s; this endpoint accepts: %s", quote(name), list)
		}
		if _, dup := out[name]; dup {
			return nil, apierr.New(http.StatusBadRequest, "duplicate_parameter",
				"parameter %s is given more than once; give it once", name)
		}
		out[name] = val
	}
	return out, nil
}

// quote renders client input for an error message: Go-quoted (so control
// characters and invalid UTF-8 show as escapes) and cut to maxEcho bytes.
func quote(s string) string {
	if len(s) > maxEcho {
		cut := maxEcho
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "…"
	}
	return strconv.Quote(s)
}

// safeName is a parameter name known to be in the allowed list, or quoted.
func safeName(s string) string { return quote(s) }

// AfterMode says where a /frames read starts.
type AfterMode int

// After modes.
const (
	AfterHead   AfterMode = iota // after omitted: from the head, nothing old
	AfterOldest                  // after=oldest: from the oldest retained frame
	AfterID                      // after=<id>
)

// FramesParams are the parsed parameters of GET /api/v1/frames.
type FramesParams struct {
	Mode    AfterMode
	After   store.ID // Mode == AfterID
	Topics  []string
	Limit   int
	Wait    time.Duration // already clamped to cfg.MaxWait
	Clamped bool          // wait was over cfg.MaxWait
}

// ParseFramesParams parses the query string of GET /api/v1/frames.
func ParseFramesParams(raw string, cfg config.API) (FramesParams, *apierr.Error) {
	p := FramesParams{Limit: cfg.DefaultLimit}
	q, aerr := splitQuery(raw, "after", "topics", "limit", "wait")
	if aerr != nil {
		return p, aerr
	}
	if v := q["after"]; v != "" {
		if v == "oldest" {
			p.Mode = AfterOldest
		} else {
			id, err := store.ParseID(v)
			if err != nil {
				return p, apierr.BadParam("after", "must be an event ID such as 9f2c41d07a3be511-1042 (16 hex digits, '-', a decimal sequence; at most %d bytes) or \"oldest\"; got %s", store.MaxIDLen, quote(v))
			}
			p.Mode, p.After = AfterID, id
		}
	}
	if p.Topics, aerr = parseTopics(q["topics"]); aerr != nil {
		return p, aerr
	}
	if v := q["limit"]; v != "" {
		n, ok := parseInt(v, 1, int64(cfg.MaxLimit))
		if !ok {
			return p, apierr.BadParam("limit", "must be an integer from 1 to %d; got %s", cfg.MaxLimit, quote(v))
		}
		p.Limit = int(n)
	}
	if v := q["wait"]; v != "" {
		d, ok := parseWait(v)
		if !ok {
			return p, apierr.BadParam("wait", "must be a non-negative duration such as 30s, 500ms or 2m (or whole seconds); values over %s are clamped to %s; got %s", cfg.MaxWait.D(), cfg.MaxWait.D(), quote(v))
		}
		if d > cfg.MaxWait.D() {
			d, p.Clamped = cfg.MaxWait.D(), true
		}
		p.Wait = d
	}
	return p, nil
}

// parseWait accepts a Go duration ("30s", "1m30s") or whole seconds ("30").
// Durations too large for time.Duration are accepted as "very long" (they are
// clamped anyway); negative values and anything else are rejected.
func parseWait(v string) (time.Duration, bool) {
	if n, ok := parseInt(v, 0, math.MaxInt64); ok {
		if n > int64(math.MaxInt64/time.Second) {
			return math.MaxInt64, true
		}
		return time.Duration(n) * time.Second, true
	}
	if strings.HasPrefix(v, "-") || strings.HasPrefix(v, "+") {
		return 0, false
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		if isHugeDuration(v) {
			return math.MaxInt64, true
		}
		return 0, false
	}
	return d, d >= 0
}

// isHugeDuration reports whether v is a syntactically valid positive duration
// that only failed to parse because it overflows (e.g. "99999999999h").
func isHugeDuration(v string) bool {
	if v == "" {
		return false
	}
	digits := false
	for i := 0; i < len(v); {
		c := v[i]
		switch {
		case c >= '0' && c <= '9' || c == '.':
			digits = true
			i++
		default:
			j := i
			for j < len(v) && !(v[j] >= '0' && v[j] <= '9' || v[j] == '.') {
				j++
			}
			switch v[i:j] {
			case "ns", "us", "µs", "μs", "ms", "s", "m", "h":
			default:
				return false
			}
			if !digits {
				return false
			}
			digits = false
			i = j
		}
	}
	return !digits
}

// parseInt parses a plain decimal integer (optional leading '-') within
// [lo, hi]. No '+', spaces, exponents or fractions.
func parseInt(v string, lo, hi int64) (int64, bool) {
	if v == "" || v[0] == '+' {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, false
	}
	return n, true
}

// parseTopics parses a comma-separated topic list. Empty means all topics.
func parseTopics(v string) ([]string, *apierr.Error) {
	if v == "" {
		return nil, nil
	}
	var out []string
	for t := range strings.SplitSeq(v, ",") {
		if t == "" || len(t) > maxTopicLen {
			return nil, apierr.BadParam("topics", "must be a comma-separated list of topic names of 1 to %d bytes each; got %s", maxTopicLen, quote(v))
		}
		dup := false
		for _, o := range out {
			if o == t {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, t)
		}
		if len(out) > maxTopics {
			return nil, apierr.BadParam("topics", "lists at most %d topics", maxTopics)
		}
	}
	return out, nil
}

// LatestParams are the parsed parameters of GET /api/v1/latest.
type LatestParams struct{ Topics []string }

// ParseLatestParams parses the query string of GET /api/v1/latest.
func ParseLatestParams(raw string) (LatestParams, *apierr.Error) {
	q, aerr := splitQuery(raw, "topics")
	if aerr != nil {
		return LatestParams{}, aerr
	}
	t, aerr := parseTopics(q["topics"])
	return LatestParams{Topics: t}, aerr
}

// ParseSeriesParams parses the query string of GET /api/v1/series.
func ParseSeriesParams(raw string) (LatestParams, *apierr.Error) { return ParseLatestParams(raw) }

// ParseNoParams rejects any query parameter (GET /api/v1/openapi.json).
func ParseNoParams(raw string) *apierr.Error {
	_, aerr := splitQuery(raw)
	return aerr
}

// Group is a downsampling function.
type Group string

// Groups.
const (
	GroupAvg  Group = "avg"
	GroupMin  Group = "min"
	GroupMax  Group = "max"
	GroupLast Group = "last"
)

// QueryParams are the parsed parameters of GET /api/v1/query. After and
// Before are resolved to Unix seconds (Before inclusive).
type QueryParams struct {
	Selector Selector
	Topics   []string
	After    int64
	Before   int64
	Points   int
	Capped   bool // points was over cfg.QueryMaxPoints and was clamped
	Group    Group
	Format   Format
}

// Format is how /api/v1/query answers.
type Format string

// Formats: FormatJSON (the default) for charts and scripts, FormatCSV for
// a download (a spreadsheet, or a line per point for a script).
const (
	FormatJSON Format = "json"
	FormatCSV  Format = "csv"
)

// ParseQueryParams parses the query string of GET /api/v1/query; now is the
// reference for relative times.
func ParseQueryParams(raw string, cfg config.API, now time.Time) (QueryParams, *apierr.Error) {
	p := QueryParams{Points: defaultPoints, Group: GroupAvg, Format: FormatJSON}
	q, aerr := splitQuery(raw, "series", "topics", "after", "before", "points", "group", "format")
	if aerr != nil {
		return p, aerr
	}
	if v := q["series"]; v != "" {
		sel, msg := ParseSelector(v)
		if msg != "" {
			return p, apierr.BadParam("series", "must be a series name or a selector like cpu_usage_ratio{cpu=\"total\",mode!=\"idle\"}: %s", msg)
		}
		p.Selector = sel
	}
	if p.Topics, aerr = parseTopics(q["topics"]); aerr != nil {
		return p, aerr
	}
	after, before := int64(defaultAfter), int64(0)
	for _, x := range []struct {
		name string
		dst  *int64
	}{{"after", &after}, {"before", &before}} {
		if v := q[x.name]; v != "" {
			n, ok := parseInt(v, -timeAbsMax, timeAbsMax)
			if !ok {
				return p, apierr.BadParam(x.name, "must be an integer: Unix seconds, or 0 or negative for seconds relative to %s, within ±%d; got %s",
					map[string]string{"after": "before", "before": "now"}[x.name], int64(timeAbsMax), quote(v))
			}
			*x.dst = n
		}
	}
	var ok bool
	if p.After, p.Before, ok = ResolveWindow(after, before, now.Unix()); !ok {
		return p, apierr.BadParam("after", "the window must not be empty: after resolves to %d and before to %d (Unix seconds); after must be earlier than before", p.After, p.Before)
	}
	if v := q["points"]; v != "" {
		n, ok := parseInt(v, 1, math.MaxInt32)
		if !ok {
			return p, apierr.BadParam("points", "must be an integer from 1 to %d (larger values are clamped to %d); got %s", math.MaxInt32, cfg.QueryMaxPoints, quote(v))
		}
		p.Points = int(n)
	}
	if p.Points > cfg.QueryMaxPoints {
		p.Points, p.Capped = cfg.QueryMaxPoints, true
	}
	if v := q["group"]; v != "" {
		switch Group(v) {
		case GroupAvg, GroupMin, GroupMax, GroupLast:
			p.Group = Group(v)
		default:
			return p, apierr.BadParam("group", "must be one of avg, min, max, last; got %s", quote(v))
		}
	}
	if v := q["format"]; v != "" {
		switch Format(v) {
		case FormatJSON, FormatCSV:
			p.Format = Format(v)
		default:
			return p, apierr.BadParam("format", "must be json or csv; got %s", quote(v))
		}
	}
	return p, nil
}

// ResolveWindow applies Netdata's time grammar: before ≤ 0 is relative to now,
// after ≤ 0 is relative to (the resolved) before, positive values are Unix
// seconds. ok is false when the window is empty (after ≥ before).
func ResolveWindow(after, before, now int64) (from, to int64, ok bool) {
	if before <= 0 {
		before = now + before
	}
	if after <= 0 {
		after = before + after
	}
	return after, before, after < before
}
