package ws

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"livedash/config"
	"livedash/dashboard/hub"
)

// TestSubscribeChange: a subscription change mid-stream, with "after" and
// without, loses nothing and repeats nothing: each subscription gets hello,
// then exactly the frames after its stated position that match its topics.
func TestSubscribeChange(t *testing.T) {
	e := newEnv(t, testConfig())
	c := dial(t, e.url, "topics=cpu")
	c.next(t, 5*time.Second)                     // hello
	fs := e.appendTopics(t, "cpu", "mem", "cpu") // 1-3
	for _, i := range []int{0, 2} {
		if ev := c.next(t, 5*time.Second); ev.id() != fs[i].ID.String() {
			t.Fatalf("got %s %s", ev.Event, ev.id())
		}
	}
	// Switch to mem after the first frame: frame 2 (mem) is replayed, frame
	// 3 (cpu) is not sent again.
	c.send(t, `{"op":"subscribe","topics":["mem"],"after":"`+fs[0].ID.String()+`"}`)
	if ev := c.next(t, 5*time.Second); ev.Event != "hello" {
		t.Fatalf("after subscribe: %s", ev.Event)
	}
	if ev := c.next(t, 5*time.Second); ev.id() != fs[1].ID.String() {
		t.Fatalf("replay after subscribe: %s %s", ev.Event, ev.id())
	}
	more := e.appendTopics(t, "cpu", "mem") // 4-5
	if ev := c.next(t, 5*time.Second); ev.id() != more[1].ID.String() {
		t.Fatalf("live after subscribe: %s %s", ev.Event, ev.id())
	}
	// Without "after": from where the connection is; mem and cpu from now on.
	c.send(t, `{"op":"subscribe","topics":["mem","cpu"]}`)
	if ev := c.next(t, 5*time.Second); ev.Event != "hello" {
		t.Fatalf("after subscribe: %s", ev.Event)
	}
	last := e.appendTopics(t, "disk", "cpu", "mem") // 6-8
	for _, f := range last[1:] {
		if ev := c.next(t, 5*time.Second); ev.id() != f.ID.String() {
			t.Fatalf("continue: got %s %s, want %s", ev.Event, ev.id(), f.ID)
		}
	}
	// An "after" the server cannot honour: hello, reset, then live.
	c.send(t, `{"op":"subscribe","after":"nonsense"}`)
	for _, want := range []string{"hello", "reset"} {
		if ev := c.next(t, 5*time.Second); ev.Event != want {
			t.Fatalf("got %s, want %s", ev.Event, want)
		}
	}
	if n := e.metric(t, "livedash_ws_messages_received_total"); n != 3 {
		t.Fatalf("messages received %v", n)
	}
}

// TestBadClientMessages: binary, oversized, malformed, unknown op or field:
// each answered by a close with its documented code and reason, counted;
// the other connections go on.
func TestBadClientMessages(t *testing.T) {
	e := newEnv(t, testConfig(), envOpts{ws: Options{ReadLimit: 1024}})
	healthy := dial(t, e.url, "")
	healthy.next(t, 5*time.Second)
	for _, tc := range []struct {
		name   string
		binary bool
		msg    string
		code   websocket.StatusCode
		reason string
	}{
		{"binary", true, `{"op":"subscribe"}`, websocket.StatusUnsupportedData, "binary messages are not accepted"},
		{"oversized", false, `{"op":"subscribe","topics":["` + strings.Repeat("a", 2000) + `"]}`, websocket.StatusPolicyViolation, "message over 1024 bytes"},
		{"huge", false, strings.Repeat(" ", 1<<20), websocket.StatusPolicyViolation, "message over 1024 bytes"},
		{"malformed", false, `{"op":"subscribe",`, websocket.StatusPolicyViolation, "malformed message"},
		{"not an object", false, `null`, websocket.StatusPolicyViolation, "malformed message"},
		{"trailing", false, `{"op":"subscribe"} {}`, websocket.StatusPolicyViolation, "malformed message"},
		{"wrong type", false, `{"op":"subscribe","topics":"cpu"}`, websocket.StatusPolicyViolation, "malformed message"},
		{"unknown field", false, `{"op":"subscribe","topic":["cpu"]}`, websocket.StatusPolicyViolation, "malformed message"},
		{"unknown op", false, `{"op":"unsubscribe"}`, websocket.StatusPolicyViolation, "unknown op"},
		{"empty", false, ``, websocket.StatusPolicyViolation, "malformed message"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.metric(t, "livedash_ws_closes_total", fmt.Sprint(int(tc.code)), "server")
			c := dial(t, e.url, "")
			c.next(t, 5*time.Second)
			typ := websocket.MessageText
			if tc.binary {
				typ = websocket.MessageBinary
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = c.c.Write(ctx, typ, []byte(tc.msg)) // the server may close before all of it is written
			code, reason := c.closedWith(t, 5*time.Second)
			if code != tc.code || !strings.HasPrefix(reason, tc.reason) {
				t.Fatalf("closed with %d %q, want %d %q…", code, reason, tc.code, tc.reason)
			}
			waitFor(t, 5*time.Second, "the close counted", func() bool {
				return e.metric(t, "livedash_ws_closes_total", fmt.Sprint(int(tc.code)), "server") == before+1
			})
		})
	}
	waitFor(t, 5*time.Second, "one stream left", func() bool { return e.hub.Streams() == 1 })
	f := e.appendN(t, "cpu", 1, 10)[0]
	if ev := healthy.next(t, 5*time.Second); ev.id() != f.ID.String() {
		t.Fatalf("healthy got %s %s", ev.Event, ev.id())
	}
}

// TestLimitsSharedWithSSE: the global and per-address limits count SSE
// and WebSocket streams together; a socket over a limit is closed with
// 1013, a reason naming the limit and a retry hint; counted by reason.
func TestLimitsSharedWithSSE(t *testing.T) {
	cfg := testConfig()
	cfg.MaxStreams = 3
	cfg.MaxStreamsPerIP = 2
	e := newEnv(t, cfg)
	// One SSE stream and one socket from 127.0.0.1.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.sseURL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	c := dial(t, e.url, "", dialOpts{localIP: "127.0.0.1"})
	c.next(t, 5*time.Second)
	waitFor(t, 5*time.Second, "two streams", func() bool { return e.hub.Streams() == 2 })

	over := dial(t, e.url, "", dialOpts{localIP: "127.0.0.1"})
	code, reason := over.closedWith(t, 5*time.Second)
	if code != websocket.StatusTryAgainLater || !strings.Contains(reason, hub.RejectPerIP) || !strings.Contains(reason, "retry_ms=") {
		t.Fatalf("over the per-address limit: %d %q", code, reason)
	}
	var ms int
	if _, err := fmt.Sscanf(reason[strings.Index(reason, "retry_ms="):], "retry_ms=%d", &ms); err != nil || ms < 20000 || ms > 40000 {
		t.Fatalf("retry hint %q: %v", reason, err)
	}
	if n := e.metric(t, "livedash_stream_rejected_total", hub.RejectPerIP); n != 1 {
		t.Fatalf("rejected{per_ip} = %v", n)
	}
	// Another address gets the last place; the one after it is over the
	// global limit.
	c2 := dial(t, e.url, "", dialOpts{localIP: "127.0.0.2"})
	c2.next(t, 5*time.Second)
	over = dial(t, e.url, "", dialOpts{localIP: "127.0.0.3"})
	if code, reason := over.closedWith(t, 5*time.Second); code != websocket.StatusTryAgainLater || !strings.Contains(reason, hub.RejectMaxStreams) {
		t.Fatalf("over the global limit: %d %q", code, reason)
	}
	if n := e.metric(t, "livedash_stream_rejected_total", hub.RejectMaxStreams); n != 1 {
		t.Fatalf("rejected{max_streams} = %v", n)
	}
	if e.hub.Streams() != 3 {
		t.Fatalf("Streams() = %d", e.hub.Streams())
	}
	waitFor(t, 5*time.Second, "closes counted", func() bool {
		return e.metric(t, "livedash_ws_closes_total", "1013", "server") == 2
	})
	waitFor(t, 5*time.Second, "connections gauge", func() bool { return e.metric(t, "livedash_ws_connections") == 2 })
}

// TestShutdown: the hub's shutdown closes every socket with 1013 and a
// retry hint, spread over the drain window, and returns once all are
// closed; a socket opened then is turned away with 1013 too.
func TestShutdown(t *testing.T) {
	cfg := testConfig()
	cfg.DrainWindow = config.Duration(300 * time.Millisecond)
	e := newEnv(t, cfg)
	const n = 20
	cs := make([]*client, n)
	for i := range cs {
		cs[i] = dial(t, e.url, "")
		cs[i].next(t, 5*time.Second)
	}
	waitFor(t, 5*time.Second, "streams", func() bool { return e.hub.Streams() == n })
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.hub.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > cfg.DrainWindow.D()+time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	for _, c := range cs {
		code, reason := c.closedWith(t, time.Second)
		if code != websocket.StatusTryAgainLater || !strings.HasPrefix(reason, "shutting down; retry_ms=") {
			t.Fatalf("closed with %d %q", code, reason)
		}
	}
	late := dial(t, e.url, "")
	if code, reason := late.closedWith(t, 5*time.Second); code != websocket.StatusTryAgainLater || !strings.HasPrefix(reason, "shutting down") {
		t.Fatalf("late socket: %d %q", code, reason)
	}
	if e.hub.Streams() != 0 {
		t.Fatalf("Streams() = %d", e.hub.Streams())
	}
	waitFor(t, 5*time.Second, "connections gauge", func() bool { return e.metric(t, "livedash_ws_connections") == 0 })
}

// TestSlowConsumerQueue: a subscriber more than queue_size frames behind is
// closed with 1008 and a reason, and resumes losslessly with its last ID.
func TestSlowConsumerQueue(t *testing.T) {
	cfg := testConfig()
	cfg.QueueSize = 4
	e := newEnv(t, cfg)
	c := dial(t, e.url, "")
	hello := c.next(t, 5*time.Second)
	fs := e.appendN(t, "cpu", 10, 10) // one commit, more than the queue
	code, reason := c.closedWith(t, 5*time.Second)
	if code != websocket.StatusPolicyViolation || !strings.HasPrefix(reason, "too slow") {
		t.Fatalf("closed with %d %q", code, reason)
	}
	if n := e.metric(t, "livedash_stream_disconnects_total", hub.DisconnectSlow); n != 1 {
		t.Fatalf("disconnects{slow} = %v", n)
	}
	r := dial(t, e.url, "lastEventId="+hello.id())
	r.next(t, 5*time.Second)
	for _, f := range fs {
		if ev := r.next(t, 5*time.Second); ev.id() != f.ID.String() {
			t.Fatalf("resumed: got %s %s, want %s", ev.Event, ev.id(), f.ID)
		}
	}
}

// TestNeverReadingClient: a raw client that completes the handshake and
// never reads is cut at the write deadline; the other sockets keep
// receiving promptly; the cut is counted as a 1008 close.
func TestNeverReadingClient(t *testing.T) {
	cfg := testConfig()
	cfg.WriteTimeout = config.Duration(500 * time.Millisecond)
	cfg.QueueSize = 1 << 20 // so that the deadline, not the lag, cuts it
	e := newEnv(t, cfg)
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	stuck, err := d.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	fmt.Fprintf(stuck, "GET /api/v1/ws?topics=big HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")

	healthy := make([]*client, 20)
	for i := range healthy {
		healthy[i] = dial(t, e.url, "topics=small")
		healthy[i].next(t, 5*time.Second)
	}
	waitFor(t, 5*time.Second, "21 streams", func() bool { return e.hub.Streams() == len(healthy)+1 })
	var worst time.Duration
	for i := 0; e.metric(t, "livedash_stream_disconnects_total", hub.DisconnectWriteDeadline) == 0; i++ {
		if i > 200 {
			t.Fatal("the stuck client was never cut")
		}
		e.appendN(t, "big", 4, 64<<10)
		sent := time.Now()
		f := e.appendN(t, "small", 1, 10)[0]
		for _, c := range healthy {
			if ev := c.next(t, 5*time.Second); ev.id() != f.ID.String() {
				t.Fatalf("healthy got %s %s", ev.Event, ev.id())
			}
		}
		worst = max(worst, time.Since(sent))
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, 5*time.Second, "the stuck client gone", func() bool { return e.hub.Streams() == len(healthy) })
	waitFor(t, 5*time.Second, "the cut counted", func() bool { return e.metric(t, "livedash_ws_closes_total", "1008", "server") == 1 })
	if worst > time.Second {
		t.Fatalf("healthy sockets' worst latency %v while a client hung", worst)
	}
}

// TestPanicInLoopEndsOnlyThatConnection: a panic in one connection's
// writer ends that connection (1011), is counted under transport "ws", and
// the other connections keep receiving.
func TestPanicInLoopEndsOnlyThatConnection(t *testing.T) {
	e := newEnv(t, testConfig())
	healthy := dial(t, e.url, "topics=cpu")
	healthy.next(t, 5*time.Second)
	victim := dial(t, e.url, "topics=boom")
	victim.next(t, 5*time.Second)
	waitFor(t, 5*time.Second, "two streams", func() bool { return e.hub.Streams() == 2 })
	var fired atomic.Bool
	hook := func() {
		if fired.CompareAndSwap(false, true) {
			panic("injected writer panic")
		}
	}
	testHookWrite.Store(&hook)
	defer testHookWrite.Store(nil)
	e.appendN(t, "boom", 1, 10)
	if code, reason := victim.closedWith(t, 5*time.Second); code != websocket.StatusInternalError || reason != "internal error" {
		t.Fatalf("victim closed with %d %q", code, reason)
	}
	waitFor(t, 5*time.Second, "the panic counted", func() bool { return e.metric(t, "livedash_stream_panics_total", "ws") == 1 })
	waitFor(t, 5*time.Second, "one stream left", func() bool { return e.hub.Streams() == 1 })
	for _, f := range e.appendN(t, "cpu", 3, 10) {
		if ev := healthy.next(t, 5*time.Second); ev.id() != f.ID.String() {
			t.Fatalf("healthy got %s %s", ev.Event, ev.id())
		}
	}
}

// The client's own close is answered and counted with its code.
func TestClientClose(t *testing.T) {
	e := newEnv(t, testConfig())
	c := dial(t, e.url, "")
	c.next(t, 5*time.Second)
	if err := c.c.Close(websocket.StatusGoingAway, "bye"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the close counted", func() bool { return e.metric(t, "livedash_ws_closes_total", "1001", "client") == 1 })
	waitFor(t, 5*time.Second, "no streams", func() bool { return e.hub.Streams() == 0 })
}

// A client's ping is answered by the connection's reader.
func TestPing(t *testing.T) {
	e := newEnv(t, testConfig())
	c := dial(t, e.url, "")
	c.next(t, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	f := e.appendN(t, "cpu", 1, 10)[0]
	if ev := c.next(t, 5*time.Second); ev.id() != f.ID.String() {
		t.Fatalf("after ping: %s %s", ev.Event, ev.id())
	}
}
