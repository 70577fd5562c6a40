package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// asyncGet is the outcome of a GET made in another goroutine: the status,
// the body decoded into the caller's value, and any error (no Fatal outside
// the test's goroutine).
type asyncGet struct {
	code int
	at   time.Time // when the answer was read
	err  error
}

// getJSONAsync GETs url in a new goroutine and decodes the body into v; the
// returned channel receives the outcome (v is written before it is sent).
func getJSONAsync(url string, v any) <-chan asyncGet {
	ch := make(chan asyncGet, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			ch <- asyncGet{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		at := time.Now()
		if err == nil {
			if err = json.Unmarshal(b, v); err != nil {
				err = fmt.Errorf("GET %s: %d %s: %w", url, resp.StatusCode, b, err)
			}
		}
		ch <- asyncGet{code: resp.StatusCode, at: at, err: err}
	}()
	return ch
}

// await receives the outcome of getJSONAsync, failing the test (from its own
// goroutine) on an error or when none comes within d.
func await(tb testing.TB, ch <-chan asyncGet, d time.Duration, what string) asyncGet {
	tb.Helper()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case r := <-ch:
		if r.err != nil {
			tb.Fatalf("%s: %v", what, r.err)
		}
		return r
	case <-t.C:
		tb.Fatalf("%s: no answer within %v", what, d)
	}
	return asyncGet{}
}
