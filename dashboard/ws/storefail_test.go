package ws

import (
	"encoding/json"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/coder/websocket"

	"livedash/dashboard/hub"
	"livedash/dashboard/store/storetest"
)

// Replay, first chunk (the first replay read fails): the socket gets the
// hello alone — with its retry_ms — and then the close 1011, without a
// frame; the disconnect is counted as store_error. Reconnecting with the
// same cursor (no frame moved it), the store healed, replays every frame
// after it, then goes on live.
func TestReplayFirstChunkReadErrorCloses(t *testing.T) {
	e := newEnv(t, testConfig(), envOpts{faulty: true})
	fs := e.appendN(t, "cpu", 20, 10)
	cursor := fs[4].ID.String()
	e.faulty.Fail(storetest.OpAfterView)
	c := dial(t, e.url, "lastEventId="+url.QueryEscape(cursor))
	var events []event
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	for done := false; !done; {
		select {
		case ev, ok := <-c.events:
			if !ok {
				done = true
			} else if ev.Event != "hb" {
				events = append(events, ev)
			}
		case <-timer.C:
			t.Fatalf("socket still open after 30s: %d events so far", len(events))
		}
	}
	if len(events) != 1 || events[0].Event != "hello" {
		t.Fatalf("socket with a failing first replay read: %+v; want the hello alone, then the close", events)
	}
	var h hub.Hello
	if err := json.Unmarshal(events[0].Data, &h); err != nil || h.RetryMS <= 0 {
		t.Fatalf("hello %s: %v; want a positive retry_ms", events[0].Data, err)
	}
	var ce websocket.CloseError
	if !errors.As(c.err, &ce) || ce.Code != websocket.StatusInternalError {
		t.Fatalf("socket ended with %v; want the close 1011", c.err)
	}
	waitFor(t, 10*time.Second, "disconnects{store_error} = 1", func() bool {
		return e.metric(t, "livedash_stream_disconnects_total", hub.DisconnectError) == 1
	})
	waitFor(t, 10*time.Second, "the subscriber unregistered", func() bool { return e.hub.Streams() == 0 })
	if n := e.metric(t, "livedash_stream_replayed_frames_total"); n != 0 {
		t.Fatalf("replayed frames counted: %v", n)
	}

	e.faulty.Heal(storetest.OpAfterView)
	c = dial(t, e.url, "lastEventId="+url.QueryEscape(cursor))
	if ev := c.next(t, 10*time.Second); ev.Event != "hello" {
		t.Fatalf("first event %q", ev.Event)
	}
	for _, want := range fs[5:] {
		if ev := c.next(t, 10*time.Second); ev.Event != "frame" || ev.id() != want.ID.String() {
			t.Fatalf("healed replay: event %q id %s, want frame %s", ev.Event, ev.id(), want.ID)
		}
	}
	// Nothing after the replay but live frames: the next event is a new one.
	next := e.appendN(t, "cpu", 1, 10)[0]
	if ev := c.next(t, 10*time.Second); ev.Event != "frame" || ev.id() != next.ID.String() {
		t.Fatalf("after the replay: event %q id %s, want the live frame %s", ev.Event, ev.id(), next.ID)
	}
}
