package ws

import (
	"context"
	"net/http"
	"testing"
	"time"

	sse "github.com/tmaxmax/go-sse"
)

// TestSSEAndWebSocketSameFrames: an SSE client and a WebSocket client on
// the same server, resuming from the same ID, see the same frame IDs in
// the same order, with the same bytes, replayed and live.
func TestSSEAndWebSocketSameFrames(t *testing.T) {
	e := newEnv(t, testConfig())
	first := e.appendTopics(t, "cpu", "mem", "disk")
	cursor := first[0].ID.String()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.sseURL+"?topics=cpu,mem", nil)
	req.Header.Set("Last-Event-ID", cursor)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	type fr struct{ id, data string }
	sseFrames := make(chan fr, 1024)
	sseDone := make(chan struct{})
	go func() {
		defer close(sseDone)
		for ev, err := range sse.Read(resp.Body, nil) {
			if err != nil {
				return
			}
			if ev.Type == "frame" {
				sseFrames <- fr{ev.LastEventID, ev.Data}
			}
		}
	}()
	defer func() { cancel(); resp.Body.Close(); <-sseDone }()
	w := dial(t, e.url, "topics=cpu,mem&lastEventId="+cursor)

	var want []string
	for _, f := range first[1:] {
		if f.Topic != "disk" {
			want = append(want, f.ID.String())
		}
	}
	for range 20 {
		for _, f := range e.appendTopics(t, "disk", "mem", "cpu", "net") {
			if f.Topic == "cpu" || f.Topic == "mem" {
				want = append(want, f.ID.String())
			}
		}
		time.Sleep(time.Millisecond)
	}
	for i, id := range want {
		var s fr
		select {
		case s = <-sseFrames:
		case <-time.After(5 * time.Second):
			t.Fatalf("SSE: no frame %d", i)
		}
		ev := w.next(t, 5*time.Second)
		if ev.Event == "hello" {
			ev = w.next(t, 5*time.Second)
		}
		if s.id != id || ev.id() != id || s.data != string(ev.Data) {
			t.Fatalf("frame %d: SSE %s, WebSocket %s (%s), want %s", i, s.id, ev.id(), ev.Event, id)
		}
	}
}
