package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"livedash/config"
	"livedash/dashboard/hub"
	"livedash/dashboard/sse"
	"livedash/dashboard/store"
	"livedash/dashboard/store/bolt"
	"livedash/dashboard/ws"
)

type tailEnv struct {
	store *bolt.Store
	hub   *sse.Transport
	srv   *httptest.Server
	fail  atomic.Int32         // answer this many stream requests with 503 first
	reg   *prometheus.Registry // the hub's metrics
}

func newTailEnv(t *testing.T) *tailEnv {
	t.Helper()
	st, err := bolt.Open(bolt.Options{Path: filepath.Join(t.TempDir(), "store.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Stream{QueueSize: 1024, WriteTimeout: config.Duration(10 * time.Second),
		Heartbeat: config.Duration(15 * time.Second), Retry: config.Duration(100 * time.Millisecond),
		ReplayMaxFrames: 10000, ReplayMaxBytes: 8 << 20, DrainWindow: config.Duration(100 * time.Millisecond)}
	te := &tailEnv{store: st, reg: prometheus.NewRegistry()}
	te.hub = sse.New(hub.New(st, cfg, hub.Options{Registerer: te.reg}), sse.Options{})
	st.OnCommit(te.hub.Publish)
	wsT := ws.New(te.hub.Hub, ws.Options{})
	e := echo.New()
	failing := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if te.fail.Load() > 0 {
				te.fail.Add(-1)
				return c.String(http.StatusServiceUnavailable, "deploying")
			}
			return next(c)
		}
	}
	e.GET("/api/v1/stream", failing(te.hub.ServeStream))
	e.GET("/api/v1/ws", failing(wsT.Serve))
	te.srv = httptest.NewServer(e)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = te.hub.Shutdown(ctx)
		te.srv.Close()
		_ = st.Close()
	})
	return te
}

func (te *tailEnv) append(t *testing.T, topic string, n int) []store.Frame {
	t.Helper()
	bs := make([]store.Batch, n)
	for i := range bs {
		bs[i] = store.Batch{Topic: topic, Samples: []store.Sample{{Name: "v", Value: float64(i)}}}
	}
	fs, err := te.store.Append(bs)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// startTail runs runTail until the test ends; it returns stdout and stderr.
func startTail(t *testing.T, args ...string) (out, errOut *syncBuffer, stop func() error) {
	t.Helper()
	out, errOut = &syncBuffer{}, &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runTail(ctx, args, out, errOut) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return out, errOut, stop
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 30s waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func frameIDs(t *testing.T, out string) []string {
	t.Helper()
	var ids []string
	for line := range strings.Lines(out) {
		var f struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatalf("line %q is not a frame: %v", line, err)
		}
		ids = append(ids, f.ID)
	}
	return ids
}

func ids(fs []store.Frame) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.ID.String())
	}
	return out
}

// TestTailResumesAcrossDisconnects: tail follows, is cut off, reconnects
// with its last ID and prints every frame exactly once, in order; the state
// file holds the last ID.
func TestTailResumesAcrossDisconnects(t *testing.T) {
	forEachTransport(t, func(t *testing.T, transport string) {
		te := newTailEnv(t)
		te.append(t, "cpu", 3) // before tail: not printed (starts live)
		state := filepath.Join(t.TempDir(), "tail.state")
		out, _, stop := startTail(t, "--transport", transport, "--server", te.srv.URL, "--state", state, "--max-backoff", "200ms")
		te.waitLive(t)

		var want []string
		want = append(want, ids(te.append(t, "cpu", 5))...)
		waitUntil(t, "5 frames", func() bool { return strings.Count(out.String(), "\n") == 5 })
		for range 3 {
			te.srv.CloseClientConnections()
			want = append(want, ids(te.append(t, "cpu", 4))...) // while disconnected
			waitUntil(t, "reconnect", func() bool { return te.hub.Streams() == 1 })
			want = append(want, ids(te.append(t, "memory", 2))...)
			n := len(want)
			waitUntil(t, "frames after reconnect", func() bool { return strings.Count(out.String(), "\n") >= n })
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if got := frameIDs(t, out.String()); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("printed\n%v\nwant\n%v", got, want)
		}
		b, err := os.ReadFile(state)
		if err != nil || strings.TrimSpace(string(b)) != want[len(want)-1] {
			t.Fatalf("state %q (%v), want %s", b, err, want[len(want)-1])
		}

		// A new tail with the state file resumes after the last printed frame.
		more := ids(te.append(t, "cpu", 3))
		out2, _, stop2 := startTail(t, "--transport", transport, "--server", te.srv.URL, "--state", state)
		waitUntil(t, "resumed frames", func() bool { return strings.Count(out2.String(), "\n") >= 3 })
		_ = stop2()
		if got := frameIDs(t, out2.String()); strings.Join(got, " ") != strings.Join(more, " ") {
			t.Fatalf("resume from state printed %v, want %v", got, more)
		}
	})
}

// TestTailRetriesNon200: a 503 (a deploy) is not final for tail.
func TestTailRetriesNon200(t *testing.T) {
	forEachTransport(t, func(t *testing.T, transport string) {
		te := newTailEnv(t)
		te.fail.Store(3)
		out, errOut, _ := startTail(t, "--transport", transport, "--server", te.srv.URL+"/", "--topics", "cpu", "--max-backoff", "100ms")
		te.waitLive(t) // after the 503s
		te.append(t, "memory", 1)
		f := te.append(t, "cpu", 1)
		waitUntil(t, "frame", func() bool { return strings.Contains(out.String(), f[0].ID.String()) })
		if strings.Contains(out.String(), `"memory"`) {
			t.Fatalf("topic filter ignored: %s", out.String())
		}
		if !strings.Contains(errOut.String(), "503") {
			t.Fatalf("stderr does not mention the 503: %q", errOut.String())
		}
	})
}

// TestTailReset: --since of another epoch gets a reset on stderr; tail goes
// on with live frames.
func TestTailReset(t *testing.T) {
	forEachTransport(t, func(t *testing.T, transport string) {
		te := newTailEnv(t)
		other := store.ID{Epoch: te.store.Epoch() ^ 1, Seq: 7}.String()
		out, errOut, _ := startTail(t, "--transport", transport, "--server", te.srv.URL, "--since", other)
		waitUntil(t, "reset on stderr", func() bool { return strings.Contains(errOut.String(), `"reason":"unknown_epoch"`) })
		f := te.append(t, "cpu", 1)
		waitUntil(t, "frame after reset", func() bool { return strings.Contains(out.String(), f[0].ID.String()) })
	})
}

// forEachTransport runs f over SSE and over WebSocket: tail behaves alike.
func forEachTransport(t *testing.T, f func(t *testing.T, transport string)) {
	for _, tr := range []string{"sse", "ws"} {
		t.Run(tr, func(t *testing.T) { f(t, tr) })
	}
}

func TestTailFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--server", "ftp://x"},
		{"--server", "localhost:7070"},
		{"--since", "nope"},
		{"--max-backoff", "0s"},
		{"--transport", "udp"},
		{"extra"},
		{"--bogus"},
	} {
		err := runTail(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{})
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("runTail(%q) = %v, want a usage error", args, err)
		}
	}
}

// TestTailServerShutdownIsAReconnect: a server that shuts down ends the
// stream cleanly (a retry: hint, then the end of the body); tail says so and
// reconnects, and never calls it a failed request.
func TestTailServerShutdownIsAReconnect(t *testing.T) {
	te := newTailEnv(t)
	_, errOut, _ := startTail(t, "--server", te.srv.URL, "--max-backoff", "100ms")
	waitUntil(t, "tail connected", func() bool { return te.hub.Streams() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := te.hub.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the reconnect line", func() bool {
		return strings.Contains(errOut.String(), "the server closed the stream (restarting or shutting down); reconnecting in")
	})
	// The hub refuses new streams now: the server closes those connections
	// before a stream begins, which is a reconnect too.
	waitUntil(t, "a refused reconnect", func() bool { return strings.Contains(errOut.String(), "before the stream began") })
	if strings.Contains(errOut.String(), "request failed") {
		t.Fatalf("stderr calls a clean close a failure:\n%s", errOut.String())
	}
}
