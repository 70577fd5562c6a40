package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/goleak"

	"livedash/config"
	"livedash/dashboard/apierr"
	"livedash/dashboard/store"
	"livedash/dashboard/store/bolt"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testCfg() config.API { return config.Default().API }

// openStore opens a real bbolt store in t.TempDir(), closed on cleanup.
func openStore(tb testing.TB, opts bolt.Options) *bolt.Store {
	tb.Helper()
	if opts.Path == "" {
		opts.Path = filepath.Join(tb.TempDir(), "store.db")
	}
	opts.NoSync = true
	s, err := bolt.Open(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Error(err)
		}
		// Reopen once: Open runs bbolt's consistency check.
		opts.Registerer = nil
		s2, err := bolt.Open(opts)
		if err != nil {
			tb.Errorf("reopen store: %v", err)
			return
		}
		_ = s2.Close()
	})
	return s
}

// testServer is an API behind a real HTTP server on 127.0.0.1:0.
type testServer struct {
	api   *API
	store *bolt.Store
	url   string
	srv   *httptest.Server
}

func newTestServer(tb testing.TB, store *bolt.Store, cfg config.API, opts Options) *testServer {
	tb.Helper()
	a := New(store, cfg, opts)
	store.OnCommit(a.OnCommit)
	if err := a.Load(); err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(newEcho(a))
	tb.Cleanup(func() {
		a.Close()
		srv.Close()
	})
	return &testServer{api: a, store: store, url: srv.URL, srv: srv}
}

// newEcho is a minimal server: the API's routes and an error handler that
// renders *apierr.Error like the real one.
func newEcho(a *API) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		var ae *apierr.Error
		if !errors.As(err, &ae) {
			var he *echo.HTTPError
			if errors.As(err, &he) {
				ae = apierr.New(he.Code, "http_error", "%v", he.Message)
			} else {
				ae = apierr.New(http.StatusInternalServerError, "internal_error", "internal error")
			}
		}
		_ = c.JSON(ae.Status, apierr.BodyOf(ae))
	}
	for _, r := range a.Routes() {
		e.Add(r.Method, r.Path, r.Handler).Name = r.Name
	}
	return e
}

func get(tb testing.TB, url string) (int, []byte) {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, b
}

func getJSON(tb testing.TB, url string, v any) int {
	tb.Helper()
	code, b := get(tb, url)
	if err := json.Unmarshal(b, v); err != nil {
		tb.Fatalf("GET %s: %d %s: %v", url, code, b, err)
	}
	return code
}

// framesResp is the /frames body, frames kept raw to compare bytes.
type framesResp struct {
	Frames []json.RawMessage `json:"frames"`
	Next   string            `json:"next"`
	Head   string            `json:"head"`
	Oldest string            `json:"oldest"`
	Reset  *struct {
		Reason    string `json:"reason"`
		Requested string `json:"requested"`
		Oldest    string `json:"oldest"`
		Head      string `json:"head"`
	} `json:"reset"`
}

var t0 = time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)

// appendFrames appends n frames of topic, one per call, at t0+seq seconds
// unless at is set.
func appendFrames(tb testing.TB, s *bolt.Store, topic string, n int, at func(i int) time.Time) []store.Frame {
	tb.Helper()
	var out []store.Frame
	for i := range n {
		tm := t0.Add(time.Duration(s.Head().Seq+1) * time.Second)
		if at != nil {
			tm = at(i)
		}
		fs, err := s.Append([]store.Batch{{Topic: topic, Time: tm, Samples: []store.Sample{
			{Name: topic + "_usage_ratio", Labels: map[string]string{"cpu": "total"}, Value: float64(i) / 10},
		}}})
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, fs...)
	}
	return out
}
