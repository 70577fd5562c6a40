package api

import (
	"math"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"livedash/dashboard/store"
)

// Responses are assembled by appending: frame bytes are copied verbatim and
// the few other values are encoded here. Strings are escaped like
// encoding/json with HTML escaping plus U+2028/U+2029, the same as the store's
// frame encoder, so names and labels from outside (markup, newlines, line
// separators) are inert
// wherever the bytes end up.

// appendString appends s as a JSON string (see store.AppendJSONString).
func appendString(b []byte, s string) []byte { return store.AppendJSONString(b, s) }

// appendFloat appends v as encoding/json would; NaN and ±Inf, which JSON
// cannot carry, become null.
func appendFloat(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	return store.AppendJSONFloat(b, v)
}

// appendLabels appends a label map as a JSON object with sorted keys.
func appendLabels(b []byte, labels map[string]string) []byte {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sortStrings(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, labels[k])
	}
	return append(b, '}')
}

// Header values shared by every response that sets them. net/http clones the
// handler's header map before writing it and never changes the values, so
// one slice serves every request and setting a header allocates nothing.
var (
	jsonType = []string{echo.MIMEApplicationJSON}
	noStore  = []string{"no-store"}
	noCache  = []string{"no-cache"}
)

// dateValue is the Date header of one second, formatted once.
type dateValue struct {
	sec int64
	v   []string
}

var dateCache atomic.Pointer[dateValue]

// httpDate returns now as a Date header value (RFC 9110 IMF-fixdate),
// formatted once per second and shared by every response in it.
func httpDate(now time.Time) []string {
	sec := now.Unix()
	if d := dateCache.Load(); d != nil && d.sec == sec {
		return d.v
	}
	d := &dateValue{sec: sec, v: []string{now.UTC().Format(http.TimeFormat)}}
	dateCache.Store(d)
	return d.v
}

// writeJSON answers 200 with body as application/json and the given
// Cache-Control (nil: as already set). It is c.Blob without its per-request
// allocations (the header values), which matters where one commit releases
// thousands of long polls at once; every JSON answer of the API goes
// through it.
func writeJSON(c echo.Context, body []byte, cacheControl []string) error {
	resp := c.Response()
	h := resp.Header()
	h[echo.HeaderContentType] = jsonType
	if cacheControl != nil {
		h[echo.HeaderCacheControl] = cacheControl
	}
	h["Date"] = httpDate(time.Now()) // net/http formats its own only when absent
	resp.WriteHeader(http.StatusOK)
	_, err := resp.Write(body)
	return err
}
