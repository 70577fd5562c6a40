package sse

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	sse "github.com/tmaxmax/go-sse"

	"livedash/dashboard/hub"
	"livedash/dashboard/store/bolt"
	"livedash/dashboard/store/storetest"
)

// newFaultyEnv is newEnv with the hub reading a Faulty wrapper of the store
// (appends through e.store reach it through the same commit hook).
func newFaultyEnv(tb testing.TB) (*env, *storetest.Faulty) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "store.db")
	st, err := bolt.Open(bolt.Options{Path: path, NoSync: true, MaxFrames: 100000})
	if err != nil {
		tb.Fatal(err)
	}
	f := storetest.NewFaulty(st)
	reg := prometheus.NewRegistry()
	h := New(hub.New(f, testConfig(), hub.Options{Registerer: reg}), Options{})
	f.OnCommit(h.Publish)
	e := echo.New()
	e.HideBanner = true
	e.GET("/api/v1/stream", h.ServeStream)
	srv := httptest.NewUnstartedServer(e)
	srv.Config.ReadHeaderTimeout = 5 * time.Second
	srv.Start()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			tb.Errorf("hub shutdown: %v", err)
		}
		srv.Close()
		if err := st.Close(); err != nil {
			tb.Error(err)
		}
		checkBolt(tb, path)
	})
	return &env{store: st, hub: h, reg: reg, srv: srv, url: srv.URL + "/api/v1/stream"}, f
}

// streamEvents reads a stream's events until its body ends (at most 30 s,
// which only a hang reaches) and returns them with the error the body ended
// with (nil: a clean EOF).
func streamEvents(tb testing.TB, c *client) ([]string, []string, error) {
	tb.Helper()
	var types, ids []string
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				return types, ids, c.err
			}
			types, ids = append(types, ev.Type), append(ids, ev.LastEventID)
		case <-timer.C:
			tb.Fatalf("stream still open after 30s: %d events so far", len(types))
		}
	}
}

// Replay, first chunk (readFirstChunk's read fails): the stream sends the
// hello alone — with its retry: hint and no id:, so the client's
// Last-Event-ID stays its cursor — and ends cleanly without a frame (what
// the failed read saw is discarded); the disconnect is counted as
// store_error and the subscriber is gone. Reconnecting as an EventSource
// would (Last-Event-ID: the last id: it saw, else its cursor), the store
// healed, replays every frame after the cursor.
func TestReplayFirstChunkReadErrorEndsStream(t *testing.T) {
	e, f := newFaultyEnv(t)
	fs := e.appendN(t, "cpu", 20, 10)
	cursor := fs[4].ID.String()
	f.Fail(storetest.OpAfterView)
	lines, _ := rawStream(t, e.url+"?lastEventId="+url.QueryEscape(cursor), "")
	got := untilEOF(t, lines, 30*time.Second)
	var events []sse.Event
	for ev, err := range sse.Read(strings.NewReader(strings.Join(got, "\n")+"\n"), nil) {
		if err != nil {
			t.Fatalf("parsing %q: %v", got, err)
		}
		events = append(events, ev)
	}
	if len(events) != 1 || events[0].Type != "hello" {
		t.Fatalf("stream with a failing first replay read: %q; want the hello alone, then the end", got)
	}
	var hello hub.Hello
	if err := json.Unmarshal([]byte(events[0].Data), &hello); err != nil {
		t.Fatal(err)
	}
	if retry := retryOf(t, got); retry <= 0 || retry.Milliseconds() != hello.RetryMS {
		t.Fatalf("retry: %v, hello retry_ms %d; want the same positive hint", retry, hello.RetryMS)
	}
	lastID := cursor
	for _, l := range got {
		if v, ok := strings.CutPrefix(l, "id: "); ok {
			lastID = v
		}
	}
	if lastID != cursor {
		t.Fatalf("the client's Last-Event-ID moved from %s to %s without a frame", cursor, lastID)
	}
	waitFor(t, 10*time.Second, "disconnects{store_error} = 1", func() bool {
		return e.metric(t, "disconnects", hub.DisconnectError) == 1
	})
	waitFor(t, 10*time.Second, "the subscriber unregistered", func() bool { return e.hub.Streams() == 0 })
	if n := e.metric(t, "replayed"); n != 0 {
		t.Fatalf("replayed frames counted: %v", n)
	}

	f.Heal(storetest.OpAfterView)
	c := dial(t, e.url, "", lastID)
	if ev := c.next(t, 10*time.Second); ev.Type != "hello" {
		t.Fatalf("first event %q", ev.Type)
	}
	for _, want := range fs[5:] {
		if ev := c.next(t, 10*time.Second); ev.Type != "frame" || ev.LastEventID != want.ID.String() {
			t.Fatalf("healed replay: event %q id %s, want frame %s", ev.Type, ev.LastEventID, want.ID)
		}
	}
	// Nothing after the replay but live frames: the next event is a new one.
	next := e.appendN(t, "cpu", 1, 10)[0]
	if ev := c.next(t, 10*time.Second); ev.Type != "frame" || ev.LastEventID != next.ID.String() {
		t.Fatalf("after the replay: event %q id %s, want the live frame %s", ev.Type, ev.LastEventID, next.ID)
	}
}

// Replay, a later chunk (replay's loop read fails): the client got the
// hello and the first chunk (some but not all of the frames, the first ones,
// in order with no gap), then the stream ends; store_error is counted. Resuming from the last ID it got, the store
// healed, it gets the rest: nothing lost, nothing repeated.
func TestReplayLaterChunkReadErrorEndsStream(t *testing.T) {
	e, f := newFaultyEnv(t)
	const n = 2000 // several replay chunks
	fs := e.appendN(t, "cpu", n, 10)
	f.FailAfter(storetest.OpAfterView, 1) // the first chunk, then nothing
	types, ids, err := streamEvents(t, dial(t, e.url, "", idStr(e.store.Epoch(), 0)))
	if err != nil || len(types) < 2 || types[0] != "hello" {
		t.Fatalf("stream with a failing second replay read: %d events starting %q, end %v", len(types), types[:min(len(types), 2)], err)
	}
	frames := ids[1:]
	if len(frames) == 0 || len(frames) >= n {
		t.Fatalf("%d of %d frames before the stream ended, want the first chunk only", len(frames), n)
	}
	for i, id := range frames {
		if types[i+1] != "frame" || id != fs[i].ID.String() {
			t.Fatalf("event %d: %q %s, want frame %s", i+1, types[i+1], id, fs[i].ID)
		}
	}
	waitFor(t, 10*time.Second, "disconnects{store_error} = 1", func() bool {
		return e.metric(t, "disconnects", hub.DisconnectError) == 1
	})
	if got := e.metric(t, "replayed"); got != float64(len(frames)) {
		t.Fatalf("replayed frames counted %v, want the %d sent", got, len(frames))
	}

	f.Heal(storetest.OpAfterView)
	c := dial(t, e.url, "", frames[len(frames)-1])
	if ev := c.next(t, 10*time.Second); ev.Type != "hello" {
		t.Fatalf("first event %q", ev.Type)
	}
	for _, want := range fs[len(frames):] {
		if ev := c.next(t, 10*time.Second); ev.Type != "frame" || ev.LastEventID != want.ID.String() {
			t.Fatalf("resumed replay: event %q id %s, want frame %s", ev.Type, ev.LastEventID, want.ID)
		}
	}
}

// Replay cap count (tooFar's ScanView fails): the count cannot say the
// replay is too far, so the replay goes ahead; its own reads succeed, and
// the client gets every frame, no reset.
func TestReplayCapCountErrorStillReplays(t *testing.T) {
	e, f := newFaultyEnv(t)
	fs := e.appendN(t, "cpu", 2000, 10) // several replay chunks
	f.Fail(storetest.OpScanView)
	c := dial(t, e.url, "", idStr(e.store.Epoch(), 0))
	if ev := c.next(t, 10*time.Second); ev.Type != "hello" {
		t.Fatalf("first event %q", ev.Type)
	}
	for _, want := range fs {
		if ev := c.next(t, 10*time.Second); ev.Type != "frame" || ev.LastEventID != want.ID.String() {
			t.Fatalf("replay: event %q id %s, want frame %s", ev.Type, ev.LastEventID, want.ID)
		}
	}
	if f.Calls(storetest.OpScanView) == 0 {
		t.Fatal("the replay cap was not counted with ScanView: this test does not reach tooFar")
	}
	if got := e.metric(t, "disconnects", hub.DisconnectError); got != 0 {
		t.Fatalf("disconnects{store_error} = %v", got)
	}
}
