package dashboard_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"livedash/config"
	"livedash/dashboard"
	"livedash/dashboard/hub"
	"livedash/dashboard/sse"
	"livedash/dashboard/store"
	"livedash/dashboard/testcert"

	"github.com/prometheus/common/expfmt"
)

// rawStream sends req on a new connection and returns the response head and
// the body read until want appears in it (or the connection ends).
func rawStream(t *testing.T, h *harness, req, want string) (head, body string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	var all []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := conn.Read(buf)
		all = append(all, buf[:n]...)
		if i := bytes.Index(all, []byte("\r\n\r\n")); i >= 0 && strings.Contains(string(all[i+4:]), want) {
			return string(all[:i+4]), string(all[i+4:])
		}
		if err != nil {
			i := bytes.Index(all, []byte("\r\n\r\n"))
			if i < 0 {
				t.Fatalf("%.60q: no response head in %q: %v", req, all, err)
			}
			return string(all[:i+4]), string(all[i+4:])
		}
	}
}

// metricValue returns the value of the first line of the server's metrics,
// in the text exposition format, that starts with prefix, or -1 when there is
// none. It reads the registry, not /metrics: a test's middleware may reject
// requests.
func metricValue(t testing.TB, h *harness, prefix string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	for l := range strings.SplitSeq(b.String(), "\n") {
		if strings.HasPrefix(l, prefix) {
			v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", l, err)
			}
			return v
		}
	}
	return -1
}

// Stream requests and requests at the server's limits are answered by
// net/http and Echo like any other request: 405 for other methods, 400 for a
// head without Host or cut short, 414 for a query over 8 KiB, 431 for a
// header block over the limit, and a request pipelined behind another is
// answered in turn.
func TestRequestEdges(t *testing.T) {
	h := serve(t, func(c *config.Config, d *dashboard.Deps) { addHub(c, d) })
	cases := []struct {
		name, req, status, want string
	}{
		{"health", "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", "HTTP/1.1 200 ", `"ok"`},
		{"stream", "GET /api/v1/stream HTTP/1.1\r\nHost: localhost\r\n\r\n", "HTTP/1.1 200 ", "event: hello"},
		{"HEAD stream", "HEAD /api/v1/stream HTTP/1.1\r\nHost: localhost\r\n\r\n", "HTTP/1.1 405 ", ""}, // the route is GET only
		{"HTTP/1.0 stream", "GET /api/v1/stream HTTP/1.0\r\nHost: localhost\r\n\r\n", "HTTP/1.0 200 ", "event: hello"},
		{"stream with Origin", "GET /api/v1/stream HTTP/1.1\r\nHost: localhost\r\nOrigin: http://a.example\r\n\r\n", "HTTP/1.1 200 ", "event: hello"},
		{"stream, then pipelined", "GET /api/v1/stream HTTP/1.1\r\nHost: localhost\r\n\r\nGET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", "HTTP/1.1 200 ", "event: hello"},
		{"two pipelined", "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\nGET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", "HTTP/1.1 200 ", "HTTP/1.1 200 OK"},
		{"body, then pipelined", "POST /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhelloGET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", "HTTP/1.1 405 ", "HTTP/1.1 200 OK"},
		{"no Host", "GET /api/v1/stream HTTP/1.1\r\n\r\n", "HTTP/1.1 400 ", ""},
		{"other path", "GET /api/v1/streams HTTP/1.1\r\nHost: localhost\r\n\r\n", "HTTP/1.1 404 ", `"not_found"`},
		{"query over 8 KiB", "GET /api/v1/stream?topics=" + strings.Repeat("a", 8<<10) + " HTTP/1.1\r\nHost: localhost\r\n\r\n", "HTTP/1.1 414 ", `"query_too_long"`},
		{"query over 8 KiB, unknown path", "GET /nope?x=" + strings.Repeat("a", 8<<10) + " HTTP/1.1\r\nHost: localhost\r\n\r\n", "HTTP/1.1 414 ", `"query_too_long"`},
		{"header block over the limit", "GET /api/v1/stream HTTP/1.1\r\nHost: localhost\r\nX-Big: " + strings.Repeat("b", 24<<10) + "\r\n\r\n", "HTTP/1.1 431 ", ""},
		{"POST stream", "POST /api/v1/stream HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 405 ", `"method_not_allowed"`},
	}
	for _, tc := range cases {
		head, body := rawStream(t, h, tc.req, tc.want)
		if !strings.HasPrefix(head, tc.status) || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %q %.200q; want %q and %q", tc.name, head, body, tc.status, tc.want)
		}
	}
	// A head cut short by the client: net/http answers 400.
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = conn.Write([]byte("GET /api/v1/stream HTTP/1.1\r\nHost: localhost\r\n"))
	_ = conn.(*net.TCPConn).CloseWrite()
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	resp, _ := io.ReadAll(conn)
	if !strings.HasPrefix(string(resp), "HTTP/1.1 400 ") {
		t.Errorf("head cut short: %q", resp)
	}
	// The 414s went through the middleware: counted like any answer.
	if v := metricValue(t, h, `livedash_http_requests_total{code="414",method="GET",route="/api/v1/stream"} `); v != 1 {
		t.Errorf("414 on the stream route counted %v times, want 1", v)
	}
}

// Resuming a stream: the Last-Event-ID header wins over the lastEventId
// parameter, the replay has no gap, topics filter, and a malformed ID gets
// its reset event.
func TestStreamResume(t *testing.T) {
	h := serve(t, func(c *config.Config, d *dashboard.Deps) { addHub(c, d) })
	var ids []store.ID
	for i := range 10 {
		topic := "a"
		if i%2 == 1 {
			topic = "b"
		}
		got, err := h.store.Append([]store.Batch{{Topic: topic, Samples: []store.Sample{{Name: "x", Value: float64(i)}}}})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range got {
			ids = append(ids, f.ID)
		}
	}
	req := "GET /api/v1/stream?topics=a&lastEventId=" + ids[1].String() + " HTTP/1.1\r\nHost: localhost\r\nLast-Event-ID: " + ids[4].String() + "\r\n\r\n"
	_, body := rawStream(t, h, req, "id: "+ids[8].String()+"\n")
	var got []string
	for l := range strings.SplitSeq(body, "\n") {
		if id, ok := strings.CutPrefix(l, "id: "); ok {
			got = append(got, id)
		}
	}
	want := []string{ids[6].String(), ids[8].String()}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("replayed %v, want %v", got, want)
	}
	// The parameter alone.
	_, body = rawStream(t, h, "GET /api/v1/stream?lastEventId="+ids[7].String()+" HTTP/1.1\r\nHost: localhost\r\n\r\n", "id: "+ids[9].String()+"\n")
	if strings.Contains(body, "id: "+ids[7].String()+"\n") || !strings.Contains(body, "id: "+ids[8].String()+"\n") {
		t.Fatalf("resume from the parameter: %q", body)
	}
	_, body = rawStream(t, h, "GET /api/v1/stream HTTP/1.1\r\nHost: localhost\r\nLast-Event-ID: \xff\xfe-1\r\n\r\n", `"reason":"malformed"`)
	if !strings.Contains(body, "event: reset\n") {
		t.Fatalf("malformed ID: %q", body)
	}
}

// At shutdown a connection whose request head is still coming is closed,
// live streams end with a retry: hint, and Serve returns nil. net/http
// does not count a connection that has not sent a whole head as idle for
// its first 5 s, so such a connection holds Shutdown until the server's
// backstop — the drain window plus 2 s — closes it.
func TestShutdownClosesHalfReadHeads(t *testing.T) {
	h := serve(t, func(c *config.Config, d *dashboard.Deps) {
		c.HTTP.ReadHeaderTimeout = config.Duration(30 * time.Second)
		addHub(c, d)
	})
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /api/v1/stream HTTP/1.1\r\nHost")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(h.url + "/api/v1/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("stream: %q %v", l, err)
		}
		if l == "event: hello\n" {
			break
		}
	}
	// Undelayed, the backstop closes it at the drain window + 2 s; the
	// ceiling tells that from waiting for the 30 s read-header timeout.
	d := h.shutdown(t, 20*time.Second)
	t.Logf("Serve returned after %v", d)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := conn.Read(make([]byte, 64)); n != 0 || err == nil || isTimeout(err) {
		t.Fatalf("half-read head: %d, %v; want it closed", n, err)
	}
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "retry: ") {
		t.Fatalf("stream ended without a retry: hint: %q", rest)
	}
}

// Streams, ended or turned away over the stream limit, give their listener
// slots back (http.max_conns).
func TestStreamsReleaseListenerSlots(t *testing.T) {
	var hb *sse.Transport
	h := serve(t, func(c *config.Config, d *dashboard.Deps) {
		c.HTTP.MaxConns = 3
		c.Stream.MaxStreams = 2
		hb = addHub(c, d)
	})
	addr := strings.TrimPrefix(h.url, "http://")
	const req = "GET /api/v1/stream HTTP/1.1\r\nHost: localhost\r\n\r\n"
	open := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		return c
	}
	for round := range 3 {
		// The last round's streams have seen their clients go.
		waitUntil(t, 15*time.Second, "the last round's streams to end", func() bool { return hb.Streams() == 0 })
		held := []net.Conn{open(), open()}
		for _, c := range held {
			br := bufio.NewReader(c)
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("round %d: stream not served: %v", round, err)
				}
				if l == "event: hello\n" {
					break
				}
			}
		}
		// The third slot: turned away with a retry: hint, again and again.
		for i := range 5 {
			c := open()
			b, err := io.ReadAll(c)
			c.Close()
			if err != nil || !strings.Contains(string(b), "over capacity") {
				t.Fatalf("round %d, turned-away stream %d: %q %v", round, i, b, err)
			}
		}
		for _, c := range held {
			c.Close()
		}
	}
}

// An idle stream outlives its write timeout on every protocol: with a write
// timeout (300 ms) far under the heartbeat (1 s) and no frames, the stream
// stays open and carries heartbeat after heartbeat. Over HTTP/2 (h2c, and
// h2 over TLS) a write deadline left armed after a write would reset the
// stream when it passes, even with no write pending; HTTP/1.1 is the
// control.
func TestIdleStreamOutlivesWriteTimeout(t *testing.T) {
	for _, proto := range []string{"HTTP/1.1", "h2c", "h2"} {
		t.Run(strings.ReplaceAll(proto, "/", ""), func(t *testing.T) {
			t.Parallel()
			var web *dashboard.WebConfig
			client := clientFor(proto)
			if proto == "h2" {
				var certs testcert.Files
				web, certs = webConfig(t, "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n")
				client = tlsClient(certs, true)
			}
			defer client.CloseIdleConnections()
			h := serve(t, func(c *config.Config, d *dashboard.Deps) {
				c.Stream.WriteTimeout = config.Duration(300 * time.Millisecond)
				c.Stream.Heartbeat = config.Duration(time.Second)
				d.UnencryptedHTTP2 = proto == "h2c"
				d.Web = web
				addHub(c, d)
			})
			resp, err := client.Get(h.url + "/api/v1/stream")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if want := map[string]int{"HTTP/1.1": 1, "h2c": 2, "h2": 2}[proto]; resp.ProtoMajor != want {
				t.Fatalf("answered over %s", resp.Proto)
			}
			lines := make(chan string, 64)
			readErr := make(chan error, 1)
			go func() {
				defer close(lines)
				br := bufio.NewReader(resp.Body)
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						readErr <- err
						return
					}
					lines <- l
				}
			}()
			// hello, then four heartbeats (each 3/4 to 1 period after the
			// last write): some 4 s of a stream that is idle but for its
			// heartbeats, every gap over the write timeout.
			const beats = 4
			start := time.Now()
			hello, hbs := false, 0
			for hbs < beats {
				l, ok := <-lines
				if !ok {
					t.Fatalf("stream ended after %v, %d heartbeats: %v", time.Since(start), hbs, <-readErr)
				}
				switch {
				case l == "event: hello\n":
					hello = true
				case strings.HasPrefix(l, ": hb "):
					hbs++
				}
			}
			if !hello {
				t.Fatal("no hello before the heartbeats")
			}
			t.Logf("%d heartbeats in %v", hbs, time.Since(start))
			resp.Body.Close()
			for range lines { // the reader ends with the body
			}
		})
	}
}

// An HTTP/2 stream whose client leaves while shutdown spreads its kicks
// over the drain window ends cleanly: its kick, which comes after its
// handler returned, does not reach the response writer net/http has taken
// back (that panicked the shutdown goroutine and with it the process).
func TestHTTP2StreamEndsDuringDrain(t *testing.T) {
	h := serve(t, func(c *config.Config, d *dashboard.Deps) {
		c.Stream.DrainWindow = config.Duration(2 * time.Second)
		d.UnencryptedHTTP2 = true
		addHub(c, d)
	})
	client := clientFor("h2c")
	defer client.CloseIdleConnections()
	type stream struct {
		cancel context.CancelFunc
		ended  chan struct{} // closed when the body ends
	}
	var streams [2]*stream
	for i := range streams {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", h.url+"/api/v1/stream", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ProtoMajor != 2 {
			t.Fatalf("answered over %s", resp.Proto)
		}
		s := &stream{cancel: cancel, ended: make(chan struct{})}
		hello := make(chan struct{})
		go func() {
			defer close(s.ended)
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if l == "event: hello\n" {
					close(hello)
				}
			}
		}()
		recvWithin(t, hello, 15*time.Second, "hello")
		streams[i] = s
	}
	done := make(chan time.Duration, 1)
	go func() { done <- h.shutdown(t, time.Minute) }()
	// The first kick comes at once and ends its stream, the second comes
	// half the drain window later; the other stream's client goes in
	// between.
	var other *stream
	select {
	case <-streams[0].ended:
		other = streams[1]
	case <-streams[1].ended:
		other = streams[0]
	case <-time.After(15 * time.Second):
		t.Fatal("no stream was ended by the shutdown")
	}
	other.cancel()
	recvWithin(t, other.ended, 15*time.Second, "the body of the stream whose client left")
	t.Logf("shutdown took %v", recvWithin(t, done, time.Minute, "shutdown"))
}

// Over HTTP/2 the write timeout still cuts a stream whose client stopped
// reading: once its flow-control window is spent, the write blocks, and
// it fails within the write timeout, counted as a write_deadline cut.
func TestHTTP2StuckClientCut(t *testing.T) {
	var hb *sse.Transport
	h := serve(t, func(c *config.Config, d *dashboard.Deps) {
		c.Stream.WriteTimeout = config.Duration(500 * time.Millisecond)
		c.Stream.QueueSize = 1 << 20 // never cut as slow
		d.UnencryptedHTTP2 = true
		hb = sse.New(hub.New(d.Store, c.Stream, hub.Options{Registerer: d.Registry}), sse.Options{})
		d.Store.OnCommit(hb.Publish)
		d.Stream = hb
	})
	client := clientFor("h2c")
	defer client.CloseIdleConnections()
	resp, err := client.Get(h.url + "/api/v1/stream?topics=big")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("answered over %s", resp.Proto)
	}
	br := bufio.NewReader(resp.Body)
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if l == "event: hello\n" {
			break
		}
	}
	// The client reads no more. 8 MiB of frames: more than its stream's
	// flow-control window (4 MiB in Go's client) and the buffers on the way.
	big := strings.Repeat("x", 64<<10)
	for i := range 128 {
		if _, err := h.store.Append([]store.Batch{{Topic: "big", Samples: []store.Sample{{Name: "x", Labels: map[string]string{"p": big}, Value: float64(i)}}}}); err != nil {
			t.Fatal(err)
		}
	}
	const cut = `livedash_stream_disconnects_total{reason="write_deadline"} `
	waitUntil(t, 30*time.Second, "the stuck stream cut", func() bool { return hb.Streams() == 0 })
	if v := metricValue(t, h, cut); v != 1 {
		t.Fatalf("write_deadline cuts %v, want 1 (client: %v)", v, metricValue(t, h, `livedash_stream_disconnects_total{reason="client"} `))
	}
}
