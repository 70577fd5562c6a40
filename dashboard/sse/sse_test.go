package sse

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	sse "github.com/tmaxmax/go-sse"
	"go.uber.org/goleak"

	"livedash/dashboard/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestFrameEventEncoding(t *testing.T) {
	f := store.Frame{ID: store.ID{Epoch: 0x9f2c41d07a3be511, Seq: 1042}, Topic: "cpu",
		JSON: []byte(`{"id":"9f2c41d07a3be511-1042","topic":"cpu","ts":1,"samples":[{"name":"a\u2028<b>","value":1}]}`)}
	got := appendEvent(nil, f.ID, f.JSON)

	m := &sse.Message{ID: sse.ID(f.ID.String()), Type: sse.Type("frame")}
	m.AppendData(string(f.JSON))
	if want := m.String(); string(got) != want {
		t.Fatalf("hand encoding differs from go-sse:\n got %q\nwant %q", got, want)
	}
	var evs []sse.Event
	for ev, err := range sse.Read(bytes.NewReader(append(got, got...)), nil) {
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	if len(evs) != 2 || evs[0].Type != "frame" || evs[0].LastEventID != f.ID.String() || evs[0].Data != string(f.JSON) {
		t.Fatalf("parsed %+v", evs)
	}

	// JSON with a raw newline (never produced by the ring) still round-trips.
	f.JSON = []byte("{\"a\":\n1}")
	for ev, err := range sse.Read(bytes.NewReader(appendEvent(nil, f.ID, f.JSON)), nil) {
		if err != nil || ev.Data != "{\"a\":\n1}" {
			t.Fatalf("multi-line data: %q %v", ev.Data, err)
		}
	}
}

func TestHeadersHelloAndLive(t *testing.T) {
	e := newEnv(t, testConfig())
	e.appendN(t, "cpu", 3, 10)
	c := dial(t, e.url, "", "")
	for k, want := range map[string]string{
		"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Content-Encoding": "",
	} {
		if got := c.resp.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if c.resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", c.resp.StatusCode)
	}
	ev := c.next(t, 2*time.Second)
	if ev.Type != "hello" {
		t.Fatalf("first event %q", ev.Type)
	}
	var hello struct {
		Epoch      string `json:"epoch"`
		Head       string `json:"head"`
		Oldest     string `json:"oldest"`
		ServerTime int64  `json:"server_time"`
		RetryMS    int64  `json:"retry_ms"`
	}
	if err := json.Unmarshal([]byte(ev.Data), &hello); err != nil {
		t.Fatal(err)
	}
	head := e.store.Head()
	if hello.Head != head.String() || hello.Oldest != e.store.Oldest().String() || hello.Epoch != head.String()[:16] {
		t.Fatalf("hello %+v, head %v", hello, head)
	}
	if hello.RetryMS < 2000 || hello.RetryMS >= 3000 || time.Since(time.UnixMilli(hello.ServerTime)) > time.Minute {
		t.Fatalf("hello %+v", hello)
	}
	if ev.LastEventID != head.String() {
		t.Fatalf("hello of a stream without cursor should carry id: head, got %q", ev.LastEventID)
	}
	// Live: nothing old, then every new frame in order.
	fs := e.appendN(t, "cpu", 5, 10)
	for _, f := range fs {
		ev := c.next(t, 2*time.Second)
		if ev.Type != "frame" || ev.LastEventID != f.ID.String() || ev.Data != string(f.JSON) {
			t.Fatalf("got %+v, want frame %s", ev, f.ID)
		}
	}
	if e.hub.Streams() != 1 {
		t.Fatalf("Streams() = %d", e.hub.Streams())
	}
}

func TestReplaySeam(t *testing.T) {
	e := newEnv(t, testConfig())
	all := e.appendN(t, "cpu", 50, 10)
	// Resume from frame 10: frames 11..50 from the ring, then live ones.
	for _, via := range []string{"header", "query", "header-wins"} {
		t.Run(via, func(t *testing.T) {
			var c *client
			switch via {
			case "header":
				c = dial(t, e.url, "", all[9].ID.String())
			case "query":
				c = dial(t, e.url, "lastEventId="+all[9].ID.String(), "")
			case "header-wins":
				c = dial(t, e.url, "lastEventId=garbage", all[9].ID.String())
			}
			hello := c.next(t, 2*time.Second)
			if hello.Type != "hello" || hello.LastEventID != "" {
				t.Fatalf("hello %+v (a replaying stream's hello must not move the cursor)", hello)
			}
			want := seqOf(t, all[9].ID.String()) + 1
			more := e.appendN(t, "cpu", 5, 10)
			last := seqOf(t, more[len(more)-1].ID.String())
			for want <= last {
				ev := c.next(t, 2*time.Second)
				if ev.Type != "frame" {
					t.Fatalf("unexpected %s event", ev.Type)
				}
				if got := seqOf(t, ev.LastEventID); got != want {
					t.Fatalf("got seq %d, want %d", got, want)
				}
				want++
			}
		})
	}
	if got := e.metric(t, "replays"); got != 3 {
		t.Fatalf("replays = %v", got)
	}
}

func TestTopicsFilter(t *testing.T) {
	e := newEnv(t, testConfig())
	e.appendN(t, "cpu", 1, 1)
	start := e.store.Head().String()
	c := dial(t, e.url, "topics=memory,%20disk,,nosuch", start)
	if ev := c.next(t, 2*time.Second); ev.Type != "hello" {
		t.Fatal(ev.Type)
	}
	var want []string
	for _, topic := range []string{"cpu", "memory", "net", "disk", "cpu", "memory"} {
		for _, f := range e.appendN(t, topic, 1, 1) {
			if topic == "memory" || topic == "disk" {
				want = append(want, f.ID.String())
			}
		}
	}
	for _, id := range want {
		if ev := c.next(t, 2*time.Second); ev.LastEventID != id {
			t.Fatalf("got %s, want %s", ev.LastEventID, id)
		}
	}
	// Replay applies the same filter.
	c2 := dial(t, e.url, "topics=memory", start)
	c2.next(t, 2*time.Second)
	for _, id := range []string{want[0], want[2]} {
		if ev := c2.next(t, 2*time.Second); ev.LastEventID != id {
			t.Fatalf("replay: got %s, want %s", ev.LastEventID, id)
		}
	}
}

// A panic in one stream's writer ends that stream only: the panic is
// recovered in the stream's goroutine, logged and counted
// (livedash_stream_panics_total{transport="sse"}), the stream is
// unregistered, and the other streams keep receiving.
func TestPanicInWriterEndsOnlyThatStream(t *testing.T) {
	e := newEnv(t, testConfig())
	healthy := dial(t, e.url, "topics=cpu", "")
	if ev := healthy.next(t, 5*time.Second); ev.Type != "hello" {
		t.Fatalf("first event %q", ev.Type)
	}
	victim := dial(t, e.url, "topics=boom", "")
	if ev := victim.next(t, 5*time.Second); ev.Type != "hello" {
		t.Fatalf("first event %q", ev.Type)
	}
	waitFor(t, 5*time.Second, "two streams", func() bool { return e.hub.Streams() == 2 })

	// The next write panics, once: only the victim is subscribed to
	// "boom", so the only write is the victim's.
	var fired atomic.Bool
	hook := func() {
		if fired.CompareAndSwap(false, true) {
			panic("injected writer panic")
		}
	}
	testHookWrite.Store(&hook)
	defer testHookWrite.Store(nil)
	e.appendN(t, "boom", 1, 10)
	waitFor(t, 5*time.Second, "the victim to end", func() bool {
		select {
		case <-victim.done:
			return true
		default:
			return false
		}
	})
	if !fired.Load() {
		t.Fatal("the hook never fired")
	}
	waitFor(t, 5*time.Second, "the panic counted", func() bool { return e.metric(t, "panics", "sse") == 1 })
	waitFor(t, 5*time.Second, "one stream left", func() bool { return e.hub.Streams() == 1 })

	// The healthy stream goes on with every new frame.
	for _, f := range e.appendN(t, "cpu", 3, 10) {
		if ev := healthy.next(t, 5*time.Second); ev.Type != "frame" || ev.LastEventID != f.ID.String() {
			t.Fatalf("healthy stream got %+v, want frame %s", ev, f.ID)
		}
	}
}
