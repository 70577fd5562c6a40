package hub

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	sse "github.com/tmaxmax/go-sse"
	"go.uber.org/goleak"

	"livedash/config"
	"livedash/dashboard/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestFrameEventEncoding(t *testing.T) {
	f := store.Frame{ID: store.ID{Epoch: 0x9f2c41d07a3be511, Seq: 1042}, Topic: "cpu",
		JSON: []byte(`{"id":"9f2c41d07a3be511-1042","topic":"cpu","ts":1,"samples":[{"name":"a\u2028<b>","value":1}]}`)}
	got := appendFrameEvent(nil, &f)

	m := &sse.Message{ID: sse.ID(f.ID.String()), Type: sse.Type("frame")}
	m.AppendData(string(f.JSON))
	if want := m.String(); string(got) != want {
		t.Fatalf("hand encoding differs from go-sse:\n got %q\nwant %q", got, want)
	}
	if len(got) > eventSize(&f) {
		t.Fatalf("eventSize %d < encoded %d", eventSize(&f), len(got))
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
	for ev, err := range sse.Read(bytes.NewReader(appendFrameEvent(nil, &f)), nil) {
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

func TestParseTopics(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string // nil: all topics
	}{
		{nil, nil},
		{[]string{""}, nil},
		{[]string{" , ,"}, nil},
		{[]string{"cpu,memory"}, []string{"cpu", "memory"}},
		{[]string{"cpu", " disk "}, []string{"cpu", "disk"}},
		{[]string{strings.Repeat("x", 300)}, []string{}}, // filtered, matches nothing
	} {
		got := parseTopics(tc.in)
		if (got == nil) != (tc.want == nil) || len(got) != len(tc.want) {
			t.Errorf("parseTopics(%q) = %v, want %v", tc.in, got, tc.want)
			continue
		}
		for _, w := range tc.want {
			if _, ok := got[w]; !ok {
				t.Errorf("parseTopics(%q) lacks %q", tc.in, w)
			}
		}
	}
}

func TestQuoteRequested(t *testing.T) {
	for _, in := range []string{"", "abc", strings.Repeat("é", 100), "a\x00b\r\nc", "\xff\xfe", "x\u2028y"} {
		got := quoteRequested(in)
		if len(got) > store.MaxIDLen || !utf8.ValidString(got) || strings.ContainsAny(got, "\x00\r\n\u2028") {
			t.Errorf("quoteRequested(%q) = %q", in, got)
		}
	}
}

func FuzzQuoteRequested(f *testing.F) {
	f.Add("9f2c41d07a3be511-1042")
	f.Add("a\x00\r\n\xff")
	f.Fuzz(func(t *testing.T, s string) {
		got := quoteRequested(s)
		if len(got) > store.MaxIDLen || !utf8.ValidString(got) || strings.ContainsAny(got, "\x00\r\n") {
			t.Fatalf("quoteRequested(%q) = %q", s, got)
		}
		js, _ := json.Marshal(resetData{Requested: got})
		if bytes.ContainsAny(js, "\r\n") {
			t.Fatalf("reset data has a newline: %q", js)
		}
	})
}

var _ = config.Duration(0)
