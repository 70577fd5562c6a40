package dashboard_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"livedash/config"
	"livedash/dashboard"
	"livedash/dashboard/sse"
	"livedash/dashboard/store"

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
