package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Long polls whose connection the API takes over and serves itself
// (dashboard/api/pollconn.go): what a client sees must be what net/http and
// Echo would have sent, and anything the API does not serve itself must be
// answered exactly as on a fresh connection.

// lpServer starts livedash with push on, plus extra config lines. The
// default collectors commit too: polls on topic lp wake and park again.
func lpServer(t *testing.T, extra string) *testServer {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "lp.yaml")
	if err := os.WriteFile(conf, []byte("push:\n  token: s3cret\n"+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	return startServer(t, "--config", conf)
}

// rawConn is an HTTP/1.1 client on one TCP connection, request by request.
type rawConn struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rawConn{t: t, conn: c, br: bufio.NewReader(c)}
}

func (rc *rawConn) send(req string) {
	rc.t.Helper()
	if _, err := rc.conn.Write([]byte(req)); err != nil {
		rc.t.Fatal(err)
	}
}

// read reads one response to a GET within d.
func (rc *rawConn) read(d time.Duration) (*http.Response, []byte) {
	rc.t.Helper()
	resp, body, cut := rc.readTo(http.MethodGet, d)
	if cut {
		rc.t.Fatalf("body cut short: %q", body)
	}
	return resp, body
}

// readTo reads one response to a request of method within d. cut: the
// connection was reset while reading a body that ends at close. That
// happens when the server closes with part of the request unread (a head
// over the limit): the client's kernel may drop the end of the answer.
func (rc *rawConn) readTo(method string, d time.Duration) (resp *http.Response, body []byte, cut bool) {
	rc.t.Helper()
	_ = rc.conn.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		rc.t.Fatalf("reading a response: %v", err)
	}
	body, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		if resp.Close && resp.ContentLength < 0 && errors.Is(err, syscall.ECONNRESET) {
			return resp, body, true
		}
		rc.t.Fatalf("reading a body: %v", err)
	}
	return resp, body, false
}

func get(target string) string {
	return "GET " + target + " HTTP/1.1\r\nHost: livedash\r\n\r\n"
}

func pushValue(t *testing.T, base string, v int) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/api/v1/push/lp", strings.NewReader(fmt.Sprintf(`{"x":%d}`, v)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("push: %s", resp.Status)
	}
}

// metric returns the value of the first /metrics line starting with prefix
// (-1 when there is none).
func metric(t testing.TB, base, prefix string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, prefix) {
			v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			return v
		}
	}
	return -1
}

const framesOK = `livedash_http_requests_total{code="200",method="GET",route="/api/v1/frames"}`

func waitParked(t *testing.T, base string, n float64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%v parked long polls", n), 5*time.Second, func() bool {
		return metric(t, base, "livedash_api_long_polls ") == n
	})
}

type framesBody struct {
	Frames []struct {
		ID      string
		Samples []struct{ Value float64 }
	}
	Next, Head string
	Reset      any
}

func decodeFrames(t *testing.T, b []byte) framesBody {
	t.Helper()
	var f framesBody
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	return f
}

// adopted returns a connection the API serves itself: a long poll parked
// on it and was answered (by its wait ending).
func adopted(t *testing.T, ts *testServer) (*rawConn, framesBody) {
	t.Helper()
	rc := dialRaw(t, ts.Addr)
	rc.send(get("/api/v1/frames?topics=lp&wait=100ms"))
	resp, body := rc.read(5 * time.Second)
	if resp.StatusCode != 200 {
		t.Fatalf("long poll: %s %s", resp.Status, body)
	}
	return rc, decodeFrames(t, body)
}

func TestLongPollOwnConnectionAnswers(t *testing.T) {
	ts := lpServer(t, "")
	pushValue(t, ts.URL, 0)

	// A short poll is answered by Echo: its headers are the reference.
	ref := dialRaw(t, ts.Addr)
	ref.send(get("/api/v1/frames?topics=lp&after=oldest"))
	refResp, refBody := ref.read(5 * time.Second)
	first := decodeFrames(t, refBody)
	if refResp.StatusCode != 200 || len(first.Frames) != 1 {
		t.Fatalf("short poll: %s %s", refResp.Status, refBody)
	}

	before := metric(t, ts.URL, framesOK)
	rc := dialRaw(t, ts.Addr)
	cursor := first.Next
	for i := 1; i <= 3; i++ {
		// The first poll parks in Echo's handler and the API takes the
		// connection over; the next ones are read by the API itself.
		rc.send(get("/api/v1/frames?topics=lp&wait=20s&after=" + cursor))
		waitParked(t, ts.URL, 1)
		pushValue(t, ts.URL, i)
		resp, body := rc.read(5 * time.Second)
		f := decodeFrames(t, body)
		if resp.StatusCode != 200 || len(f.Frames) != 1 || f.Frames[0].Samples[0].Value != float64(i) || f.Reset != nil {
			t.Fatalf("poll %d: %s %s", i, resp.Status, body)
		}
		if !slices.Equal(headerNames(resp.Header), headerNames(refResp.Header)) {
			t.Fatalf("poll %d headers %v; Echo's %v", i, resp.Header, refResp.Header)
		}
		for k, v := range refResp.Header {
			if k != "Date" && k != "Content-Length" && !slices.Equal(resp.Header[k], v) {
				t.Fatalf("poll %d: %s = %q; Echo sends %q", i, k, resp.Header[k], v)
			}
		}
		if _, err := http.ParseTime(resp.Header.Get("Date")); err != nil {
			t.Fatalf("poll %d: Date %q", i, resp.Header.Get("Date"))
		}
		if f.Next != f.Frames[0].ID {
			t.Fatalf("poll %d: next %s after frame %s", i, f.Next, f.Frames[0].ID)
		}
		cursor = f.Next
	}
	// A wait that ends unanswered: no frames, and the cursor where it was
	// or past frames of other topics (the collectors commit meanwhile).
	start := time.Now()
	rc.send(get("/api/v1/frames?topics=lp&wait=300ms&after=" + cursor))
	resp, body := rc.read(5 * time.Second)
	if f := decodeFrames(t, body); resp.StatusCode != 200 || len(f.Frames) != 0 || seqOf(f.Next) < seqOf(cursor) {
		t.Fatalf("timed-out poll after %s: %s %s", cursor, resp.Status, body)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Fatalf("a 300ms wait answered after %s", d)
	}
	// Every answer is counted like Echo's.
	if got := metric(t, ts.URL, framesOK) - before; got != 4 {
		t.Fatalf("frames requests counted: %v, want 4", got)
	}

	// Pipelined: a parked poll and a request behind it are answered in
	// order; the second is not the API's, so the connection goes back to
	// the HTTP server with the request's bytes unread.
	rc.send(get("/api/v1/frames?topics=lp&wait=20s&after="+cursor) + get("/healthz"))
	waitParked(t, ts.URL, 1)
	pushValue(t, ts.URL, 9)
	if resp, body := rc.read(5 * time.Second); resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"value":9`)) {
		t.Fatalf("pipelined poll: %s %s", resp.Status, body)
	}
	if resp, body := rc.read(5 * time.Second); resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"ok"`)) {
		t.Fatalf("pipelined healthz: %s %s", resp.Status, body)
	}
	// The HTTP server serves the connection from then on, long polls too.
	rc.send(get("/api/v1/frames?topics=lp&wait=20s"))
	waitParked(t, ts.URL, 1)
	pushValue(t, ts.URL, 10)
	if resp, body := rc.read(5 * time.Second); resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"value":10`)) {
		t.Fatalf("poll after handing back: %s %s", resp.Status, body)
	}
}

func headerNames(h http.Header) []string {
	var names []string
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

var volatile = regexp.MustCompile(`[0-9a-f]{16}-[0-9]+|"date":"[^"]*"`)

// Requests the API does not serve itself get, on a connection it serves,
// the answer they get on a fresh connection (FAULTS rows 6 and 7).
func TestLongPollOwnConnectionHandsBack(t *testing.T) {
	ts := lpServer(t, "")
	pushValue(t, ts.URL, 1)
	cases := map[string]string{
		"bad parameter":     get("/api/v1/frames?wait=zz"),
		"unknown param":     get("/api/v1/frames?wait=1s&x=1"),
		"duplicate param":   get("/api/v1/frames?wait=1s&wait=2s"),
		"query too long":    get("/api/v1/frames?wait=1s&topics=" + strings.Repeat("a", 9000)),
		"header too big":    "GET /api/v1/frames?wait=1s HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 64<<10) + "\r\n\r\n",
		"other route":       get("/healthz"),
		"no route":          get("/api/v1/nope"),
		"head":              "HEAD /api/v1/frames HTTP/1.1\r\nHost: x\r\n\r\n",
		"post":              "POST /api/v1/frames HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
		"no host":           "GET /api/v1/frames HTTP/1.1\r\n\r\n",
		"http/1.0":          "GET /api/v1/frames?topics=lp HTTP/1.0\r\n\r\n",
		"connection: close": "GET /api/v1/frames?topics=lp HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"origin":            "GET /api/v1/frames?topics=lp HTTP/1.1\r\nHost: x\r\nOrigin: http://a.example\r\n\r\n",
		"escaped path":      get("/api/v1/%66rames?topics=lp"),
		"bare LF":           "GET /api/v1/frames?topics=lp HTTP/1.1\nHost: x\n\n",
	}
	for name, req := range cases {
		t.Run(name, func(t *testing.T) {
			method, _, _ := strings.Cut(req, " ")
			fresh := dialRaw(t, ts.Addr)
			fresh.send(req)
			want, wantBody, cut1 := fresh.readTo(method, 5*time.Second)

			rc, _ := adopted(t, ts)
			rc.send(req)
			got, gotBody, cut2 := rc.readTo(method, 5*time.Second)
			if got.StatusCode != want.StatusCode || got.Close != want.Close {
				t.Fatalf("on a taken-over connection: %s (close %v); on a fresh one: %s (close %v)",
					got.Status, got.Close, want.Status, want.Close)
			}
			if cut1 || cut2 {
				return // the bodies may be cut short (see readTo); status and close agree
			}
			if g, w := volatile.ReplaceAll(gotBody, nil), volatile.ReplaceAll(wantBody, nil); !bytes.Equal(g, w) {
				t.Fatalf("body on a taken-over connection %q; on a fresh one %q", gotBody, wantBody)
			}
			if !slices.Equal(headerNames(got.Header), headerNames(want.Header)) {
				t.Fatalf("headers on a taken-over connection %v; on a fresh one %v", got.Header, want.Header)
			}
		})
	}
}

// A client that goes away while its poll waits is noticed at once, as
// net/http's background read notices it.
func TestLongPollOwnConnectionClientGone(t *testing.T) {
	ts := lpServer(t, "")
	rc, _ := adopted(t, ts)
	rc.send(get("/api/v1/frames?topics=lp&wait=30s"))
	waitParked(t, ts.URL, 1)
	_ = rc.conn.Close()
	waitParked(t, ts.URL, 0)
}

// Idle and slow connections are cut at the server's timeouts (FAULTS rows
// 8 and 9), as net/http cuts its own.
func TestLongPollOwnConnectionTimeouts(t *testing.T) {
	ts := lpServer(t, "http:\n  idle_timeout: 1s\n  read_header_timeout: 400ms\n")

	rc, _ := adopted(t, ts)
	start := time.Now()
	_ = rc.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := rc.br.Read(make([]byte, 1)); err == nil {
		t.Fatalf("idle connection sent %d bytes", n)
	}
	if d := time.Since(start); d < 800*time.Millisecond || d > 3*time.Second {
		t.Fatalf("idle connection closed after %s; idle_timeout is 1s", d)
	}

	// Slowloris: a head trickled a byte at a time is cut at the read-header
	// timeout, counted from its first byte.
	rc, _ = adopted(t, ts)
	req := get("/api/v1/frames?topics=lp&wait=1s")
	start = time.Now()
	closed := false
	for i := 0; i < len(req) && !closed; i++ {
		if _, err := rc.conn.Write([]byte{req[i]}); err != nil {
			closed = true
			break
		}
		_ = rc.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := rc.br.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
			closed = true
		}
	}
	if !closed {
		t.Fatal("a head trickled over several seconds was read to the end")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("trickled head cut after %s; read_header_timeout is 400ms", d)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Shutdown answers the polls waiting on the API's own connections at once,
// with Connection: close, closes its idle ones, and exits within the drain
// window (FAULTS row 26).
func TestLongPollOwnConnectionShutdown(t *testing.T) {
	ts := lpServer(t, "stream:\n  drain_window: 1s\n")
	var parked, idle []*rawConn
	for range 20 {
		rc, f := adopted(t, ts)
		rc.send(get("/api/v1/frames?topics=lp&wait=60s&after=" + f.Next))
		parked = append(parked, rc)
		rc2, _ := adopted(t, ts)
		idle = append(idle, rc2)
	}
	waitParked(t, ts.URL, 20)
	start := time.Now()
	if err := ts.Stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("shutdown took %s with a 1s drain window", d)
	}
	for i, rc := range parked {
		resp, body := rc.read(2 * time.Second)
		if resp.StatusCode != 200 || !resp.Close || len(decodeFrames(t, body).Frames) != 0 {
			t.Fatalf("parked poll %d at shutdown: %s close=%v %s", i, resp.Status, resp.Close, body)
		}
	}
	for i, rc := range idle {
		_ = rc.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, err := rc.br.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("idle connection %d at shutdown: read %d bytes, %v", i, n, err)
		}
	}
}
