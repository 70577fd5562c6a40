package dashboard_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"livedash/config"
	"livedash/dashboard"
	"livedash/dashboard/sse"
	"livedash/dashboard/store"
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
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
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

var dateLine = regexp.MustCompile(`(?m)^Date: [^\r]*\r$`)

func metricLine(t *testing.T, h *harness, prefix string) string {
	t.Helper()
	_, body := get(t, h.url+"/metrics")
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// A stream the front door serves has the head Echo's route would have sent,
// byte for byte but the Date, and is counted in the request metric as the
// middleware counts it. A request with Origin takes the Echo path (CORS
// is not configured, so Origin changes nothing in the answer).
func TestFrontDoorStreamHeadMatchesEcho(t *testing.T) {
	h := serve(t, func(c *config.Config, d *dashboard.Deps) { addHub(c, d) })
	const plain = "GET /api/v1/stream?topics=cpu HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
	const viaEcho = "GET /api/v1/stream?topics=cpu HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nOrigin: http://a.example\r\n\r\n"
	front, fbody := rawStream(t, h, plain, "event: hello\n")
	if n := h.srv.FrontDoorStreams(); n != 1 {
		t.Fatalf("front door served %d streams, want 1", n)
	}
	echo, ebody := rawStream(t, h, viaEcho, "event: hello\n")
	if n := h.srv.FrontDoorStreams(); n != 1 {
		t.Fatalf("the request with Origin was served by the front door (%d)", n)
	}
	for _, hd := range []string{front, echo} {
		if d := dateLine.FindString(hd); d == "" {
			t.Fatalf("no Date in %q", hd)
		} else if _, err := time.Parse(http.TimeFormat, strings.TrimSuffix(strings.TrimPrefix(d, "Date: "), "\r")); err != nil {
			t.Fatalf("Date %q: %v", d, err)
		}
	}
	if a, b := dateLine.ReplaceAllString(front, "Date: -\r"), dateLine.ReplaceAllString(echo, "Date: -\r"); a != b {
		t.Fatalf("heads differ:\nfront door: %q\necho:       %q", a, b)
	}
	t.Logf("head: %q", front)
	for _, b := range []string{fbody, ebody} {
		if !strings.Contains(b, "\nretry: ") || !strings.Contains(b, "event: hello\n") {
			t.Fatalf("body %q", b)
		}
	}
	const counted = `livedash_http_requests_total{code="200",method="GET",route="/api/v1/stream"} `
	if l := metricLine(t, h, counted); l != counted+"2" {
		t.Fatalf("request metric: %q, want both streams counted", l)
	}
}

// Everything but a plain stream request is handed to net/http with its
// bytes unread and answered as before (FAULTS rows 6 and 7 included); the
// front door serves none of these itself.
func TestFrontDoorHandsBack(t *testing.T) {
	h := serve(t, func(c *config.Config, d *dashboard.Deps) { addHub(c, d) })
	cases := []struct {
		name, req, status, want string
	}{
		{"health", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 ", `"ok"`},
		{"HEAD", "HEAD /api/v1/stream HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 405 ", ""}, // the route is GET only
		{"HTTP/1.0", "GET /api/v1/stream HTTP/1.0\r\nHost: x\r\n\r\n", "HTTP/1.0 200 ", "event: hello"},
		{"Origin", "GET /api/v1/stream HTTP/1.1\r\nHost: x\r\nOrigin: http://a.example\r\n\r\n", "HTTP/1.1 200 ", "event: hello"},
		{"pipelined", "GET /api/v1/stream HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 ", "event: hello"},
		// Handed back with every byte, once: the second request parses.
		{"two pipelined", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 ", "HTTP/1.1 200 OK"},
		{"body, then pipelined", "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 405 ", "HTTP/1.1 200 OK"},
		{"no Host", "GET /api/v1/stream HTTP/1.1\r\n\r\n", "HTTP/1.1 400 ", ""},
		{"other path", "GET /api/v1/streams HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 404 ", `"not_found"`},
		{"row 7: query over 8 KiB", "GET /api/v1/stream?topics=" + strings.Repeat("a", 8<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 414 ", `"query_too_long"`},
		{"row 6: header block over the limit", "GET /api/v1/stream HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 24<<10) + "\r\n\r\n", "HTTP/1.1 431 ", ""},
		{"POST", "POST /api/v1/stream HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 405 ", `"method_not_allowed"`},
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
	_, _ = conn.Write([]byte("GET /api/v1/stream HTTP/1.1\r\nHost: x\r\n"))
	_ = conn.(*net.TCPConn).CloseWrite()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, _ := io.ReadAll(conn)
	if !strings.HasPrefix(string(resp), "HTTP/1.1 400 ") {
		t.Errorf("head cut short: %q", resp)
	}
	if n := h.srv.FrontDoorStreams(); n != 0 {
		t.Fatalf("front door served %d of these", n)
	}
	// And the plain request is still its.
	rawStream(t, h, "GET /api/v1/stream HTTP/1.1\r\nHost: x\r\n\r\n", "event: hello")
	if n := h.srv.FrontDoorStreams(); n != 1 {
		t.Fatalf("front door served %d plain streams, want 1", n)
	}
}

// Resuming through the front door: the Last-Event-ID header wins over the
// lastEventId parameter, the replay has no gap, topics filter, and a bad
// ID gets its reset (FAULTS rows 1 and 3).
func TestFrontDoorResume(t *testing.T) {
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
	req := "GET /api/v1/stream?topics=a&lastEventId=" + ids[1].String() + " HTTP/1.1\r\nHost: x\r\nLast-Event-ID: " + ids[4].String() + "\r\n\r\n"
	_, body := rawStream(t, h, req, "id: "+ids[8].String()+"\n")
	var got []string
	for _, l := range strings.Split(body, "\n") {
		if id, ok := strings.CutPrefix(l, "id: "); ok {
			got = append(got, id)
		}
	}
	want := []string{ids[6].String(), ids[8].String()}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("replayed %v, want %v", got, want)
	}
	// The parameter alone.
	_, body = rawStream(t, h, "GET /api/v1/stream?lastEventId="+ids[7].String()+" HTTP/1.1\r\nHost: x\r\n\r\n", "id: "+ids[9].String()+"\n")
	if strings.Contains(body, "id: "+ids[7].String()+"\n") || !strings.Contains(body, "id: "+ids[8].String()+"\n") {
		t.Fatalf("resume from the parameter: %q", body)
	}
	_, body = rawStream(t, h, "GET /api/v1/stream HTTP/1.1\r\nHost: x\r\nLast-Event-ID: \xff\xfe-1\r\n\r\n", `"reason":"malformed"`)
	if !strings.Contains(body, "event: reset\n") {
		t.Fatalf("malformed ID: %q", body)
	}
	if n := h.srv.FrontDoorStreams(); n != 3 {
		t.Fatalf("front door served %d streams, want 3", n)
	}
}

// At shutdown a connection whose head is still coming is closed, and Serve
// returns within the drain window and a second (goleak: TestMain).
func TestFrontDoorShutdownClosesHalfReadHeads(t *testing.T) {
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
	// A live stream too, ended by the drain.
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
	if d := h.shutdown(t, 3*time.Second); d > 100*time.Millisecond+time.Second {
		t.Fatalf("Serve returned after %v", d)
	}
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := conn.Read(make([]byte, 64)); n != 0 || err == nil || isTimeout(err) {
		t.Fatalf("half-read head: %d, %v; want it closed", n, err)
	}
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "retry: ") {
		t.Fatalf("stream ended without a retry: hint: %q", rest)
	}
}

// A head trickled in to over the header limit is handed to net/http with
// the deadline it had from accept: it is cut at the read-header timeout,
// not at twice that (FAULTS rows 6 and 8).
func TestFrontDoorSlowLargeHeadNotTimedTwice(t *testing.T) {
	const timeout = time.Second
	h := serve(t, func(c *config.Config, d *dashboard.Deps) {
		c.HTTP.ReadHeaderTimeout = config.Duration(timeout)
		c.HTTP.MaxHeaderBytes = 1 << 10
		addHub(c, d)
	})
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	big := "GET /api/v1/stream HTTP/1.1\r\nHost: x\r\nX-A: " + strings.Repeat("a", 1100)
	for i := 0; i < len(big); i += len(big)/8 + 1 {
		_, _ = conn.Write([]byte(big[i:min(len(big), i+len(big)/8+1)]))
		time.Sleep(100 * time.Millisecond)
	}
	// Over the limit now and handed back; trickle on until cut.
	done := make(chan time.Duration, 1)
	go func() {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.ReadAll(conn)
		done <- time.Since(start)
	}()
	var d time.Duration
	for d == 0 {
		select {
		case d = <-done:
		case <-time.After(50 * time.Millisecond):
			_, _ = conn.Write([]byte("a"))
		}
	}
	t.Logf("cut after %v", d)
	if d < timeout-100*time.Millisecond || d > timeout+500*time.Millisecond {
		t.Fatalf("cut after %v; the read-header timeout is %v from accept", d, timeout)
	}
}

// Streams the front door served, ended or turned away over the stream
// limit, give their listener slots back (http.max_conns).
func TestFrontDoorStreamsReleaseListenerSlots(t *testing.T) {
	var hb *sse.Transport
	h := serve(t, func(c *config.Config, d *dashboard.Deps) {
		c.HTTP.MaxConns = 3
		c.Stream.MaxStreams = 2
		hb = addHub(c, d)
	})
	addr := strings.TrimPrefix(h.url, "http://")
	const req = "GET /api/v1/stream HTTP/1.1\r\nHost: x\r\n\r\n"
	open := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		return c
	}
	for round := range 3 {
		for hb.Streams() != 0 { // the last round's streams have seen their clients go
			time.Sleep(5 * time.Millisecond)
		}
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
	if n := h.srv.FrontDoorStreams(); n != 3*7 {
		t.Fatalf("front door served %d streams, want 21", n)
	}
}
