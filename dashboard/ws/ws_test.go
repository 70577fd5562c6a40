package ws

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"livedash/config"
	"livedash/dashboard/hub"
	"livedash/dashboard/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestEventEncoding(t *testing.T) {
	id := store.ID{Epoch: 0x9f2c41d07a3be511, Seq: 1042}
	js := []byte(`{"id":"9f2c41d07a3be511-1042","topic":"cpu","ts":1,"samples":[{"name":"a\u2028<b>","value":1}]}`)
	got := appendFrameEvent(nil, id, js)
	if want := `{"event":"frame","data":` + string(js) + "}\n"; string(got) != want {
		t.Fatalf("frame event %q, want %q", got, want)
	}
	// JSON with whitespace newlines (never produced by a store) is compacted:
	// "\n" only ever separates events.
	got = appendFrameEvent(nil, id, []byte("{\"a\":\n1,\r\n\"b\":\"x\"}"))
	if string(got) != `{"event":"frame","data":{"a":1,"b":"x"}}`+"\n" {
		t.Fatalf("compacted %q", got)
	}
	var ev struct {
		Event string
		Data  map[string]any
	}
	b := appendEvent(nil, "hello", hub.Hello{Epoch: "9f2c41d07a3be511", Head: "9f2c41d07a3be511-7", ServerTime: 5, RetryMS: 2100})
	if err := json.Unmarshal(b, &ev); err != nil || ev.Event != "hello" || ev.Data["head"] != "9f2c41d07a3be511-7" || ev.Data["retry_ms"] != 2100.0 {
		t.Fatalf("hello %q: %+v %v", b, ev, err)
	}
	b = appendHeartbeat(nil, "9f2c41d07a3be511-7", time.UnixMilli(1764255600123))
	if string(b) != `{"event":"hb","data":{"head":"9f2c41d07a3be511-7","server_time":1764255600123}}`+"\n" {
		t.Fatalf("hb %q", b)
	}
}

// TestHelloReplayLive: resuming with an ID, the hello and the replayed
// frames arrive in one message; every later commit is one message; the
// frames are the stored JSON with their ids.
func TestHelloReplayLive(t *testing.T) {
	e := newEnv(t, testConfig())
	fs := e.appendN(t, "cpu", 3, 10)
	c := dial(t, e.url, "lastEventId="+fs[0].ID.String())
	hello := c.next(t, 5*time.Second)
	if hello.Event != "hello" {
		t.Fatalf("first event %q", hello.Event)
	}
	var h hub.Hello
	if err := json.Unmarshal(hello.Data, &h); err != nil || h.Head != fs[2].ID.String() || h.RetryMS < 2000 {
		t.Fatalf("hello %s: %v", hello.Data, err)
	}
	for _, f := range fs[1:] {
		ev := c.next(t, 5*time.Second)
		if ev.Event != "frame" || ev.id() != f.ID.String() || ev.msg != hello.msg {
			t.Fatalf("replayed %+v (message %d), want frame %s in message %d", ev, ev.msg, f.ID, hello.msg)
		}
		if string(ev.Data) != string(f.JSON) {
			t.Fatalf("frame data %s, want the stored JSON %s", ev.Data, f.JSON)
		}
	}
	// One commit of five frames: one message.
	live := e.appendN(t, "cpu", 5, 10)
	first := c.next(t, 5*time.Second)
	for i, f := range live {
		ev := first
		if i > 0 {
			ev = c.next(t, 5*time.Second)
		}
		if ev.Event != "frame" || ev.id() != f.ID.String() || ev.msg != first.msg {
			t.Fatalf("live %d: %s %s in message %d, want frame %s in message %d", i, ev.Event, ev.id(), ev.msg, f.ID, first.msg)
		}
	}
	if n := e.metric(t, "livedash_ws_connections"); n != 1 {
		t.Fatalf("livedash_ws_connections = %v", n)
	}
	// The counter grows right after the write returns, which can be after
	// the client read the message: wait for it (bounded), then check.
	deadline := time.Now().Add(10 * time.Second)
	for e.metric(t, "livedash_ws_messages_sent_total") < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := e.metric(t, "livedash_ws_messages_sent_total"); n != 2 {
		t.Fatalf("messages sent %v, want 2", n)
	}
	if n := e.metric(t, "livedash_ws_bytes_sent_total"); n < 8*10 {
		t.Fatalf("bytes sent %v", n)
	}
}

// Without a cursor the hello's head is the position; topics filter.
func TestNoCursorAndTopics(t *testing.T) {
	e := newEnv(t, testConfig())
	e.appendTopics(t, "cpu", "mem")
	c := dial(t, e.url, "topics=mem&topics=disk")
	hello := c.next(t, 5*time.Second)
	if hello.Event != "hello" || hello.id() != e.store.Head().String() {
		t.Fatalf("hello %+v, head %s", hello, e.store.Head())
	}
	fs := e.appendTopics(t, "cpu", "mem", "net", "disk")
	for _, want := range []store.ID{fs[1].ID, fs[3].ID} {
		if ev := c.next(t, 5*time.Second); ev.Event != "frame" || ev.id() != want.String() {
			t.Fatalf("got %s %s, want frame %s", ev.Event, ev.id(), want)
		}
	}
}

// TestHelloUnknownTopics: with Options.Known, every hello — the first, for
// topics=, and the one answering each subscribe — names the topics of its
// filter that are not known, sorted, and only those; a hello whose topics
// are all known (or that asks for every topic) has no "unknown_topics". The
// subscription goes on all the same: a frame of an unknown topic, once one
// is pushed, is delivered.
func TestHelloUnknownTopics(t *testing.T) {
	known := map[string]bool{"a": true, "b": true}
	e := newEnv(t, testConfig(), envOpts{ws: Options{Known: func(topic string) bool { return known[topic] }}})
	unknownOf := func(t *testing.T, ev event) (list []string, present bool) {
		t.Helper()
		if ev.Event != "hello" {
			t.Fatalf("got %s %s, want hello", ev.Event, ev.Data)
		}
		var h map[string]json.RawMessage
		if err := json.Unmarshal(ev.Data, &h); err != nil || h["head"] == nil {
			t.Fatalf("hello %s: %v", ev.Data, err)
		}
		raw, ok := h["unknown_topics"]
		if ok {
			if err := json.Unmarshal(raw, &list); err != nil {
				t.Fatalf("unknown_topics %s: %v", raw, err)
			}
		}
		return list, ok
	}

	c := dial(t, e.url, "topics=a,nosuch")
	if list, _ := unknownOf(t, c.next(t, 5*time.Second)); strings.Join(list, ",") != "nosuch" {
		t.Fatalf("first hello: unknown_topics %q, want [nosuch]", list)
	}
	c.send(t, `{"op":"subscribe","topics":["zz","b","other"]}`)
	if list, _ := unknownOf(t, c.next(t, 5*time.Second)); strings.Join(list, ",") != "other,zz" {
		t.Fatalf("hello after subscribe: unknown_topics %q, want [other zz]", list)
	}
	fs := e.appendTopics(t, "a", "other")
	if ev := c.next(t, 5*time.Second); ev.Event != "frame" || ev.id() != fs[1].ID.String() {
		t.Fatalf("got %s %s, want the frame of other %s", ev.Event, ev.id(), fs[1].ID)
	}
	for _, sub := range []string{`{"op":"subscribe","topics":["a","b"]}`, `{"op":"subscribe"}`} {
		c.send(t, sub)
		if list, ok := unknownOf(t, c.next(t, 5*time.Second)); ok {
			t.Fatalf("%s: hello names unknown_topics %q", sub, list)
		}
	}

	for _, q := range []string{"topics=a,b", ""} {
		c := dial(t, e.url, q)
		if list, ok := unknownOf(t, c.next(t, 5*time.Second)); ok {
			t.Fatalf("%q: hello names unknown_topics %q", q, list)
		}
		c.close()
	}
}

func TestResetThenLive(t *testing.T) {
	e := newEnv(t, testConfig())
	e.appendN(t, "cpu", 3, 10)
	c := dial(t, e.url, "lastEventId=zzz")
	if ev := c.next(t, 5*time.Second); ev.Event != "hello" {
		t.Fatalf("first %q", ev.Event)
	}
	ev := c.next(t, 5*time.Second)
	var r hub.Reset
	if err := json.Unmarshal(ev.Data, &r); err != nil || ev.Event != "reset" || r.Reason != store.Malformed || r.Head != e.store.Head().String() {
		t.Fatalf("reset %s %s: %v", ev.Event, ev.Data, err)
	}
	f := e.appendN(t, "cpu", 1, 10)[0]
	if ev := c.next(t, 5*time.Second); ev.id() != f.ID.String() {
		t.Fatalf("after reset %s %s", ev.Event, ev.id())
	}
}

func TestHeartbeatEvent(t *testing.T) {
	cfg := testConfig()
	cfg.Heartbeat = config.Duration(200 * time.Millisecond)
	e := newEnv(t, cfg)
	e.appendN(t, "cpu", 1, 10)
	c := dial(t, e.url, "")
	c.heartbeats = true
	c.next(t, 5*time.Second) // hello
	ev := c.next(t, 2*time.Second)
	var hb struct {
		Head       string `json:"head"`
		ServerTime int64  `json:"server_time"`
	}
	if err := json.Unmarshal(ev.Data, &hb); err != nil || ev.Event != "hb" || hb.Head != e.store.Head().String() ||
		time.Since(time.UnixMilli(hb.ServerTime)).Abs() > 5*time.Second {
		t.Fatalf("heartbeat %s %s: %v", ev.Event, ev.Data, err)
	}
}

// Not a handshake: 426 with the JSON error body.
func TestPlainGet(t *testing.T) {
	e := newEnv(t, testConfig())
	resp, err := http.Get(e.srv.URL + "/api/v1/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusUpgradeRequired || !strings.Contains(string(body), `"code":"upgrade_required"`) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if e.hub.Streams() != 0 {
		t.Fatal("a subscriber was admitted")
	}
}

// Origin: the page's own and the allowed ones are accepted, no Origin (not
// a browser) too; any other site gets 403 before anything is admitted.
func TestOrigin(t *testing.T) {
	e := newEnv(t, testConfig(), envOpts{ws: Options{AllowedOrigins: []string{"https://Ops.Example.com/", "*"}}})
	host := strings.TrimPrefix(e.srv.URL, "http://")
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{"http://" + host, true},
		{"HTTP://" + strings.ToUpper(host), true},
		{"https://ops.example.com", true},
		{"http://ops.example.com", false},
		{"https://evil.example", false},
		{"https://ops.example.com.evil.example", false},
		{"null", false},
		{"file://", false},
		{"http://127.0.0.1", false}, // same host, another port
	} {
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		c, err := tryDial(e.url, "", dialOpts{header: h})
		if tc.ok != (err == nil) {
			t.Fatalf("origin %q: err %v, want ok=%v", tc.origin, err, tc.ok)
		}
		if err == nil {
			c.next(t, 5*time.Second)
			c.close()
			continue
		}
		if !strings.Contains(err.Error(), "403") {
			t.Fatalf("origin %q: %v", tc.origin, err)
		}
	}
	waitFor(t, 5*time.Second, "no streams", func() bool { return e.hub.Streams() == 0 })
}

// With compression on, permessage-deflate is negotiated with clients that
// offer it, and messages still carry the same events; off by default.
func TestCompression(t *testing.T) {
	for _, on := range []bool{false, true} {
		e := newEnv(t, testConfig(), envOpts{ws: Options{Compression: on}})
		c := dial(t, e.url, "", dialOpts{compress: true})
		c.next(t, 5*time.Second)
		ext := c.resp.Header.Get("Sec-WebSocket-Extensions")
		if on != strings.Contains(ext, "permessage-deflate") {
			t.Fatalf("compression %v: extensions %q", on, ext)
		}
		fs := e.appendN(t, "cpu", 4, 2000)
		for _, f := range fs {
			if ev := c.next(t, 5*time.Second); ev.id() != f.ID.String() || string(ev.Data) != string(f.JSON) {
				t.Fatalf("compression %v: got %s", on, ev.id())
			}
		}
	}
}
